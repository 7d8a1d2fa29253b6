//! Signature validity, a consensus rule.
//!
//! Every honest node must accept exactly the same signatures, whether it checks
//! them one at a time or in a batch, or a Byzantine sender could split honest
//! nodes over a block. yuchain fixes the ZIP-215 rule (the cofactored
//! verification equation, canonical `s`, any encoding of `A` and `R` that
//! decompresses) and checks single and batched signatures under it with
//! ed25519-zebra. ed25519-dalek is used only for keys and signing.
//!
//! Batch verification checks the ZIP-215 batch equation, computed here
//! rather than by ed25519-zebra's batch verifier: each signature's random
//! coefficient is drawn, in input order, from a blake3 stream seeded with
//! everything in the batch (a Fiat–Shamir choice), so a sender cannot predict
//! the coefficients before fixing its signatures, and every node computes
//! exactly the same equation for the same batch. (ed25519-zebra pairs
//! coefficients with signatures in the order of a hash map seeded per
//! process; `tests/it/determinism.rs` shows it.) The verdicts are those of
//! single verification: a batch of valid signatures always satisfies the
//! cofactored equation, a batch that passes is accepted whole (one with a
//! bad signature passes with probability about 2^-128, now the same on every
//! node), and every signature of a failing batch is judged by single
//! verification, which is the rule itself.
//!
//! A batch is cut into chunks of a fixed 128 signatures, one equation each,
//! spread over the cores; the chunks never depend on the number of threads,
//! so every node checks the same equations.
//!
//! A failing batch is split into `FALLBACK_GROUPS` (8) groups, each checked as
//! a batch, and the signatures of failing groups are checked one by one. A
//! few bad signatures among many cost little more than the batch, and a
//! batch of nothing but bad signatures costs about twice single checks, not
//! the many times that splitting all the way down would.

use std::collections::HashMap;
use std::iter::once;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::error::SignatureError;
use crate::hash::Domain;
use crate::keys::{PublicKey, Signature};

/// Below this many signatures a batch is checked one by one: the batch
/// equation's fixed cost is not worth it.
const BATCH_SIZE_MIN: usize = 4;

/// How many consecutive signatures of a batch share one batch equation (the
/// last chunk may hold fewer). A fixed number, never derived from the
/// machine: nodes with different core counts must check exactly the same
/// equations, or a bad signature that slips through one equation (with
/// probability about 2^-128) would split them. Chunks are spread over the
/// cores; larger ones gain little per signature and balance worse.
pub(crate) const EQUATION_CHUNK_SIZE: usize = 128;

/// Into how many groups a failing batch is split before single checks.
const FALLBACK_GROUPS: usize = 8;

/// Verifies one signature under the consensus rule.
pub fn verify_one(
    public_key: &PublicKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let key = VerificationKey::try_from(VerificationKeyBytes::from(public_key.0))
        .map_err(|_| SignatureError::InvalidPublicKey)?;
    let signature = ed25519_zebra::Signature::from_bytes(&signature.0);
    key.verify(&signature, message)
        .map_err(|_| SignatureError::Invalid)
}

/// One signature to check in a batch.
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// The signer's key.
    pub public_key: PublicKey,
    /// The signature.
    pub signature: Signature,
    /// The exact bytes signed.
    pub message: &'a [u8],
}

/// Verifies many signatures under the consensus rule, on all cores of the
/// current rayon pool, one batch equation per 128 consecutive signatures
/// (the same equations on every machine). Returns the indices of the
/// invalid ones, in ascending order; empty means all are valid. The answer is exactly what
/// [`verify_one`] would say for each item.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Vec<usize> {
    if items.is_empty() {
        return Vec::new();
    }
    let mut bad: Vec<usize> = equation_chunks(items.len())
        .into_par_iter()
        .flat_map_iter(|range| {
            let offset = range.start;
            let mut bad = Vec::new();
            verify_chunk(&items[range], offset, &mut bad);
            bad
        })
        .collect();
    bad.sort_unstable();
    bad
}

/// The ranges of a batch of `len` signatures that each get one batch
/// equation: consecutive runs of [`EQUATION_CHUNK_SIZE`], whatever the
/// number of threads.
pub(crate) fn equation_chunks(len: usize) -> Vec<std::ops::Range<usize>> {
    (0..len)
        .step_by(EQUATION_CHUNK_SIZE)
        .map(|start| start..start.saturating_add(EQUATION_CHUNK_SIZE).min(len))
        .collect()
}

