//! Why `yuchain_proto::verify` computes the batch equation itself.
//!
//! A batch check must be a function of its input alone. ed25519-zebra 5
//! (`batch::Verifier`) keeps the queued signatures in a `hashbrown::HashMap`
//! keyed by verification key, with hashbrown's default, randomly seeded
//! hasher (foldhash: a per-process seed and a per-map seed), and draws one
//! coefficient per signature while iterating that map. So which coefficient
//! goes with which signature differs from run to run (and from map to map)
//! even for the same coefficient stream: the ~2^-128 chance of a batch
//! passing with an invalid signature in it would not be the same on every
//! node. The test below pins this behaviour of ed25519-zebra with a fixed,
//! hand-picked coefficient stream, so that the batch equation holds for one
//! assignment of coefficients and fails for the other. yuchain's own
//! equation pairs the i-th coefficient with the i-th signature (unit test
//! `the_ith_coefficient_goes_with_the_ith_signature` in `src/verify.rs`).

use std::convert::Infallible;

use curve25519_dalek::scalar::Scalar;
use ed25519_zebra::{VerificationKeyBytes, batch};

use crate::support::valid_pool;

/// Yields the 128-bit coefficients 1, 2, 1, 2, … (ed25519-zebra draws 16
/// bytes per signature).
struct OneTwo(u8);

impl rand_core::TryRng for OneTwo {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("ed25519-zebra fills bytes")
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("ed25519-zebra fills bytes")
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Infallible> {
        assert_eq!(destination.len(), 16);
        destination.fill(0);
        destination[0] = 1 + self.0 % 2;
        self.0 += 1;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OneTwo {}

/// `signature` with s replaced by s + delta (mod L).
fn shift_s(signature: &[u8; 64], delta: Scalar) -> ed25519_zebra::Signature {
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    let s = Scalar::from_canonical_bytes(s).expect("canonical s") + delta;
    let mut shifted = *signature;
    shifted[32..].copy_from_slice(s.as_bytes());
    ed25519_zebra::Signature::from_bytes(&shifted)
}

#[test]
fn zebra_batch_coefficients_follow_hash_map_order_not_the_input() {
    // Two valid signatures by different keys, spoiled by s1 + 2 and s2 - 1:
    // the batch equation is then -(z1·2 - z2·1)·B = 0, which holds when
    // the first signature gets z = 1 and the second z = 2, and fails the
    // other way round (-3·B).
    let [one, two] = [&valid_pool()[0], &valid_pool()[1]];
    let first = shift_s(&one.signature.0, Scalar::from(2u8));
    let second = shift_s(&two.signature.0, -Scalar::ONE);
    let mut passed = 0;
    let mut failed = 0;
    for _ in 0..256 {
        let mut verifier = batch::Verifier::new();
        verifier.queue((
            VerificationKeyBytes::from(one.public_key.0),
            first,
            &one.message[..],
        ));
        verifier.queue((
            VerificationKeyBytes::from(two.public_key.0),
            second,
            &two.message[..],
        ));
        match verifier.verify(OneTwo(0)) {
            Ok(()) => passed += 1,
            Err(_) => failed += 1,
        }
    }
    println!("same batch, same coefficient stream: passed {passed}, failed {failed} of 256");
    // Same input, same coefficient stream, both outcomes: the assignment of
    // coefficients to signatures is not a function of the input.
    assert!(passed > 0 && failed > 0, "passed {passed}, failed {failed}");
}
