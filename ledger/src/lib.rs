//! yuchain's ledger: digital money as a deterministic state machine.
//!
//! [`Ledger::apply_block`] takes a block of signed transactions and returns a
//! receipt for each, the new state root, and every change to persist. The
//! same genesis and the same blocks give every node the same receipts and
//! roots: no clocks (time is the block's), no randomness, no floating point,
//! no iteration over hash maps where order matters, and checked arithmetic
//! on every amount.
//!
//! - [`params`]: chain parameters (tier limits, fees) and the genesis document;
//! - [`state`]: accounts, merchant payments and chain totals, and their keys;
//! - [`tree`]: the authenticated state tree (bucketed binary Merkle, blake3) and
//!   proof verification that needs only a root;
//! - [`ledger`]: genesis, block checks and application, conservation;
//! - [`time`]: Asia/Shanghai days and years of block time.
//!
//! This crate does no I/O and depends on no async runtime, database, network
//! or RPC stack; the node persists what [`AppliedBlock`] reports.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
mod exec;
pub mod ledger;
pub mod params;
pub mod state;
pub mod testkit;
pub mod time;
pub mod tree;
pub mod view;

pub use error::{BlockError, GenesisError, LoadError, ProofError};
pub use ledger::{AppliedBlock, Ledger, TRANSACTIONS_PER_BLOCK_MAX, block_hash};
pub use params::{ChainParams, Genesis, GenesisOperator, LOAD_TEST_WALLETS_MAX, LoadTestWallets};
pub use state::{Account, ChainTotals, Payment, StateKey};
pub use tree::verify_proof;
pub use view::{StateView, ViewError};

#[cfg(test)]
#[path = "tests/actions.rs"]
mod action_tests;
#[cfg(test)]
#[path = "tests/properties.rs"]
mod property_tests;
