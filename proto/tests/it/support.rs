//! Fixtures, a pool of valid signatures, rayon pools, and the check that a
//! vector gets one verdict on every path.

use std::path::PathBuf;
use std::sync::OnceLock;

use rayon::ThreadPool;
use yuchain_proto::keys::{PublicKey, Signature, SigningKey};
use yuchain_proto::verify::{SignedMessage, verify_batch, verify_one};

/// An owned signed message: a vector under test or a valid filler.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    /// The signer's key bytes.
    pub(crate) public_key: PublicKey,
    /// The signature bytes.
    pub(crate) signature: Signature,
    /// The signed bytes.
    pub(crate) message: Vec<u8>,
}

impl Signed {
    /// Parses hex fields (a fixture row).
    pub(crate) fn from_hex(public_key: &str, signature: &str, message: &str) -> Signed {
        let public_key =
            PublicKey::from_slice(&hex::decode(public_key).expect("hex key")).expect("32-byte key");
        let signature = Signature::from_slice(&hex::decode(signature).expect("hex signature"))
            .expect("64-byte signature");
        let message = hex::decode(message).expect("hex message");
        Signed {
            public_key,
            signature,
            message,
        }
    }

    /// The borrowed form `verify_batch` takes.
    pub(crate) fn item(&self) -> SignedMessage<'_> {
        SignedMessage {
            public_key: self.public_key,
            signature: self.signature,
            message: &self.message,
        }
    }

    /// `verify_one`'s verdict.
    pub(crate) fn verify_one(&self) -> bool {
        verify_one(&self.public_key, &self.message, &self.signature).is_ok()
    }
}

/// The borrowed forms of `signed`, in order.
pub(crate) fn items(signed: &[Signed]) -> Vec<SignedMessage<'_>> {
    signed.iter().map(Signed::item).collect()
}

/// A fixture file's text.
pub(crate) fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The most valid fillers any test uses.
pub(crate) const VALID_POOL_SIZE: usize = 512;

/// Valid signatures by distinct keys on distinct messages of varied length.
pub(crate) fn valid_pool() -> &'static [Signed] {
    static POOL: OnceLock<Vec<Signed>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..VALID_POOL_SIZE)
            .map(|i| {
                let key = SigningKey::for_test(&format!("it valid {i}"));
                let message = format!("valid message {i}: {}", "x".repeat(i % 97)).into_bytes();
                let signature = key.sign(&message);
                Signed {
                    public_key: key.public_key(),
                    signature,
                    message,
                }
            })
            .collect()
    })
}

/// Explicit rayon pools; the global default pool is used as well.
fn pools() -> &'static [(usize, ThreadPool)] {
    static POOLS: OnceLock<Vec<(usize, ThreadPool)>> = OnceLock::new();
    POOLS.get_or_init(|| {
        [1, 3]
            .into_iter()
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("rayon pool");
                (threads, pool)
            })
            .collect()
    })
}

/// `verify_batch(items)` on a one-thread pool, the default pool and a
/// three-thread pool, labelled.
pub(crate) fn verify_batch_on_every_pool(items: &[SignedMessage<'_>]) -> Vec<(String, Vec<usize>)> {
    let mut results = vec![("default pool".to_string(), verify_batch(items))];
    for (threads, pool) in pools() {
        results.push((
            format!("{threads}-thread pool"),
            pool.install(|| verify_batch(items)),
        ));
    }
    results
}

/// Asserts that `verify_batch(items)` names exactly `expected` on every pool.
pub(crate) fn assert_batch_names(items: &[SignedMessage<'_>], expected: &[usize], context: &str) {
    for (pool, bad) in verify_batch_on_every_pool(items) {
        assert_eq!(
            bad,
            expected,
            "{context}, {pool}, batch of {}: wrong bad indices",
            items.len()
        );
    }
}

/// Numbers of valid fillers a vector is mixed with.
pub(crate) const FILLER_COUNTS: [usize; 5] = [1, 3, 7, 64, 300];

/// Asserts that `vector` gets the verdict `valid` from `verify_one`, from
/// `verify_batch` alone, and from `verify_batch` first, in the middle and
/// last among 1, 3, 7, 64 and 300 valid signatures, on every pool.
pub(crate) fn assert_verdict_everywhere(vector: &Signed, valid: bool, name: &str) {
    assert_eq!(vector.verify_one(), valid, "{name}: verify_one");
    let flagged = |position: usize| if valid { vec![] } else { vec![position] };
    assert_batch_names(&[vector.item()], &flagged(0), &format!("{name} alone"));
    for count in FILLER_COUNTS {
        let fillers = &valid_pool()[..count];
        let mut positions = vec![0, count / 2, count];
        positions.dedup();
        for position in positions {
            let mut batch = items(fillers);
            batch.insert(position, vector.item());
            assert_batch_names(
                &batch,
                &flagged(position),
                &format!("{name} at {position} among {count} valid"),
            );
        }
    }
}

/// Interleaves `vectors` into `fillers` (every `stride`-th slot, wrapping
/// to the end when fillers run out) and returns the batch with the
/// positions of the vectors whose verdict is invalid.
pub(crate) fn interleave<'a>(
    vectors: &'a [(Signed, bool)],
    fillers: &'a [Signed],
    stride: usize,
) -> (Vec<SignedMessage<'a>>, Vec<usize>) {
    let mut batch = Vec::new();
    let mut bad = Vec::new();
    let mut fillers = fillers.iter();
    for (vector, valid) in vectors {
        for filler in fillers.by_ref().take(stride) {
            batch.push(filler.item());
        }
        if !valid {
            bad.push(batch.len());
        }
        batch.push(vector.item());
    }
    batch.extend(fillers.map(Signed::item));
    (batch, bad)
}
