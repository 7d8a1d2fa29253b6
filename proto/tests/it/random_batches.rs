//! Random valid batches with random corrupted positions: `verify_batch`
//! names exactly those positions, on one thread and on the default pool.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use yuchain_proto::keys::SigningKey;
use yuchain_proto::verify::verify_batch;

use crate::support::{Signed, items, valid_pool};

/// Ways to spoil a valid signature; each gives an invalid one (with
/// overwhelming probability for the hashing ones, always for s).
#[derive(Clone, Copy, Debug)]
enum Corruption {
    /// Flip one bit of R.
    FlipR(u8),
    /// Flip one bit of s (s changes mod L, or stops being canonical).
    FlipS(u8),
    /// Flip one bit of the message.
    FlipMessage(u16),
    /// Flip one bit of the public key.
    FlipKey(u8),
    /// A valid signature on the same message by another key.
    WrongSigner,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        any::<u8>().prop_map(Corruption::FlipR),
        any::<u8>().prop_map(Corruption::FlipS),
        any::<u16>().prop_map(Corruption::FlipMessage),
        any::<u8>().prop_map(Corruption::FlipKey),
        Just(Corruption::WrongSigner),
    ]
}

fn flip(bytes: &mut [u8], bit: usize) {
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
}

fn corrupt(signed: &mut Signed, corruption: Corruption) {
    match corruption {
        Corruption::FlipR(bit) => flip(&mut signed.signature.0[..32], bit.into()),
        Corruption::FlipS(bit) => flip(&mut signed.signature.0[32..], bit.into()),
        Corruption::FlipMessage(bit) => flip(&mut signed.message, bit.into()),
        Corruption::FlipKey(bit) => flip(&mut signed.public_key.0, bit.into()),
        Corruption::WrongSigner => {
            signed.signature = SigningKey::for_test("it intruder").sign(&signed.message);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn verify_batch_names_exactly_the_corrupted_positions(
        size in 1usize..=300,
        start in 0usize..200,
        picks in proptest::collection::vec((any::<Index>(), corruption()), 0..16),
    ) {
        let mut batch: Vec<Signed> = valid_pool()[start..start + size].to_vec();
        // One corruption per position, so two cannot cancel out.
        let corrupted: BTreeMap<usize, Corruption> =
            picks.iter().map(|(index, corruption)| (index.index(size), *corruption)).collect();
        for (&position, &corruption) in &corrupted {
            corrupt(&mut batch[position], corruption);
        }
        let expected: Vec<usize> = corrupted.keys().copied().collect();
        let items = items(&batch);
        for (position, signed) in batch.iter().enumerate() {
            prop_assert_eq!(signed.verify_one(), !corrupted.contains_key(&position));
        }
        prop_assert_eq!(&verify_batch(&items), &expected, "default pool");
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        prop_assert_eq!(&one_thread.install(|| verify_batch(&items)), &expected, "one thread");
    }
}
