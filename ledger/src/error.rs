//! Errors of the ledger. Transactions that fail business rules are not
//! errors: they get a receipt with a [`ResultCode`](yuchain_proto::pb::ResultCode).
//! These are for blocks that can never be applied, bad genesis documents and
//! proofs that do not check.

use thiserror::Error;
use yuchain_proto::Hash32;
use yuchain_proto::error::TxError;

/// Why a block is refused. A refused block changes nothing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The block has no header.
    #[error("block has no header")]
    MissingHeader,
    /// The header names another chain.
    #[error("block is for chain {got:?}, this is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The block's.
        got: String,
    },
    /// The height is not the next one.
    #[error("block height {got}, expected {expected}")]
    WrongHeight {
        /// The next height.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// The parent hash is not the last block's.
    #[error("block parent {got}, expected {expected}")]
    WrongParent {
        /// The last block's hash.
        expected: Hash32,
        /// The block's parent hash.
        got: Hash32,
    },
    /// The timestamp goes back in time.
    #[error("block time {got} ms is before its parent's {parent} ms")]
    TimeWentBack {
        /// The parent's time.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// A header root does not match this node's: the block was built on
    /// another state, or this node has diverged.
    #[error("block {field} is {got}, this node has {expected}")]
    RootMismatch {
        /// Which root.
        field: &'static str,
        /// This node's.
        expected: Hash32,
        /// The block's.
        got: Hash32,
    },
    /// `tx_count` does not match the body.
    #[error("header says {header} transactions, body has {body}")]
    TxCountMismatch {
        /// In the header.
        header: u32,
        /// In the body.
        body: usize,
    },
    /// More transactions than a block may carry.
    #[error("block has {count} transactions, the limit is {limit}")]
    TooManyTransactions {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Executing the block would have broken conservation: the balances it
    /// changed moved by another amount than it issued minus redeemed. This
    /// is a ledger bug, never bad input; the block is undone and refused.
    #[error(
        "block {height} would move balances by {balance_delta} fen while issuing minus redeeming {supply_delta} fen"
    )]
    ConservationViolated {
        /// The block's height.
        height: u64,
        /// The sum of the balance changes.
        balance_delta: i128,
        /// Issued minus redeemed in the block.
        supply_delta: i128,
    },
    /// A transaction that can never be valid (bad bytes or signature): an
    /// honest proposer never includes one.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTransaction {
        /// Its position.
        index: usize,
        /// Why.
        error: TxError,
    },
}

/// A genesis document that cannot start a chain.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GenesisError {
    /// Not valid TOML of the genesis shape.
    #[error("genesis is not valid TOML: {0}")]
    Parse(String),
    /// Valid TOML with invalid content.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

/// A state proof that does not check.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is against another root.
    #[error("proof is against root {got}, expected {expected}")]
    WrongRoot {
        /// The trusted root.
        expected: Hash32,
        /// The proof's.
        got: Hash32,
    },
    /// The proof bytes do not decode.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The Merkle path does not lead to the root.
    #[error("proof does not verify: {0}")]
    Invalid(String),
}

/// Loading a ledger from stored state failed: the store is inconsistent.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A record does not decode.
    #[error("stored {what} does not decode: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        reason: String,
    },
    /// The rebuilt state's root is not the stored root.
    #[error("stored state has root {computed}, the head says {expected}")]
    RootMismatch {
        /// From the head.
        expected: Hash32,
        /// Recomputed.
        computed: Hash32,
    },
}
