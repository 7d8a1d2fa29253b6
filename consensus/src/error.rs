//! The one error type of the consensus crate.
//!
//! Almost every variant describes an input that was rejected: the core drops
//! it without changing any state and reports it as [`crate::Action::Reject`]
//! so the driver can log it or score the peer. None of them is a panic.

use thiserror::Error;

use crate::types::{Epoch, Round};

/// Why an input was rejected, or why a call failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    /// The bytes are longer than the limit for any message.
    #[error("message is {size} bytes, the limit is {limit}")]
    MessageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes do not decode as a message.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A message from an epoch this node has already left.
    #[error("message is for epoch {got}, this node is in epoch {current}")]
    StaleEpoch {
        /// The message's epoch.
        got: Epoch,
        /// Ours.
        current: Epoch,
    },
    /// A message from an epoch this node has not reached yet (it starts a sync).
    #[error("message is for epoch {got}, this node is still in epoch {current}")]
    FutureEpoch {
        /// The message's epoch.
        got: Epoch,
        /// Ours.
        current: Epoch,
    },
    /// A round too far ahead of ours to be buffered, or not justified by the
    /// certificate the message carries.
    #[error("round {got} is not acceptable in round {current}: {reason}")]
    RoundNotAcceptable {
        /// The message's round.
        got: Round,
        /// Ours.
        current: Round,
        /// Why.
        reason: &'static str,
    },
    /// A message about a round this node has already left.
    #[error("round {got} is stale, this node is in round {current}")]
    StaleRound {
        /// The message's round.
        got: Round,
        /// Ours.
        current: Round,
    },
    /// A signer index outside the epoch's validator set.
    #[error("validator index {0} is not in the validator set")]
    UnknownValidator(u16),
    /// A signature that does not verify under the consensus rule.
    #[error("bad signature: {0}")]
    BadSignature(&'static str),
    /// A certificate with fewer distinct signers than a quorum.
    #[error("certificate has {got} signers, a quorum is {needed}")]
    TooFewSigners {
        /// Distinct signers present.
        got: usize,
        /// The quorum.
        needed: usize,
    },
    /// A certificate whose signers are repeated or out of order.
    #[error("certificate signers must be strictly increasing (repeated or unsorted signer)")]
    RepeatedSigner,
    /// A certificate or block that contradicts itself or its parent.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was checked.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proposal by someone other than the round's leader.
    #[error("proposal for round {round} is not from its leader")]
    NotLeader {
        /// The round.
        round: Round,
    },
    /// The leader proposed two different blocks in one round.
    #[error("leader equivocated in round {round}")]
    Equivocation {
        /// The round.
        round: Round,
    },
    /// A validator voted for two different blocks, or timed out twice with
    /// different data, in one round.
    #[error("validator {signer} sent conflicting {what} in round {round}")]
    Conflicting {
        /// votes or timeouts.
        what: &'static str,
        /// The signer's index.
        signer: u16,
        /// The round.
        round: Round,
    },
    /// A message this node already has; ignored.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// The block's timestamp is not after its parent's, or too far from the
    /// local clock.
    #[error("block timestamp {timestamp_ms} ms rejected: {reason}")]
    Timestamp {
        /// The block's timestamp.
        timestamp_ms: u64,
        /// Why.
        reason: &'static str,
    },
    /// The block's parent is unknown here (a sync was started).
    #[error("unknown parent block")]
    UnknownParent,
    /// A bounded buffer is full; the input was dropped.
    #[error("{0} buffer is full")]
    BufferFull(&'static str),
    /// A safety rule forbids this vote or timeout.
    #[error("safety rule: {0}")]
    Unsafe(&'static str),
    /// Height, round or epoch arithmetic would overflow.
    #[error("{0} overflows")]
    Overflow(&'static str),
    /// The driver handed the core inconsistent persisted state or config.
    #[error("inconsistent state: {0}")]
    Inconsistent(&'static str),
    /// The payload answer or check result refers to nothing pending.
    #[error("nothing pending for this {0}")]
    NotPending(&'static str),
}

/// The crate's result type.
pub type Result<T, E = ConsensusError> = std::result::Result<T, E>;
