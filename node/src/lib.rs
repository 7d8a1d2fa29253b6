//! `yuchain-node`: a validator or observer of the yuchain payment network.
//!
//! The node wires the pure cores to the outside world and owns the threads
//! (see `docs/ARCHITECTURE.md` and the "Node pipeline" of the design):
//!
//! - [`home`], [`config`], [`genesis`]: a node's directory, its
//!   `config.toml`, and the chain's genesis file (the ceremony);
//! - [`mempool`]: admitted transactions by sender and sequence, bounded and
//!   fair;
//! - [`batch`]: batches ahead of consensus, acknowledgements, availability
//!   certificates and block payloads;
//! - [`persist`]: from what the ledger applied to what the store commits,
//!   and the committer thread that writes it;
//! - [`chain`]: opening the chain at start-up (genesis, the ledger, what
//!   consensus restarts from);
//! - [`run`]: the running node: [`driver`] (consensus), [`batcher`],
//!   [`admission`] (the gateway's backend), [`executor`], [`metrics`], all
//!   sharing [`shared::Shared`];
//! - [`demo`]: `yuchain-node demo`, the ledger demo (one day of payments
//!   through the ledger and RocksDB, no network).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admission;
pub mod batch;
pub mod batcher;
pub mod chain;
pub mod config;
pub mod demo;
pub mod driver;
pub mod executor;
pub mod genesis;
pub mod home;
pub mod mempool;
pub mod metrics;
pub mod persist;
pub mod proofs;
pub mod run;
pub mod shared;
#[cfg(test)]
mod testnode;
