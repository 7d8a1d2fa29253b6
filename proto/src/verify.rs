//! Signature validity, a consensus rule.
//!
//! Every honest node must accept exactly the same signatures, whether it checks
//! them one at a time or in a batch, or a Byzantine sender could split honest
//! nodes over a block. yuchain fixes the ZIP-215 rule (the cofactored
//! verification equation, canonical `s`, any encoding of `A` and `R` that
//! decompresses) and checks single and batched signatures under it with
//! ed25519-zebra. ed25519-dalek is used only for keys and signing.
//!
//! Batch verification draws its random coefficients from a blake3 stream
//! seeded with everything in the batch (a Fiat–Shamir choice), so a sender
//! cannot predict them before fixing its signatures. The verdicts are those
//! of single verification: a batch that passes is accepted whole (under
//! ZIP-215 a batch can pass with a bad signature in it only with probability
//! about 2^-128), and every signature of a failing batch is judged by single
//! verification, which is the rule itself. (ed25519-zebra pairs the
//! coefficients with signatures in the order of its internal hash map, which
//! is seeded per process, so that negligible chance is not the same on every
//! node; computing the batch equation ourselves in input order would make it
//! so.)
//!
//! A failing batch is split into [`FALLBACK_GROUPS`] groups, each checked as
//! a batch, and the signatures of failing groups are checked one by one. A
//! few bad signatures among many cost little more than the batch, and a
//! batch of nothing but bad signatures costs about twice single checks, not
//! the many times that splitting all the way down would.

use std::convert::Infallible;

use ed25519_zebra::batch;
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;

use crate::error::SignatureError;
use crate::hash::Domain;
use crate::keys::{PublicKey, Signature};

/// Below this many signatures a batch is checked one by one: the batch
/// equation's fixed cost is not worth it.
const BATCH_SIZE_MIN: usize = 4;

/// The most signatures one thread checks in one batch equation. Larger chunks
/// gain little and split work across cores worse.
const CHUNK_SIZE_MAX: usize = 256;

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
/// current rayon pool. Returns the indices of the invalid ones, in ascending
/// order; empty means all are valid. The answer is exactly what
/// [`verify_one`] would say for each item.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Vec<usize> {
    if items.is_empty() {
        return Vec::new();
    }
    let threads = rayon::current_num_threads().max(1);
    let chunk_size = items
        .len()
        .div_ceil(threads)
        .clamp(BATCH_SIZE_MIN, CHUNK_SIZE_MAX);
    let mut bad: Vec<usize> = items
        .par_chunks(chunk_size)
        .enumerate()
        .flat_map_iter(|(chunk_index, chunk)| {
            let offset = chunk_index * chunk_size;
            let mut bad = Vec::new();
            verify_chunk(chunk, offset, &mut bad);
            bad
        })
        .collect();
    bad.sort_unstable();
    bad
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

/// Whether the ZIP-215 batch equation holds for all of `items`.
fn batch_equation_holds(items: &[SignedMessage<'_>]) -> bool {
    let mut seed = Domain::BatchVerify.hasher();
    let mut verifier = batch::Verifier::new();
    for item in items {
        seed.update(&item.public_key.0);
        seed.update(&item.signature.0);
        seed.update(&(item.message.len() as u64).to_le_bytes());
        seed.update(item.message);
        let signature = ed25519_zebra::Signature::from_bytes(&item.signature.0);
        verifier.queue((
            VerificationKeyBytes::from(item.public_key.0),
            signature,
            item.message,
        ));
    }
    verifier.verify(TranscriptRng(seed.finalize_xof())).is_ok()
}

/// A deterministic, unpredictable-in-advance random stream: blake3's extended
/// output over the whole batch.
struct TranscriptRng(blake3::OutputReader);

impl rand_core::TryRng for TranscriptRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(destination);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TranscriptRng {}

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
}
