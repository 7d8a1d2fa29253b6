//! The consensus signature rule (ZIP-215, see `yuchain_proto::verify`)
//! against the published edge-case vectors, single and batched.
//!
//! Every vector must get the same verdict from [`verify_one`], from
//! [`verify_batch`] alone, and from [`verify_batch`] mixed into batches of
//! valid signatures of several sizes at several positions, on a one-thread
//! rayon pool, the default pool and a three-thread pool: a batch names
//! exactly the positions of the invalid vectors, every time.
//!
//! The expected verdicts are worked out from ZIP-215 itself, per vector, and
//! cross-checked by a small spec-level implementation on curve25519-dalek
//! (`reference`), independent of ed25519-zebra.
//!
//! [`verify_one`]: yuchain_proto::verify::verify_one
//! [`verify_batch`]: yuchain_proto::verify::verify_batch

mod determinism;
mod random_batches;
mod reference;
mod speccheck;
mod support;
mod zip215;
