//! The 12 vectors of "Taming the many EdDSAs" (Chalkias, Garillot,
//! Nikolaenko 2020; novifinancial/ed25519-speccheck).

use ed25519_dalek::Verifier as _;
use serde::Deserialize;

use crate::reference::{self, Order};
use crate::support::{
    Signed, assert_batch_names, assert_verdict_everywhere, fixture, interleave, items, valid_pool,
};

/// A row of `cases.json`.
#[derive(Deserialize)]
struct Row {
    message: String,
    pub_key: String,
    signature: String,
}

fn vectors() -> Vec<Signed> {
    let rows: Vec<Row> =
        serde_json::from_str(&fixture("speccheck_cases.json")).expect("speccheck_cases.json");
    rows.iter()
        .map(|row| Signed::from_hex(&row.pub_key, &row.signature, &row.message))
        .collect()
}

/// What a vector is made of, and its ZIP-215 verdict.
struct Expected {
    /// s < L.
    s_canonical: bool,
    /// The order class of A, and whether A is canonically encoded.
    a: (Order, bool),
    /// The order class of R, and whether R is canonically encoded.
    r: (Order, bool),
    /// The ZIP-215 verdict.
    zip215: bool,
    /// Why, under ZIP-215.
    why: &'static str,
}

use Order::{Mixed, Prime, Small};

/// The vectors as the paper describes them, and ZIP-215's verdict on each.
/// ZIP-215: A and R may be any encoding that decodes to a curve point
/// (non-canonical y ≥ p, or x = 0 with the sign bit, and small or mixed
/// order are all allowed); s must be canonical (s < L); k = H(R ‖ A ‖ M)
/// over the bytes as given; the equation is the cofactored
/// [8][s]B = [8]R + [8][k]A.
const EXPECTED: [Expected; 12] = [
    Expected {
        s_canonical: true,
        a: (Small, true),
        r: (Small, true),
        zip215: true,
        why: "s = 0, A and R small order: [8][0]B = 0 = [8]R + [8][k]A; small-order A and R are allowed",
    },
    Expected {
        s_canonical: true,
        a: (Small, true),
        r: (Mixed, true),
        zip215: true,
        why: "small-order A: [8][k]A = 0 and [8][s]B = [8]R holds",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Small, true),
        zip215: true,
        why: "small-order R: [8]R = 0 and [8][s]B = [8][k]A holds",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Mixed, true),
        zip215: true,
        why: "mixed-order A and R: the cofactored (and the cofactorless) equation holds",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Mixed, true),
        zip215: true,
        why: "mixed-order A and R: only the cofactored equation holds, which is ZIP-215's",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Prime, true),
        zip215: true,
        why: "mixed-order A: holds as [8]([s]B - R - [k]A) = 0 (no pre-reduction of 8k mod L); cofactorless fails",
    },
    Expected {
        s_canonical: false,
        a: (Prime, true),
        r: (Prime, true),
        zip215: false,
        why: "s >= L: the equation holds for s mod L but ZIP-215 requires canonical s",
    },
    Expected {
        s_canonical: false,
        a: (Prime, true),
        r: (Prime, true),
        zip215: false,
        why: "s >> L (high bits set): non-canonical s is rejected",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Small, false),
        zip215: false,
        why: "non-canonical R (y = -1, x = 0 with sign bit) decodes and is allowed, but this signature's k hashes the re-encoded R; ZIP-215 hashes R as given, so the equation fails",
    },
    Expected {
        s_canonical: true,
        a: (Mixed, true),
        r: (Small, false),
        zip215: true,
        why: "non-canonical R that decodes is allowed, k over R as given: the equation holds",
    },
    Expected {
        s_canonical: true,
        a: (Small, false),
        r: (Mixed, true),
        zip215: true,
        why: "non-canonical A (order 2, x = 0 with sign bit) decodes and is allowed; [8][k]A = 0 whatever k hashes",
    },
    Expected {
        s_canonical: true,
        a: (Small, false),
        r: (Mixed, true),
        zip215: true,
        why: "as case 10, with k over A as given: [8][k]A = 0 and [8][s]B = [8]R holds",
    },
];