/// Checks `items` (which start at `offset` in the caller's slice) and pushes
/// the indices of the bad ones.
fn verify_chunk(items: &[SignedMessage<'_>], offset: usize, bad: &mut Vec<usize>) {
    if items.len() < BATCH_SIZE_MIN {
        verify_singles(items, offset, bad);
        return;
    }
    if batch_equation_holds(items) {
        return;
    }
    let group_size = items.len().div_ceil(FALLBACK_GROUPS).max(BATCH_SIZE_MIN);
    for (group_index, group) in items.chunks(group_size).enumerate() {
        let group_offset = offset + group_index * group_size;
        if group.len() >= BATCH_SIZE_MIN && batch_equation_holds(group) {
            continue;
        }
        verify_singles(group, group_offset, bad);
    }
}

fn verify_singles(items: &[SignedMessage<'_>], offset: usize, bad: &mut Vec<usize>) {
    for (index, item) in items.iter().enumerate() {
        if verify_one(&item.public_key, item.message, &item.signature).is_err() {
            bad.push(offset + index);
        }
    }
}

/// Whether the ZIP-215 batch equation holds for all of `items`, with
/// coefficients from the batch's own transcript.
fn batch_equation_holds(items: &[SignedMessage<'_>]) -> bool {
    let mut transcript = Domain::BatchVerify.hasher();
    for item in items {
        transcript.update(&item.public_key.0);
        transcript.update(&item.signature.0);
        transcript.update(&(item.message.len() as u64).to_le_bytes());
        transcript.update(item.message);
    }
    let mut stream = transcript.finalize_xof();
    batch_equation(items, || {
        let mut bytes = [0u8; 16];
        stream.fill(&mut bytes);
        u128::from_le_bytes(bytes)
    })
}

/// The ZIP-215 batch equation over `items`, the i-th item taking the i-th
/// coefficient `z` that `coefficient` yields:
///
/// `[8](−(Σ zᵢsᵢ)·B + Σ zᵢ·Rᵢ + Σ (zᵢkᵢ)·Aᵢ) = 0`, with
/// `kᵢ = SHA-512(R ‖ A ‖ M) mod ℓ` over the encodings exactly as given.
///
/// False if any `A` or `R` does not decompress or any `s` is not canonical,
/// as single verification would say of that signature. Signatures by one
/// key share one `A` term (keys in order of first appearance; the map only
/// finds a key's term, its order is never used).
fn batch_equation(items: &[SignedMessage<'_>], mut coefficient: impl FnMut() -> u128) -> bool {
    let mut b_coefficient = Scalar::ZERO;
    let mut keys: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut key_coefficients: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut key_slots: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut nonces: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut nonce_coefficients: Vec<Scalar> = Vec::with_capacity(items.len());
    for item in items {
        let signature = &item.signature.0;
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&signature[..32]);
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&signature[32..]);
        let slot = match key_slots.get(&item.public_key.0) {
            Some(&slot) => slot,
            None => {
                let Some(key) = CompressedEdwardsY(item.public_key.0).decompress() else {
                    return false;
                };
                keys.push(key);
                key_coefficients.push(Scalar::ZERO);
                key_slots.insert(item.public_key.0, keys.len() - 1);
                keys.len() - 1
            }
        };
        let Some(nonce) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let challenge = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(item.public_key.0)
                .chain_update(item.message)
                .finalize()
                .into(),
        );
        let z = Scalar::from(coefficient());
        b_coefficient -= z * s;
        key_coefficients[slot] += z * challenge;
        nonces.push(nonce);
        nonce_coefficients.push(z);
    }
    EdwardsPoint::vartime_multiscalar_mul(
        once(&b_coefficient)
            .chain(&key_coefficients)
            .chain(&nonce_coefficients),
        once(&ED25519_BASEPOINT_POINT).chain(&keys).chain(&nonces),
    )
    .mul_by_cofactor()
    .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn signed(count: usize) -> (Vec<PublicKey>, Vec<Signature>, Vec<Vec<u8>>) {
        let mut keys = Vec::new();
        let mut signatures = Vec::new();
        let mut messages = Vec::new();
        for i in 0..count {
            let key = SigningKey::for_test(&format!("batch-{i}"));
            let message = format!("message {i}").into_bytes();
            signatures.push(key.sign(&message));
            keys.push(key.public_key());
            messages.push(message);
        }
        (keys, signatures, messages)
    }

    fn items<'a>(
        keys: &[PublicKey],
        signatures: &[Signature],
        messages: &'a [Vec<u8>],
    ) -> Vec<SignedMessage<'a>> {
        keys.iter()
            .zip(signatures)
            .zip(messages)
            .map(|((public_key, signature), message)| SignedMessage {
                public_key: *public_key,
                signature: *signature,
                message,
            })
            .collect()
    }

    #[test]
    fn a_valid_batch_has_no_bad_indices() {
        let (keys, signatures, messages) = signed(100);
        assert!(verify_batch(&items(&keys, &signatures, &messages)).is_empty());
        assert!(verify_batch(&[]).is_empty());
    }

    #[test]
    fn a_failed_batch_names_exactly_the_bad_signatures() {
        let (keys, mut signatures, messages) = signed(300);
        let corrupt = [0usize, 7, 8, 150, 299];
        for &index in &corrupt {
            signatures[index].0[40] ^= 1;
        }
        // A signature by the wrong key is bad too.
        signatures[42] = SigningKey::for_test("intruder").sign(&messages[42]);
        let mut expected = corrupt.to_vec();
        expected.push(42);
        expected.sort_unstable();
        assert_eq!(
            verify_batch(&items(&keys, &signatures, &messages)),
            expected
        );
    }

    #[test]
    fn the_batch_answer_is_the_single_answer_on_one_thread_too() {
        let (keys, mut signatures, messages) = signed(64);
        signatures[3].0[0] ^= 0x80;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let bad = pool.install(|| verify_batch(&items(&keys, &signatures, &messages)));
        assert_eq!(bad, vec![3]);
    }

    #[test]
    fn the_batch_equations_do_not_depend_on_the_number_of_threads() {
        // Every node must check the same equations for the same batch, or a
        // batch holding a bad signature could pass on some nodes (with
        // probability about 2^-128 each) and not on others.
        let in_pool = |threads: usize, len: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| equation_chunks(len))
        };
        for len in [
            0, 1, 3, 4, 5, 63, 64, 65, 127, 128, 129, 1_000, 1_024, 10_000,
        ] {
            let one = in_pool(1, len);
            assert_eq!(one, in_pool(2, len), "{len} signatures, 2 threads");
            assert_eq!(one, in_pool(3, len), "{len} signatures, 3 threads");
            assert_eq!(one, equation_chunks(len), "{len} signatures, default pool");
            // The chunks cover the batch in order, each at most the fixed size.
            let mut next = 0;
            for range in &one {
                assert_eq!(range.start, next);
                assert!(range.end > range.start);
                assert!(range.len() <= EQUATION_CHUNK_SIZE);
                next = range.end;
            }
            assert_eq!(next, len);
        }
    }

    /// `signature` with s replaced by s + delta (mod ℓ).
    fn shift_s(signature: &Signature, delta: Scalar) -> Signature {
        let mut s = [0u8; 32];
        s.copy_from_slice(&signature.0[32..]);
        let s = Scalar::from_canonical_bytes(s).expect("canonical s") + delta;
        let mut shifted = signature.0;
        shifted[32..].copy_from_slice(s.as_bytes());
        Signature(shifted)
    }

    #[test]
    fn the_ith_coefficient_goes_with_the_ith_signature() {
        // Two signatures spoiled by s₁ + 2 and s₂ − 1: the batch equation is
        // then −(2·z₁ − z₂)·B = 0, which holds for (z₁, z₂) = (1, 2) and for
        // no other order. Every time, on every node: the pairing follows the
        // input, not a hash map.
        let (keys, mut signatures, messages) = signed(2);
        signatures[0] = shift_s(&signatures[0], Scalar::from(2u8));
        signatures[1] = shift_s(&signatures[1], -Scalar::ONE);
        let items = items(&keys, &signatures, &messages);
        for _ in 0..64 {
            let mut one_two = [1u128, 2].into_iter();
            assert!(batch_equation(&items, || one_two.next().expect("two")));
            let mut two_one = [2u128, 1].into_iter();
            assert!(!batch_equation(&items, || two_one.next().expect("two")));
        }
        // Single verification, the rule, rejects both.
        assert_eq!(verify_batch(&items), vec![0, 1]);
    }
}
