//! yuchain's wire: what every participant must agree on byte for byte.
//!
//! - [`pb`]: the protobuf messages (transactions, actions, receipts, blocks,
//!   accounts, proofs), generated from `proto/yuchain/v1/*.proto` by a
//!   pure-Rust compiler, so no system `protoc` is needed;
//! - [`hash`]: blake3 with a domain tag for every use;
//! - [`keys`]: ed25519 keys, PEM files and signing (ed25519-dalek);
//! - [`verify`]: signature validity as a consensus rule (ZIP-215 under
//!   ed25519-zebra), single and batched on all cores;
//! - [`address`]: checksummed `yu1…` addresses;
//! - [`amount`]: fen and yuan;
//! - [`tx`]: signing, transaction ids and stateless checks.
//!
//! This crate does no I/O beyond key files and depends on no async runtime,
//! database, network or RPC stack.

pub mod address;
pub mod amount;
pub mod error;
pub mod hash;
pub mod keys;
pub mod tx;
pub mod verify;

/// Messages generated from the `.proto` schemas.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/yuchain.v1.rs"));
}

pub use address::Address;
pub use hash::{Domain, Hash32};
pub use keys::{PublicKey, Signature, SigningKey};