#[test]
fn the_fixture_holds_the_twelve_published_vectors() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 12);
    for (index, (vector, expected)) in vectors.iter().zip(&EXPECTED).enumerate() {
        let (r, s) = reference::split(&vector.signature.0);
        let a = &vector.public_key.0;
        assert_eq!(
            reference::is_canonical_scalar(&s),
            expected.s_canonical,
            "case {index}: s"
        );
        assert_eq!(
            (reference::order(a), reference::is_canonical_point(a)),
            (Some(expected.a.0), expected.a.1),
            "case {index}: A"
        );
        assert_eq!(
            (reference::order(&r), reference::is_canonical_point(&r)),
            (Some(expected.r.0), expected.r.1),
            "case {index}: R"
        );
    }
}

#[test]
fn the_spec_level_reference_agrees_with_the_worked_out_verdicts() {
    for (index, (vector, expected)) in vectors().iter().zip(&EXPECTED).enumerate() {
        assert_eq!(
            reference::zip215_valid(&vector.public_key.0, &vector.signature.0, &vector.message),
            expected.zip215,
            "case {index}: {}",
            expected.why
        );
    }
}

#[test]
fn every_vector_gets_its_zip215_verdict_single_and_batched_everywhere() {
    for (index, (vector, expected)) in vectors().iter().zip(&EXPECTED).enumerate() {
        assert_verdict_everywhere(
            vector,
            expected.zip215,
            &format!("case {index} ({})", expected.why),
        );
    }
}

#[test]
fn all_vectors_in_one_batch_are_named_exactly() {
    let vectors: Vec<(Signed, bool)> = vectors()
        .into_iter()
        .zip(&EXPECTED)
        .map(|(vector, expected)| (vector, expected.zip215))
        .collect();
    // The vectors alone, back to back.
    let alone: Vec<Signed> = vectors.iter().map(|(vector, _)| vector.clone()).collect();
    assert_batch_names(&items(&alone), &[6, 7, 8], "the 12 vectors alone");
    // Spread through valid signatures at several densities.
    for stride in [0, 1, 5, 25] {
        let (batch, bad) = interleave(&vectors, &valid_pool()[..300], stride);
        assert_eq!(bad.len(), 3);
        assert_batch_names(
            &batch,
            &bad,
            &format!("the 12 vectors every {stride} valid"),
        );
    }
}

/// Prints the verdict table (`cargo test -p yuchain-proto --test it --
/// verdict_table --nocapture`). ed25519-dalek's own verdicts are shown for
/// contrast only: it is not the consensus rule.
#[test]
fn verdict_table() {
    println!(
        "case | s<L | A          | R          | cofactorless | ZIP-215 ref | verify_one | dalek verify | dalek strict"
    );
    for (index, (vector, expected)) in vectors().iter().zip(&EXPECTED).enumerate() {
        let (r, s) = reference::split(&vector.signature.0);
        let a = &vector.public_key.0;
        let show = |encoding: &[u8; 32]| {
            format!(
                "{:?}{}",
                reference::order(encoding).expect("decodes"),
                if reference::is_canonical_point(encoding) {
                    ""
                } else {
                    " non-c."
                }
            )
        };
        let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(a);
        let dalek_signature = ed25519_dalek::Signature::from_bytes(&vector.signature.0);
        let dalek = dalek_key
            .as_ref()
            .is_ok_and(|key| key.verify(&vector.message, &dalek_signature).is_ok());
        let dalek_strict = dalek_key
            .as_ref()
            .is_ok_and(|key| key.verify_strict(&vector.message, &dalek_signature).is_ok());
        let mark = |ok: bool| if ok { "V" } else { "X" };
        println!(
            "{index:>4} | {:<3} | {:<10} | {:<10} | {:<12} | {:<11} | {:<10} | {:<12} | {}",
            mark(reference::is_canonical_scalar(&s)),
            show(a),
            show(&r),
            mark(reference::cofactorless_valid(
                a,
                &vector.signature.0,
                &vector.message
            )),
            mark(reference::zip215_valid(
                a,
                &vector.signature.0,
                &vector.message
            )),
            mark(vector.verify_one()),
            mark(dalek),
            mark(dalek_strict),
        );
        assert_eq!(vector.verify_one(), expected.zip215, "case {index}");
    }
}
