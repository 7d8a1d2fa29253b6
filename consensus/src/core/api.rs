//! The core's interface: configuration, restored state, inputs and
//! actions.

use yuchain_proto::PublicKey;

use crate::error::ConsensusError;
use crate::safety::SafetyData;
use crate::types::{Block, BlockHash, Epoch, Height, QuorumCert, Round};

/// Tunables. All times are logical milliseconds from [`Input::Tick`].
#[derive(Clone, Debug)]
pub struct Config {
    /// A round's first timeout.
    pub round_timeout_ms: u64,
    /// The longest round timeout after repeated timeouts (doubling).
    pub round_timeout_ms_max: u64,
    /// How far a block's timestamp may be from this node's clock.
    pub timestamp_drift_ms_max: u64,
    /// How long to wait for a sync answer before asking again.
    pub sync_retry_ms: u64,
    /// Test-only switches.
    #[cfg(feature = "testing")]
    pub testing: Testing,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            round_timeout_ms: 1_000,
            round_timeout_ms_max: 30_000,
            timestamp_drift_ms_max: 5_000,
            sync_retry_ms: 1_000,
            #[cfg(feature = "testing")]
            testing: Testing::default(),
        }
    }
}

/// Test-only switches (feature `testing`): break one safety rule on purpose
/// to show the simulator notices, or skip signature checks to measure the
/// protocol alone.
#[cfg(feature = "testing")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Testing {
    /// A rule to break.
    pub broken_rule: Option<BrokenRule>,
    /// Accept every signature (throughput benchmarks only).
    pub skip_signature_checks: bool,
    /// On a certified chain that conflicts with a committed block, do not
    /// halt: skip the conflicting commit and carry on, so a broken rule runs
    /// on until the simulator's own checkers (agreement, one chain) see it.
    pub halt_on_fork_disabled: bool,
}

/// A safety rule to break on purpose.
#[cfg(feature = "testing")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenRule {
    /// Vote for any block in a new round, ignoring the lock
    /// ([`SafetyData::safe_to_vote`]).
    IgnoreLock,
    /// Commit a block as soon as it is certified (a one-chain rule).
    CommitOneChain,
}

/// The chain's first epoch.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The root block's hash (e.g. of the genesis document).
    pub hash: BlockHash,
    /// The root's time.
    pub timestamp_ms: u64,
    /// Epoch 0's validators.
    pub validators: Vec<PublicKey>,
}

/// A committed block as the driver stores it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// For a block that ends its epoch, the proof it was committed.
    pub epoch_end: Option<EpochEndProof>,
}

/// Why an epoch-ending block is committed: the certified blocks after it (in
/// its epoch) up to the certificate that committed it under the two-chain
/// rule. Sync hands it to nodes that missed the end of the epoch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EpochEndProof {
    /// The blocks after the epoch-ending block, by height.
    pub blocks: Vec<Block>,
    /// The certificate of the last of them (or of the block itself).
    pub qc: QuorumCert,
}

/// What the driver reloads on restart: only persisted data.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The last [`Action::PersistSafety`] value, if any.
    pub safety: Option<SafetyData>,
    /// Every committed block, from height 1, in order.
    pub committed: Vec<CommittedBlock>,
    /// The uncommitted blocks persisted by [`Action::PersistBlock`].
    pub blocks: Vec<Block>,
}

/// One event for the core.
#[derive(Clone, Debug)]
pub enum Input {
    /// Logical time advanced (and a scheduled tick may be due).
    Tick {
        /// This node's clock.
        now_ms: u64,
    },
    /// A message from a peer.
    Message {
        /// The peer's network identity (used only to answer and to sync).
        from: PublicKey,
        /// The message bytes.
        bytes: Vec<u8>,
        /// This node's clock.
        now_ms: u64,
    },
    /// The answer to [`Action::CheckProposal`].
    ProposalChecked {
        /// The block checked.
        block: BlockHash,
        /// Whether its payload is valid.
        valid: bool,
    },
    /// The answer to [`Action::GetPayload`].
    PayloadReady {
        /// The round it was asked for.
        round: Round,
        /// The payload.
        payload: Vec<u8>,
        /// A new validator set, if this block should end the epoch.
        next_validators: Option<Vec<PublicKey>>,
    },
}

/// What the driver must do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Write this durably (synced) before performing any later action.
    PersistSafety(Box<SafetyData>),
    /// Store this uncommitted block durably before performing any later
    /// action (it is about to be voted for); hand it back in
    /// [`Restored::blocks`] after a restart, and drop it once a block at
    /// its height is committed. Every certified block is thus held by at
    /// least f + 1 honest validators even across crashes, so the chain can
    /// always be extended.
    PersistBlock(Box<Block>),
    /// Send to every validator of the current epoch (and observers).
    Broadcast(Vec<u8>),
    /// Send to one peer.
    Send {
        /// The peer.
        to: PublicKey,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Deliver an [`Input::Tick`] at or after this time.
    ScheduleTick {
        /// When.
        at_ms: u64,
    },
    /// Build a payload for a block this node proposes; answer with
    /// [`Input::PayloadReady`].
    GetPayload {
        /// The epoch.
        epoch: Epoch,
        /// The round.
        round: Round,
        /// The block's height.
        height: Height,
        /// The parent block.
        parent: BlockHash,
    },
    /// Check a proposed block's payload (and any validator-set change);
    /// answer with [`Input::ProposalChecked`].
    CheckProposal(Block),
    /// The block is final: store it (atomically with its execution) in order.
    Commit(CommittedBlock),
    /// A committed block ended the epoch; this set validates the next.
    EpochChanged {
        /// The new epoch.
        epoch: Epoch,
        /// Its validators.
        validators: Vec<PublicKey>,
    },
    /// An input was rejected without effect (log it, score the peer).
    Reject {
        /// Who sent it, for messages.
        from: Option<PublicKey>,
        /// Why.
        error: ConsensusError,
    },
    /// A certified chain conflicts with a committed block: the safety
    /// assumption (at most f faulty) is broken. The core stops; an operator
    /// must intervene.
    Halt {
        /// What was found.
        reason: String,
    },
}
