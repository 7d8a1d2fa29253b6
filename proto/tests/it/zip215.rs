//! ZIP-215's own edge cases: every encoding of a small-order point as A and
//! R (after ed25519-zebra's `tests/small_order.rs`), non-canonical s, and an
//! A that does not decode.

use serde::Deserialize;
use yuchain_proto::keys::{PublicKey, Signature};

use crate::reference::{self, Order};
use crate::support::{
    Signed, assert_batch_names, assert_verdict_everywhere, fixture, interleave, items, valid_pool,
};

#[derive(Deserialize)]
struct Encoding {
    encoding: String,
    order: u32,
}

#[derive(Deserialize)]
struct SmallOrder {
    message: String,
    canonical: Vec<Encoding>,
    non_canonical: Vec<Encoding>,
}

fn small_order() -> SmallOrder {
    serde_json::from_str(&fixture("zip215_small_order.json")).expect("zip215_small_order.json")
}

fn bytes32(hex_text: &str) -> [u8; 32] {
    hex::decode(hex_text)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

/// The 14 encodings, canonical first.
fn encodings() -> Vec<[u8; 32]> {
    let fixture = small_order();
    fixture
        .canonical
        .iter()
        .chain(&fixture.non_canonical)
        .map(|e| bytes32(&e.encoding))
        .collect()
}

/// Every (A, R) pair of small-order encodings with s = 0: 196 signatures,
/// all valid under ZIP-215 ([8][0]B = 0 = [8]R + [8][k]A).
fn small_order_signatures() -> Vec<Signed> {
    let message = hex::decode(small_order().message).expect("hex");
    let encodings = encodings();
    let mut signed = Vec::new();
    for a in &encodings {
        for r in &encodings {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(r);
            signed.push(Signed {
                public_key: PublicKey(*a),
                signature: Signature(signature),
                message: message.clone(),
            });
        }
    }
    signed
}

#[test]
fn the_fixture_is_every_encoding_of_every_small_order_point() {
    let fixture = small_order();
    assert_eq!(fixture.canonical.len(), 8);
    assert_eq!(fixture.non_canonical.len(), 6);
    let mut canonical_points = Vec::new();
    for entry in &fixture.canonical {
        let encoding = bytes32(&entry.encoding);
        assert_eq!(
            reference::order(&encoding),
            Some(Order::Small),
            "{}",
            entry.encoding
        );
        assert_eq!(
            reference::small_order(&encoding),
            Some(entry.order),
            "{}",
            entry.encoding
        );
        assert!(
            reference::is_canonical_point(&encoding),
            "{}",
            entry.encoding
        );
        let point = reference::point(&encoding).expect("decodes");
        assert!(
            !canonical_points.contains(&point),
            "{} repeated",
            entry.encoding
        );
        canonical_points.push(point);
    }
    // Eight distinct points of order dividing 8: the whole 8-torsion group.
    for entry in &fixture.non_canonical {
        let encoding = bytes32(&entry.encoding);
        assert_eq!(
            reference::order(&encoding),
            Some(Order::Small),
            "{}",
            entry.encoding
        );
        assert_eq!(
            reference::small_order(&encoding),
            Some(entry.order),
            "{}",
            entry.encoding
        );
        assert!(
            !reference::is_canonical_point(&encoding),
            "{}",
            entry.encoding
        );
        let point = reference::point(&encoding).expect("decodes");
        assert!(canonical_points.contains(&point));
    }
    // The only field elements with a second encoding below 2^255 are
    // 0..=18 (as y + p); of those only y = 0 and y = 1 are small-order
    // points, and x = 0 (y = ±1) is the only point with a sign-bit twin.
    // So the 6 above are all the non-canonical small-order encodings.
    let mut found = 0;
    for y in 0u8..19 {
        let mut encoding = [0xffu8; 32];
        encoding[0] = 0xed + y;
        encoding[31] = 0x7f;
        for sign in [0, 0x80] {
            encoding[31] = 0x7f | sign;
            if reference::order(&encoding) == Some(Order::Small) {
                found += 1;
            }
        }
    }
    let mut one_with_sign = [0u8; 32];
    one_with_sign[0] = 1;
    one_with_sign[31] = 0x80;
    let mut minus_one_with_sign = [0xffu8; 32];
    minus_one_with_sign[0] = 0xec;
    for encoding in [one_with_sign, minus_one_with_sign] {
        assert!(!reference::is_canonical_point(&encoding));
        found += 1;
    }
    assert_eq!(found, fixture.non_canonical.len());
}

#[test]
fn all_small_order_signatures_are_valid_single_and_batched() {
    let signed = small_order_signatures();
    assert_eq!(signed.len(), 196);
    for (index, vector) in signed.iter().enumerate() {
        assert!(
            reference::zip215_valid(&vector.public_key.0, &vector.signature.0, &vector.message),
            "reference, pair {index}"
        );
        assert!(vector.verify_one(), "verify_one, pair {index}: {vector:?}");
    }
    assert_batch_names(&items(&signed), &[], "the 196 small-order signatures alone");
    let mixed: Vec<(Signed, bool)> = signed.into_iter().map(|s| (s, true)).collect();
    for stride in [1, 2] {
        let (batch, bad) = interleave(&mixed, &valid_pool()[..300], stride);
        assert!(bad.is_empty());
        assert_batch_names(
            &batch,
            &[],
            &format!("small-order signatures every {stride} valid"),
        );
    }
}

#[test]
fn every_small_order_encoding_as_a_and_as_r_gets_one_verdict_everywhere() {
    // Each encoding as A with the same one and with another as R: every
    // encoding appears as A and as R, through every batch path.
    let signed = small_order_signatures();
    let n = 14;
    for a in 0..n {
        for r in [a, (a + 7) % n] {
            assert_verdict_everywhere(
                &signed[a * n + r],
                true,
                &format!("small order A#{a} R#{r}"),
            );
        }
    }
}

/// L, the prime order, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

/// a + b on 256-bit little-endian numbers (no overflow for s < L < 2^253).
fn add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let digit = u16::from(a[i]) + u16::from(b[i]) + carry;
        sum[i] = digit as u8;
        carry = digit >> 8;
    }
    assert_eq!(carry, 0);
    sum
}

