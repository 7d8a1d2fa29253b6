//! What an audit finds wrong, and why it could not go on.

use serde::Serialize;
use yuchain_proto::Hash32;

/// A transaction's place in its block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxAt {
    /// Its index in the block.
    pub index: u32,
    /// Its id (hex), when it could be computed.
    pub tx_id: String,
}

/// The first thing that is not what the validators certified or what
/// re-execution gives: where (height, transaction) and what (the item, the
/// value expected and the value found).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    /// The block's height.
    pub height: u64,
    /// The transaction, when the discrepancy is about one.
    pub transaction: Option<TxAt>,
    /// What differs (e.g. `receipt code`, `state root after the block`).
    pub what: String,
    /// What the auditor expected (from the certificates, the signatures or
    /// its own re-execution).
    pub expected: String,
    /// What the source holds.
    pub actual: String,
}

impl Discrepancy {
    /// A discrepancy in block `height`.
    pub fn at(
        height: u64,
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Discrepancy {
        Discrepancy {
            height,
            transaction: None,
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    /// The same, about transaction `index` (id `tx_id`) of the block.
    pub fn in_tx(mut self, index: usize, tx_id: Option<Hash32>) -> Discrepancy {
        self.transaction = Some(TxAt {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            tx_id: tx_id.map(|id| id.to_string()).unwrap_or_default(),
        });
        self
    }
}

impl std::fmt::Display for Discrepancy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "height {}", self.height)?;
        if let Some(tx) = &self.transaction {
            write!(formatter, ", transaction {}", tx.index)?;
            if !tx.tx_id.is_empty() {
                write!(formatter, " ({})", tx.tx_id)?;
            }
        }
        write!(
            formatter,
            ": {}: expected {}, found {}",
            self.what, self.expected, self.actual
        )
    }
}

/// Why an audit stopped.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The chain does not check out: the first discrepancy found.
    #[error("the chain does not check out at {0}")]
    Discrepancy(Box<Discrepancy>),
    /// A block of an epoch this auditor has no validator set for (the
    /// chain changed its validator set; see ARCHITECTURE, "Epochs are not
    /// followed yet").
    #[error(
        "block {height} {reason}; the auditor knows only the validator set of epoch 0 (from \
         the genesis file) and cannot check it"
    )]
    UnknownEpoch {
        /// The block's height.
        height: u64,
        /// What it does (is of epoch 3, changes the validator set, ...).
        reason: String,
    },
    /// Reading the source failed (not a finding about the chain).
    #[error("reading {source_name}: {reason}")]
    Source {
        /// The data directory or node.
        source_name: String,
        /// What failed.
        reason: String,
    },
    /// The genesis file cannot be used.
    #[error("the genesis file {path}: {reason}")]
    Genesis {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The replay's checkpoint cannot be read or written.
    #[error("the checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the report or an export failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<Discrepancy> for AuditError {
    fn from(discrepancy: Discrepancy) -> AuditError {
        AuditError::Discrepancy(Box::new(discrepancy))
    }
}

/// A result of the audit.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;
