//! The core's interface: configuration, restored state, inputs and
//! actions.

use yuchain_proto::PublicKey;

use crate::error::ConsensusError;
use crate::safety::SafetyData;
use crate::types::{Block, BlockHash, ChainTag, Epoch, Height, QuorumCert, Round};

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
    /// Propose without the persisted proposer guard (a restarted leader
    /// may sign a second block for its round).
    NoProposerGuard,
}

/// The chain's first epoch.
#[derive(Clone, Debug)]
pub struct Genesis {
    /// The chain every consensus signature names.
    pub chain: ChainTag,
    /// The root block's hash (e.g. of the genesis document).
    pub hash: BlockHash,
    /// The root's time.
    pub timestamp_ms: u64,
    /// Epoch 0's validators.
    pub validators: Vec<PublicKey>,
}

/// A committed block as the driver stores it, with the certificate that
/// makes it final, so anyone can check the finality later (wallets,
/// auditors, syncing nodes).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// The two-chain certificate that committed it (Jolteon §4): a quorum
    /// certificate of the block's epoch whose `vote.commits()` names this
    /// block, or a later block committed in the same step; then the blocks
    /// between (stored too, each certified by the next one's `justify`)
    /// link the two. See [`CommittedBlock::finalized_by`].
    pub commit_qc: QuorumCert,
    /// For a block that ends its epoch, the proof it was committed.
    pub epoch_end: Option<EpochEndProof>,
}

impl CommittedBlock {
    /// The block that [`CommittedBlock::commit_qc`] commits directly: this
    /// block's hash or that of a descendant (at `commit_qc.vote.height - 1`).
    pub fn finalized_by(&self) -> Option<BlockHash> {
        self.commit_qc.vote.commits()
    }
}

/// The block that starts an epoch (genesis, or the block that ended the
/// previous epoch): its children are justified by the epoch's root
/// certificate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EpochRoot {
    /// The root block's hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: Height,
    /// Its time.
    pub timestamp_ms: u64,
}

/// Where a core starts from instead of replaying every block since genesis:
/// the current epoch, its validators and root, and a recent window of
/// committed blocks ending at the committed head. The driver builds it from
/// its own store (trusted; the head's certificate is checked anyway).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// The current epoch.
    pub epoch: Epoch,
    /// Its validators.
    pub validators: Vec<PublicKey>,
    /// The block that started it.
    pub root: EpochRoot,
    /// The newest committed blocks, oldest first, ending at the committed
    /// head (empty when the head is the root). The core keeps the last
    /// [`COMMITTED_WINDOW_BLOCKS`](crate::COMMITTED_WINDOW_BLOCKS) of them
    /// to answer sync requests; older blocks are read through
    /// [`Action::ReadCommitted`].
    pub recent: Vec<CommittedBlock>,
}

impl Checkpoint {
    /// The checkpoint after a whole committed chain from height 1 (tests,
    /// simulators, a node replaying its store): follows every epoch change
    /// from genesis and keeps the last `window` blocks.
    pub fn from_chain(
        genesis: &Genesis,
        chain: &[CommittedBlock],
        window: usize,
    ) -> Result<Checkpoint, ConsensusError> {
        let mut epoch = Epoch(0);
        let mut validators = genesis.validators.clone();
        let mut root = EpochRoot {
            hash: genesis.hash,
            height: Height(0),
            timestamp_ms: genesis.timestamp_ms,
        };
        let mut head = root;
        for entry in chain {
            let block = &entry.block;
            if block.parent != head.hash || block.height != head.height.next()? {
                return Err(ConsensusError::Inconsistent(
                    "committed blocks do not form one chain",
                ));
            }
            head = EpochRoot {
                hash: block.hash(),
                height: block.height,
                timestamp_ms: block.timestamp_ms,
            };
            if let Some(keys) = &block.next_validators {
                epoch = epoch.next()?;
                validators = keys.clone();
                root = head;
            }
        }
        let skip = chain.len().saturating_sub(window);
        Ok(Checkpoint {
            epoch,
            validators,
            root,
            recent: chain[skip..].to_vec(),
        })
    }
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
    /// Where the committed chain stands (none: at genesis).
    pub checkpoint: Option<Checkpoint>,
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
    /// The driver's answer to [`Action::ReadCommitted`], from its store.
    CommittedRead {
        /// The peer the blocks are for.
        peer: PublicKey,
        /// The first height asked for.
        from_height: Height,
        /// The committed blocks from `from_height` on, in order (fewer than
        /// asked, or none, if the store has fewer).
        blocks: Vec<CommittedBlock>,
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
    /// The block is final: store it (atomically with its execution, with its
    /// certificate) in order. Need not be durable before later actions
    /// leave (see [`Action::durability`]), except an epoch-ending one.
    Commit(Box<CommittedBlock>),
    /// Read committed blocks older than the core's window from the store and
    /// answer with [`Input::CommittedRead`] (a peer is syncing from far
    /// behind).
    ReadCommitted {
        /// The peer to answer.
        peer: PublicKey,
        /// The first height.
        from_height: Height,
        /// How many blocks at most.
        count: usize,
    },
    /// The epoch ended: no uncommitted block of it (or of an earlier epoch)
    /// will ever be committed. Delete those stored by
    /// [`Action::PersistBlock`].
    DropUncommitted {
        /// The epoch that ended.
        epoch: Epoch,
    },
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

/// What must be durable before what: lets the driver pipeline writes
/// instead of syncing each one before every send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Durability {
    /// Nothing to persist.
    None,
    /// Durable before any later action of this step or a later one leaves
    /// the node (a send or broadcast): safety data and voted blocks. A
    /// crash must never let the node sign something that contradicts what
    /// it already sent.
    BeforeNextSend,
    /// Written in order, possibly in the background: a crash may lose a
    /// suffix of these, which the node fetches again from peers (its safety
    /// data stays valid). When the commit ends an epoch it must be durable
    /// before the next [`Durability::BeforeNextSend`] write: the next
    /// epoch's safety data must never be on disk without the block that
    /// started the epoch.
    Pipelined {
        /// Whether this commit ends its epoch.
        epoch_end: bool,
    },
}

impl Action {
    /// What this action needs durably written, and before what.
    pub fn durability(&self) -> Durability {
        match self {
            Action::PersistSafety(_) | Action::PersistBlock(_) => Durability::BeforeNextSend,
            Action::Commit(entry) => Durability::Pipelined {
                epoch_end: entry.block.next_validators.is_some(),
            },
            _ => Durability::None,
        }
    }
}