/// Valid signatures with s replaced by s + L, s + 2L, … and s + 2^255:
/// the same value mod L, so the equation would hold, but s is not
/// canonical, which ZIP-215 rejects.
fn non_canonical_s() -> Vec<Signed> {
    let mut out = Vec::new();
    for (index, valid) in valid_pool()[..4].iter().enumerate() {
        let (_, mut s) = reference::split(&valid.signature.0);
        for _ in 0..=index {
            s = add(&s, &L);
        }
        let mut signature = valid.signature;
        signature.0[32..].copy_from_slice(&s);
        out.push(Signed {
            signature,
            ..valid.clone()
        });
    }
    let mut high_bit = valid_pool()[4].clone();
    high_bit.signature.0[63] |= 0x80;
    out.push(high_bit);
    out
}

#[test]
fn non_canonical_s_is_rejected_everywhere() {
    for (index, vector) in non_canonical_s().iter().enumerate() {
        let (_, s) = reference::split(&vector.signature.0);
        assert!(!reference::is_canonical_scalar(&s));
        assert!(!reference::zip215_valid(
            &vector.public_key.0,
            &vector.signature.0,
            &vector.message
        ));
        assert_verdict_everywhere(vector, false, &format!("non-canonical s #{index}"));
    }
}

/// A key encoding that is no curve point: the first y (from 2 up) with no x.
fn undecodable_key() -> [u8; 32] {
    (2u8..)
        .map(|y| {
            let mut encoding = [0u8; 32];
            encoding[0] = y;
            encoding
        })
        .find(|encoding| reference::point(encoding).is_none())
        .expect("some y is not on the curve")
}

#[test]
fn a_key_that_does_not_decode_is_rejected_everywhere() {
    let mut vector = valid_pool()[5].clone();
    vector.public_key = PublicKey(undecodable_key());
    assert_verdict_everywhere(&vector, false, "undecodable A");
    // And an R that does not decode.
    let mut vector = valid_pool()[6].clone();
    vector.signature.0[..32].copy_from_slice(&undecodable_key());
    assert!(!reference::zip215_valid(
        &vector.public_key.0,
        &vector.signature.0,
        &vector.message
    ));
    assert_verdict_everywhere(&vector, false, "undecodable R");
}

#[test]
fn everything_at_once() {
    // Small-order signatures, non-canonical s, undecodable A, speccheck-style
    // mixes: one big batch, bad indices exactly the invalid ones.
    let mut vectors: Vec<(Signed, bool)> = small_order_signatures()
        .into_iter()
        .step_by(13)
        .map(|s| (s, true))
        .collect();
    vectors.extend(non_canonical_s().into_iter().map(|s| (s, false)));
    let mut bad_key = valid_pool()[7].clone();
    bad_key.public_key = PublicKey(undecodable_key());
    vectors.push((bad_key, false));
    // Shuffle deterministically so invalid ones are spread out.
    let len = vectors.len();
    let mut shuffled = Vec::with_capacity(len);
    for i in 0..len {
        shuffled.push(vectors[(i * 7) % len].clone());
    }
    let (batch, bad) = interleave(&shuffled, &valid_pool()[8..], 9);
    assert_eq!(bad.len(), 6);
    assert_batch_names(&batch, &bad, "everything at once");
}
