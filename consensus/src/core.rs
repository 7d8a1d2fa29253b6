//! The consensus state machine: [`Core::step`] from inputs to actions.
//!
//! Paper references are to Jolteon (Gelashvili, Kokoris-Kogias, Sonnino,
//! Spiegelman, Xiang: "Jolteon and Ditto: Network-Adaptive Efficient
//! Consensus with Asynchronous Fallback", FC 2022), Algorithm 2 (the
//! two-chain steady state and pacemaker), and to DiemBFT v4 §5 (sync,
//! reconfiguration).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use yuchain_proto::{Hash32, PublicKey, SigningKey};

use crate::error::{ConsensusError, Result};
use crate::safety::SafetyData;
use crate::types::{
    Block, BlockHash, Epoch, Height, Message, PAYLOAD_BYTES_MAX, Proposal, QuorumCert, Round,
    Timeout, TimeoutCert, TimeoutEntry, ValidatorId, Vote, VoteData, proposal_digest,
    timeout_digest,
};
use crate::validators::{ValidatorSet, check_keys};

mod api;
mod commit;
mod sync;
#[cfg(test)]
#[path = "tests/core_tests.rs"]
mod tests;

pub use api::{
    Action, Checkpoint, CommittedBlock, Config, Durability, EpochEndProof, EpochRoot, Genesis,
    Input, Restored,
};
#[cfg(feature = "testing")]
pub use api::{BrokenRule, Testing};

/// The most uncommitted blocks held (proposals and certified blocks).
const TREE_BLOCKS_MAX: usize = 1024;
/// The most bytes of uncommitted blocks held.
const TREE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How many recent committed blocks the core keeps to answer sync requests
/// (older ones are read through the driver).
pub const COMMITTED_WINDOW_BLOCKS: usize = 1024;
/// The most bytes of recent committed blocks kept.
const COMMITTED_WINDOW_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The most proposals awaiting the driver's payload check.
const PENDING_CHECKS_MAX: usize = 8;
/// The most proposals kept while their parent is missing (a child can
/// overtake its parent: they come from different leaders over different
/// connections).
const ORPHANS_MAX: usize = 8;
/// How many rounds behind the current one a late proposal is still kept as
/// a block, and an orphan still waits for its parent (the window of rounds
/// whose proposals are remembered).
const LATE_ROUNDS_MAX: u64 = 2;
/// Votes and timeouts are buffered for at most this many rounds ahead.
const ROUNDS_AHEAD_MAX: u64 = 8;
/// The most verified certificates remembered (each arrives many times).
const VERIFIED_CACHE_MAX: usize = 256;

/// An epoch's root block, as far as its children need it.
type Root = EpochRoot;

/// What a child needs of its parent.
#[derive(Clone, Copy, Debug)]
struct ParentInfo {
    height: Height,
    round: Round,
    timestamp_ms: u64,
}

/// Votes received for one round.
#[derive(Default)]
struct RoundVotes {
    by_signer: HashMap<ValidatorId, VoteData>,
    by_data: HashMap<Hash32, Vec<Vote>>,
    certified: bool,
}

/// Timeouts received for one round.
#[derive(Default)]
struct RoundTimeouts {
    by_signer: BTreeMap<ValidatorId, TimeoutEntry>,
    /// The highest (verified) certificate the timeouts carried: the TC
    /// carries it, so its highest claim is backed.
    high_qc: Option<QuorumCert>,
    certified: bool,
}

/// An outstanding sync request: only its peer's answer is accepted.
#[derive(Clone, Copy, Debug)]
struct SyncInFlight {
    peer: PublicKey,
    request: crate::types::SyncRequest,
    /// Until then no other request is sent.
    deadline_ms: u64,
    /// Until then a late answer is still accepted.
    expiry_ms: u64,
    /// The deadline passed without an answer (counted against the peer).
    late: bool,
}

/// A verified proposal waiting for its parent.
struct Orphan {
    hash: BlockHash,
    from: PublicKey,
    proposal: Proposal,
}

/// The consensus core of one node (validator or observer).
pub struct Core {
    key: SigningKey,
    me: PublicKey,
    config: Config,
    validators: ValidatorSet,
    my_id: Option<ValidatorId>,
    root: Root,
    safety: SafetyData,
    round: Round,
    round_deadline_ms: Option<u64>,
    timeouts_since_commit: u32,
    now_ms: u64,
    payload_requested: Option<Round>,
    proposed: Option<Round>,
    tree: HashMap<BlockHash, Block>,
    proposals_seen: BTreeMap<Round, BlockHash>,
    pending_checks: HashMap<BlockHash, Option<TimeoutCert>>,
    /// Verified proposals whose parent is not here yet, with their sender,
    /// oldest first; taken up again when the parent arrives.
    orphans: VecDeque<Orphan>,
    votes: BTreeMap<Round, RoundVotes>,
    timeouts: BTreeMap<Round, RoundTimeouts>,
    committed: VecDeque<CommittedBlock>,
    committed_bytes: usize,
    committed_index: HashMap<BlockHash, Height>,
    head: Root,
    verified: VecDeque<Hash32>,
    verified_set: HashSet<Hash32>,
    sync: VecDeque<SyncInFlight>,
    sync_continue_from: Option<Height>,
    sync_rotation: usize,
    sync_avoid: Option<PublicKey>,
    future_epoch_sync_ms: Option<u64>,
    timer_fires_in_round: u32,
    reads_pending: usize,
    peer_hint: Option<PublicKey>,
    served: BTreeMap<PublicKey, (u64, u32)>,
    helped: BTreeMap<PublicKey, u64>,
    halted: bool,
}

/// Collects the actions of one step.
#[derive(Default)]
struct Out {
    actions: Vec<Action>,
}

impl Out {
    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }
}

impl Core {
    /// A core from the genesis and whatever the driver persisted (nothing on
    /// first start): the last safety data, a checkpoint of the committed
    /// chain (epoch, validators, root and a recent window) and the voted
    /// blocks. The checkpoint is this node's own store, so it is trusted,
    /// but its consistency and the head's certificate are checked.
    pub fn new(
        key: SigningKey,
        config: Config,
        genesis: Genesis,
        restored: Restored,
    ) -> Result<Core> {
        let me = key.public_key();
        let checkpoint = match restored.checkpoint {
            Some(checkpoint) => checkpoint,
            None => Checkpoint {
                epoch: Epoch(0),
                validators: genesis.validators.clone(),
                root: EpochRoot {
                    hash: genesis.hash,
                    height: Height(0),
                    timestamp_ms: genesis.timestamp_ms,
                },
                recent: Vec::new(),
            },
        };
        let validators = ValidatorSet::new(
            genesis.chain,
            checkpoint.epoch,
            checkpoint.validators.clone(),
        )?;
        let epoch = validators.epoch();
        let root = checkpoint.root;
        let head = check_checkpoint(&checkpoint, &validators, &config)?;
        let fresh = SafetyData::new(epoch, QuorumCert::root(epoch, root.hash, root.height));
        let safety = match restored.safety {
            Some(safety) if safety.epoch == epoch => safety,
            Some(safety) if safety.epoch > epoch => {
                return Err(ConsensusError::Inconsistent(
                    "safety data is for a later epoch than the committed chain",
                ));
            }
            _ => fresh,
        };
        let round = safety.justified_round()?;
        let tree: HashMap<BlockHash, Block> = restored
            .blocks
            .into_iter()
            .filter(|block| block.epoch == epoch && block.height > head.height)
            .take(TREE_BLOCKS_MAX)
            .map(|block| (block.hash(), block))
            .collect();
        let mut core = Core {
            my_id: validators.index_of(&me),
            key,
            me,
            config,
            validators,
            root,
            safety,
            round,
            round_deadline_ms: None,
            timeouts_since_commit: 0,
            now_ms: 0,
            payload_requested: None,
            proposed: None,
            tree,
            proposals_seen: BTreeMap::new(),
            pending_checks: HashMap::new(),
            orphans: VecDeque::new(),
            votes: BTreeMap::new(),
            timeouts: BTreeMap::new(),
            committed: VecDeque::new(),
            committed_bytes: 0,
            committed_index: HashMap::new(),
            head,
            verified: VecDeque::new(),
            verified_set: HashSet::new(),
            sync: VecDeque::new(),
            sync_continue_from: None,
            sync_rotation: 0,
            sync_avoid: None,
            future_epoch_sync_ms: None,
            timer_fires_in_round: 0,
            reads_pending: 0,
            peer_hint: None,
            served: BTreeMap::new(),
            helped: BTreeMap::new(),
            halted: false,
        };
        for entry in checkpoint.recent {
            core.push_committed(entry);
        }
        Ok(core)
    }

    /// Adds a block to the window of recent committed blocks, dropping the
    /// oldest past the window's bounds in blocks and bytes.
    fn push_committed(&mut self, entry: CommittedBlock) {
        self.committed_index
            .insert(entry.block.hash(), entry.block.height);
        self.committed_bytes = self.committed_bytes.saturating_add(committed_size(&entry));
        self.committed.push_back(entry);
        while self.committed.len() > COMMITTED_WINDOW_BLOCKS
            || (self.committed_bytes > COMMITTED_WINDOW_BYTES_MAX && self.committed.len() > 1)
        {
            let Some(old) = self.committed.pop_front() else {
                break;
            };
            self.committed_bytes = self.committed_bytes.saturating_sub(committed_size(&old));
            self.committed_index.remove(&old.block.hash());
        }
    }

    /// Bytes held in the block tree.
    fn tree_bytes(&self) -> usize {
        self.tree
            .values()
            .fold(0usize, |sum, block| sum.saturating_add(block.encoded_len()))
    }

    /// Whether one more block of `size` bytes fits in the tree.
    fn tree_has_room(&self, size: usize) -> bool {
        self.tree.len() < TREE_BLOCKS_MAX
            && self.tree_bytes().saturating_add(size) <= TREE_BYTES_MAX
    }

    /// Handles one input and returns what the driver must do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut out = Out::default();
        if self.halted {
            return out.actions;
        }
        match input {
            Input::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.on_tick(&mut out);
            }
            Input::Message {
                from,
                bytes,
                now_ms,
            } => {
                self.now_ms = self.now_ms.max(now_ms);
                if self.round_deadline_ms.is_none() {
                    self.start_round(&mut out);
                }
                if let Err(error) = self.on_message(from, &bytes, &mut out) {
                    out.push(Action::Reject {
                        from: Some(from),
                        error,
                    });
                }
            }
            Input::ProposalChecked { block, valid } => {
                if let Err(error) = self.on_proposal_checked(block, valid, &mut out) {
                    out.push(Action::Reject { from: None, error });
                }
            }
            Input::CommittedRead {
                peer,
                from_height,
                blocks,
            } => {
                if let Err(error) = self.on_committed_read(peer, from_height, blocks, &mut out) {
                    out.push(Action::Reject { from: None, error });
                }
            }
            Input::PayloadReady {
                round,
                payload,
                next_validators,
            } => {
                if let Err(error) = self.on_payload_ready(round, payload, next_validators, &mut out)
                {
                    out.push(Action::Reject { from: None, error });
                }
            }
        }
        out.actions
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.validators.epoch()
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.round
    }

    /// The highest committed block's height and hash.
    pub fn committed_head(&self) -> (Height, BlockHash) {
        (self.head.height, self.head.hash)
    }

    /// The current epoch's validators.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The current safety data.
    pub fn safety(&self) -> &SafetyData {
        &self.safety
    }

    /// A block this node holds (uncommitted, or recently committed).
    pub fn block(&self, hash: &BlockHash) -> Option<&Block> {
        self.tree.get(hash).or_else(|| {
            let height = self.committed_index.get(hash)?;
            self.committed_block(*height).map(|entry| &entry.block)
        })
    }

    /// Whether the core stopped on a safety violation.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    fn committed_block(&self, height: Height) -> Option<&CommittedBlock> {
        let first = self.committed.front()?.block.height;
        let offset = height.0.checked_sub(first.0)?;
        self.committed.get(usize::try_from(offset).ok()?)
    }

    #[cfg(feature = "testing")]
    fn broken(&self, rule: BrokenRule) -> bool {
        self.config.testing.broken_rule == Some(rule)
    }

    /// The proposer guard, unless a test breaks it on purpose.
    fn check_proposal(&self, round: Round) -> Result<()> {
        #[cfg(feature = "testing")]
        if self.broken(BrokenRule::NoProposerGuard) {
            return Ok(());
        }
        self.safety.check_proposal(round)
    }

    fn ignores_lock(&self) -> bool {
        #[cfg(feature = "testing")]
        {
            self.broken(BrokenRule::IgnoreLock)
        }
        #[cfg(not(feature = "testing"))]
        {
            false
        }
    }

    fn checks_signatures(&self) -> bool {
        checks_signatures(&self.config)
    }

    fn parent_info(&self, hash: &BlockHash) -> Option<ParentInfo> {
        if *hash == self.root.hash {
            return Some(ParentInfo {
                height: self.root.height,
                round: Round(0),
                timestamp_ms: self.root.timestamp_ms,
            });
        }
        self.block(hash).map(|block| ParentInfo {
            height: block.height,
            round: block.round,
            timestamp_ms: block.timestamp_ms,
        })
    }

    // ----- pacemaker (Jolteon Algorithm 2, "Pacemaker") -----

    fn round_timeout_ms(&self) -> u64 {
        let doubling = 1u64 << self.timeouts_since_commit.min(16);
        self.config
            .round_timeout_ms
            .saturating_mul(doubling)
            .min(self.config.round_timeout_ms_max)
    }

    fn schedule_round_timer(&mut self, out: &mut Out) {
        let at_ms = self.now_ms.saturating_add(self.round_timeout_ms());
        self.round_deadline_ms = Some(at_ms);
        out.push(Action::ScheduleTick { at_ms });
    }

    /// Enters `self.round`: arm its timer and propose if leading it.
    fn start_round(&mut self, out: &mut Out) {
        self.schedule_round_timer(out);
        if self.my_id.is_some() && self.my_id == Some(self.validators.leader(self.round)) {
            self.request_payload(out);
        }
    }

    /// Moves to `round` (after a certificate of the round before it). A
    /// round is only ever entered through a certificate, so a message cannot
    /// push a node to an arbitrary round.
    fn advance_round(&mut self, round: Round, by_timeout: bool, out: &mut Out) {
        if round <= self.round {
            return;
        }
        self.round = round;
        self.timer_fires_in_round = 0;
        // Back off on every round given up since the last commit, not only
        // on consecutive ones: a round entered through a certificate after a
        // timeout keeps the longer timer (as Aptos counts rounds since the
        // last ordered one), else with slow links every second round times
        // out at the base timer and no two consecutive rounds certify, so
        // nothing ever commits. A commit resets it.
        if by_timeout {
            self.timeouts_since_commit = self.timeouts_since_commit.saturating_add(1);
        }
        let keep_from = Round(round.0.saturating_sub(2));
        self.votes = self.votes.split_off(&keep_from);
        self.timeouts = self.timeouts.split_off(&round);
        self.proposals_seen = self.proposals_seen.split_off(&keep_from);
        // A proposal of a past round can no longer get this node's vote.
        let tree = &self.tree;
        self.pending_checks
            .retain(|hash, _| tree.get(hash).is_some_and(|block| block.round >= round));
        self.start_round(out);
    }

    fn on_tick(&mut self, out: &mut Out) {
        self.expire_sync_requests();
        match self.round_deadline_ms {
            None => self.start_round(out),
            Some(deadline) if self.now_ms >= deadline => self.local_timeout(out),
            Some(_) => {}
        }
    }

    /// The round's timer fired: time out (or resend the timeout), and if
    /// stuck, ask a peer for blocks.
    fn local_timeout(&mut self, out: &mut Out) {
        self.schedule_round_timer(out);
        self.timer_fires_in_round = self.timer_fires_in_round.saturating_add(1);
        // Stuck (an observer, rounds ending by timeouts, or the same round's
        // timer firing again): maybe this node fell behind; ask a peer.
        // Ask the epoch's validators in turn, not the last peer heard from:
        // that one may be as far behind as this node (say, all left in an
        // epoch that ended elsewhere).
        if self.my_id.is_none() || self.timeouts_since_commit > 0 || self.timer_fires_in_round > 1 {
            self.request_sync(None, None, out);
        }
        let Some(my_id) = self.my_id else {
            return;
        };
        if let Some(timeout) = &self.safety.last_timeout
            && timeout.round == self.round
            && timeout.epoch == self.epoch()
        {
            // Resend: timeouts are the pacemaker's retransmission.
            out.push(Action::Broadcast(
                Message::Timeout(timeout.clone()).encode(),
            ));
            return;
        }
        let last_tc = self.tc_for_previous_round();
        if let Err(error) =
            self.safety
                .check_timeout(self.round, &self.safety.high_qc, last_tc.as_ref())
        {
            out.push(Action::Reject { from: None, error });
            return;
        }
        let timeout = Timeout::sign(
            &self.key,
            self.validators.chain(),
            self.epoch(),
            self.round,
            self.safety.high_qc.clone(),
            last_tc,
            my_id,
        );
        self.safety.record_timeout(&timeout);
        // Persist before the timeout leaves: after it, no vote in this round.
        out.push(Action::PersistSafety(Box::new(self.safety.clone())));
        out.push(Action::Broadcast(
            Message::Timeout(timeout.clone()).encode(),
        ));
        let me = self.me;
        if let Err(error) = self.on_timeout(me, timeout, out) {
            out.push(Action::Reject { from: None, error });
        }
    }

    /// The timeout certificate that justifies being in this round, if any.
    fn tc_for_previous_round(&self) -> Option<TimeoutCert> {
        self.safety
            .high_tc
            .as_ref()
            .filter(|tc| tc.round.next().ok() == Some(self.round))
            .cloned()
    }

    // ----- proposing (Jolteon Algorithm 2, "Propose") -----

    fn request_payload(&mut self, out: &mut Out) {
        if self.payload_requested == Some(self.round) || self.check_proposal(self.round).is_err() {
            return;
        }
        let parent = self.safety.high_qc.vote.block;
        let Some(info) = self.parent_info(&parent) else {
            // The leader lacks the block it must extend (restart, missed
            // proposal): fetch it; this round will likely time out.
            let peer = self.peer_hint;
            self.request_sync(peer, Some(parent), out);
            return;
        };
        let Ok(height) = info.height.next() else {
            return;
        };
        self.payload_requested = Some(self.round);
        out.push(Action::GetPayload {
            epoch: self.epoch(),
            round: self.round,
            height,
            parent,
        });
    }

    fn on_payload_ready(
        &mut self,
        round: Round,
        payload: Vec<u8>,
        next_validators: Option<Vec<PublicKey>>,
        out: &mut Out,
    ) -> Result<()> {
        if round != self.round
            || self.payload_requested != Some(round)
            || self.proposed == Some(round)
        {
            return Err(ConsensusError::NotPending("payload round"));
        }
        let my_id = self
            .my_id
            .ok_or(ConsensusError::NotPending("payload round"))?;
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(ConsensusError::MessageTooLarge {
                size: payload.len(),
                limit: PAYLOAD_BYTES_MAX,
            });
        }
        if let Some(keys) = &next_validators {
            check_keys(keys)?;
        }
        let justify = self.safety.high_qc.clone();
        let parent = self
            .parent_info(&justify.vote.block)
            .ok_or(ConsensusError::UnknownParent)?;
        // Block time: the leader's clock, but always after the parent's.
        let timestamp_ms = self.now_ms.max(parent.timestamp_ms.saturating_add(1));
        let block = Block {
            epoch: self.epoch(),
            round,
            height: parent.height.next()?,
            parent: justify.vote.block,
            justify,
            timestamp_ms,
            proposer: my_id,
            payload,
            next_validators,
        };
        let last_tc = if block.justify.round().next()? == round {
            None
        } else {
            self.tc_for_previous_round()
        };
        // The proposer guard, persisted before the proposal leaves: a
        // restarted leader never signs a second block for this round.
        self.check_proposal(round)?;
        let signature = self
            .key
            .sign(&proposal_digest(self.validators.chain(), &block.hash()).0);
        let proposal = Proposal {
            block,
            last_tc,
            signature,
        };
        self.proposed = Some(round);
        self.safety.record_proposal(round);
        out.push(Action::PersistSafety(Box::new(self.safety.clone())));
        out.push(Action::Broadcast(
            Message::Proposal(proposal.clone()).encode(),
        ));
        let me = self.me;
        self.on_proposal(me, proposal, out)
    }

    // ----- messages -----

    fn on_message(&mut self, from: PublicKey, bytes: &[u8], out: &mut Out) -> Result<()> {
        let message = Message::decode(bytes)?;
        let is_request = matches!(message, Message::SyncRequest(_));
        let result = match message {
            Message::Proposal(proposal) => self.on_proposal(from, proposal, out),
            Message::Vote(vote) => self.on_vote(vote, out),
            Message::Timeout(timeout) => self.on_timeout(from, timeout, out),
            Message::SyncRequest(request) => self.on_sync_request(from, request, out),
            Message::SyncResponse(response) => self.on_sync_response(from, response, out),
            Message::SyncInfo(info) => self.on_sync_info(from, info, out),
        };
        // A peer whose signed message was accepted is a good one to ask for
        // blocks (a sync request carries no signature and proves nothing).
        if result.is_ok() && from != self.me && !is_request {
            self.peer_hint = Some(from);
        }
        result
    }

    /// Rejects messages of other epochs. A later epoch may mean this node
    /// missed the end of its epoch, but the message is not checkable (its
    /// epoch's validators are unknown here), so it only triggers a
    /// rate-limited request to one of this epoch's validators, whose answer
    /// is verified against this epoch's set.
    fn check_epoch(&mut self, epoch: Epoch, out: &mut Out) -> Result<()> {
        let current = self.epoch();
        if epoch < current {
            return Err(ConsensusError::StaleEpoch {
                got: epoch,
                current,
            });
        }
        if epoch > current {
            let due = self
                .future_epoch_sync_ms
                .is_none_or(|last| self.now_ms >= last.saturating_add(self.config.sync_retry_ms));
            if due && !self.sync_request_fresh() {
                self.future_epoch_sync_ms = Some(self.now_ms);
                self.request_sync(None, None, out);
            }
            return Err(ConsensusError::FutureEpoch {
                got: epoch,
                current,
            });
        }
        Ok(())
    }

    /// A proposal: check it completely, then ask the driver to check the
    /// payload. The vote waits for [`Input::ProposalChecked`].
    fn on_proposal(&mut self, from: PublicKey, proposal: Proposal, out: &mut Out) -> Result<()> {
        let block = &proposal.block;
        self.check_epoch(block.epoch, out)?;
        if self.validators.leader(block.round) != block.proposer {
            return Err(ConsensusError::NotLeader { round: block.round });
        }
        // The round must be justified by the certificates it carries, so a
        // proposal cannot name an arbitrary future round.
        let justified = match &proposal.last_tc {
            _ if block.justify.round().next()? == block.round => true,
            Some(tc) => tc.round.next()? == block.round && tc.epoch == block.epoch,
            None => false,
        };
        // (A block in this node's current round is looked at even if its
        // own certificates do not justify the round: the voting rule decides.)
        if !justified && block.round != self.round {
            return Err(ConsensusError::RoundNotAcceptable {
                got: block.round,
                current: self.round,
                reason: "not justified by the proposal's certificates",
            });
        }
        let hash = block.hash();
        if self.checks_signatures() {
            self.validators.verify_signature(
                block.proposer,
                &proposal_digest(self.validators.chain(), &hash).0,
                &proposal.signature,
                "proposal",
            )?;
        }
        match self.proposals_seen.get(&block.round) {
            Some(seen) if *seen == hash => return Err(ConsensusError::Duplicate("proposal")),
            Some(_) => return Err(ConsensusError::Equivocation { round: block.round }),
            None => {}
        }
        // Certificates first: they may move this node to the block's round.
        if let Some(tc) = &proposal.last_tc {
            self.process_tc(tc, from, out)?;
        }
        self.process_qc(&block.justify, from, out)?;
        if block.epoch != self.epoch() {
            return Ok(());
        }
        if block.round < self.round {
            // Too late for this node's vote, but a later proposal may name
            // it as its parent (a child can overtake its parent, since they
            // come from different leaders): keep it, verified as it is.
            let stale = ConsensusError::StaleRound {
                got: block.round,
                current: self.round,
            };
            // Kept, it is not refused (and not counted as a rejection).
            return if self.keep_late_block(hash, from, proposal, out) {
                Ok(())
            } else {
                Err(stale)
            };
        }
        self.proposals_seen.insert(block.round, hash);
        if let Err(error) = self.check_extends(block, true) {
            if error == ConsensusError::UnknownParent {
                // The proposal's signature and certificates are verified:
                // its sender holds the parent. Keep the proposal until the
                // parent arrives (late, or through the sync).
                self.request_sync(Some(from), Some(block.parent), out);
                if self.keep_orphan(hash, from, proposal) {
                    return Ok(());
                }
            }
            return Err(error);
        }
        if !self.tree_has_room(block.encoded_len()) {
            self.make_room();
        }
        if !self.tree_has_room(block.encoded_len()) {
            return Err(ConsensusError::BufferFull("block tree"));
        }
        if self.my_id.is_some() && self.pending_checks.len() >= PENDING_CHECKS_MAX {
            return Err(ConsensusError::BufferFull("proposal checks"));
        }
        self.tree.insert(hash, proposal.block.clone());
        if self.my_id.is_some() {
            self.pending_checks.insert(hash, proposal.last_tc);
            out.push(Action::CheckProposal(proposal.block));
        }
        self.adopt_orphans(hash, out);
        Ok(())
    }

    /// A verified proposal of a past round: stored (never voted for) if its
    /// parent is known, so a child that overtook it can be taken up; kept
    /// as an orphan otherwise. Returns whether it was kept either way.
    fn keep_late_block(
        &mut self,
        hash: BlockHash,
        from: PublicKey,
        proposal: Proposal,
        out: &mut Out,
    ) -> bool {
        let round = proposal.block.round;
        // Within the window of rounds whose proposals are remembered, and
        // one block per round (a second one of the same round was refused
        // as an equivocation before this), so a faulty leader cannot fill
        // the tree with blocks of its past rounds.
        if self.tree.contains_key(&hash)
            || round.0.saturating_add(LATE_ROUNDS_MAX) < self.round.0
            || self.proposals_seen.contains_key(&round)
        {
            return false;
        }
        self.proposals_seen.insert(round, hash);
        match self.check_extends(&proposal.block, false) {
            Ok(()) => {}
            Err(ConsensusError::UnknownParent) => return self.keep_orphan(hash, from, proposal),
            Err(_) => return false,
        }
        let size = proposal.block.encoded_len();
        if !self.tree_has_room(size) {
            self.make_room();
        }
        if !self.tree_has_room(size) {
            return false;
        }
        self.tree.insert(hash, proposal.block);
        self.adopt_orphans(hash, out);
        true
    }

    /// Remembers a verified proposal whose parent is missing (bounded: the
    /// oldest is dropped first; a proposal kept already is not kept twice).
    /// Returns whether it is kept.
    fn keep_orphan(&mut self, hash: BlockHash, from: PublicKey, proposal: Proposal) -> bool {
        self.drop_old_orphans();
        if proposal.block.round.0.saturating_add(LATE_ROUNDS_MAX) < self.round.0 {
            return false;
        }
        if self.orphans.iter().any(|orphan| orphan.hash == hash) {
            return true;
        }
        if self.orphans.len() >= ORPHANS_MAX {
            self.orphans.pop_front();
        }
        self.orphans.push_back(Orphan {
            hash,
            from,
            proposal,
        });
        true
    }

    fn drop_old_orphans(&mut self) {
        let oldest = self.round.0.saturating_sub(LATE_ROUNDS_MAX);
        let epoch = self.epoch();
        self.orphans.retain(|orphan| {
            orphan.proposal.block.round.0 >= oldest && orphan.proposal.block.epoch == epoch
        });
    }

    /// Takes up the orphans whose parent `parent` just arrived, as if they
    /// arrived now (each is taken out first, so this ends).
    fn adopt_orphans(&mut self, parent: BlockHash, out: &mut Out) {
        self.drop_old_orphans();
        while let Some(index) = self
            .orphans
            .iter()
            .position(|orphan| orphan.proposal.block.parent == parent)
        {
            let Some(Orphan {
                hash,
                from,
                proposal,
            }) = self.orphans.remove(index)
            else {
                break;
            };
            // Its first arrival recorded it as this round's proposal; taken
            // up again, it must not count as its own duplicate.
            let round = proposal.block.round;
            let seen = self.proposals_seen.get(&round) == Some(&hash);
            if seen {
                self.proposals_seen.remove(&round);
            }
            if let Err(error) = self.on_proposal(from, proposal, out) {
                if seen {
                    // Still the one proposal of its round (an equivocation
                    // must stay detectable).
                    self.proposals_seen.entry(round).or_insert(hash);
                }
                out.push(Action::Reject {
                    from: Some(from),
                    error,
                });
            }
        }
    }

    /// Without commits for a long time the tree fills with proposals that
    /// were never certified; keep only the chain to the highest certificate
    /// and the last two rounds.
    fn make_room(&mut self) {
        let mut keep = HashSet::new();
        let mut cursor = self.safety.high_qc.vote.block;
        while let Some(block) = self.tree.get(&cursor) {
            keep.insert(cursor);
            cursor = block.parent;
        }
        let recent = Round(self.round.0.saturating_sub(2));
        self.tree
            .retain(|hash, block| keep.contains(hash) || block.round >= recent);
    }

    /// A block's link to its parent: the certificate certifies the parent,
    /// heights and rounds follow it, the timestamp is after the parent's and
    /// (for a live proposal) within the drift bound of this node's clock,
    /// because the ledger's daily limits trust block time.
    fn check_extends(&mut self, block: &Block, live: bool) -> Result<()> {
        let invalid = |reason| ConsensusError::Invalid {
            what: "block",
            reason,
        };
        sync::check_links(block)?;
        let Some(parent) = self.parent_info(&block.parent) else {
            return Err(ConsensusError::UnknownParent);
        };
        if parent.height != block.justify.vote.height || parent.round != block.justify.round() {
            return Err(invalid("justify disagrees with the parent block"));
        }
        // Extending below the committed head can never be safe to vote for;
        // part of the lock (so the broken-lock switch skips it too).
        if parent.height < self.head.height && !self.ignores_lock() {
            return Err(invalid("extends a block below the committed head"));
        }
        if block.timestamp_ms <= parent.timestamp_ms {
            return Err(ConsensusError::Timestamp {
                timestamp_ms: block.timestamp_ms,
                reason: "not after the parent's",
            });
        }
        let drift = self.config.timestamp_drift_ms_max;
        if live && block.timestamp_ms > self.now_ms.saturating_add(drift) {
            return Err(ConsensusError::Timestamp {
                timestamp_ms: block.timestamp_ms,
                reason: "too far ahead of this node's clock",
            });
        }
        if live && block.timestamp_ms.saturating_add(drift) < self.now_ms {
            return Err(ConsensusError::Timestamp {
                timestamp_ms: block.timestamp_ms,
                reason: "too far behind this node's clock",
            });
        }
        if let Some(keys) = &block.next_validators {
            check_keys(keys)?;
        }
        Ok(())
    }

    /// The driver checked a payload: vote if the safety rules allow
    /// (Jolteon Algorithm 2, "Vote"), persisting before sending.
    fn on_proposal_checked(&mut self, hash: BlockHash, valid: bool, out: &mut Out) -> Result<()> {
        let last_tc = self
            .pending_checks
            .remove(&hash)
            .ok_or(ConsensusError::NotPending("proposal check"))?;
        if !valid {
            return Err(ConsensusError::Invalid {
                what: "proposal",
                reason: "the payload check failed",
            });
        }
        let block = self
            .tree
            .get(&hash)
            .ok_or(ConsensusError::NotPending("proposal check"))?;
        if block.epoch != self.epoch() || block.round != self.round {
            return Err(ConsensusError::StaleRound {
                got: block.round,
                current: self.round,
            });
        }
        let my_id = self
            .my_id
            .ok_or(ConsensusError::NotPending("proposal check"))?;
        let round = block.round;
        let qc_round = block.justify.round();
        if self.ignores_lock() {
            self.safety.check_vote_round(round)?;
        } else {
            self.safety.check_vote(round, qc_round, last_tc.as_ref())?;
        }
        let parent = self
            .parent_info(&block.parent)
            .ok_or(ConsensusError::UnknownParent)?;
        let data = VoteData {
            epoch: block.epoch,
            round,
            block: hash,
            height: block.height,
            parent: block.parent,
            parent_round: parent.round,
        };
        let vote = Vote::sign(&self.key, self.validators.chain(), data, my_id);
        out.push(Action::PersistBlock(Box::new(block.clone())));
        self.safety.record_vote(&vote);
        // Persist before the vote leaves the node.
        out.push(Action::PersistSafety(Box::new(self.safety.clone())));
        let next_leader = self.validators.leader(round.next()?);
        if Some(next_leader) == self.my_id {
            self.on_vote(vote, out)
        } else {
            let to = *self.validators.key(next_leader)?;
            out.push(Action::Send {
                to,
                bytes: Message::Vote(vote).encode(),
            });
            Ok(())
        }
    }

    /// A vote: collect 2f + 1 for the same data into a certificate.
    fn on_vote(&mut self, vote: Vote, out: &mut Out) -> Result<()> {
        let data = vote.data;
        let current = self.epoch();
        if data.epoch != current {
            return Err(if data.epoch < current {
                ConsensusError::StaleEpoch {
                    got: data.epoch,
                    current,
                }
            } else {
                ConsensusError::FutureEpoch {
                    got: data.epoch,
                    current,
                }
            });
        }
        self.validators.key(vote.signer)?;
        if data.round.0.saturating_add(2) < self.round.0 {
            return Err(ConsensusError::StaleRound {
                got: data.round,
                current: self.round,
            });
        }
        if data.round.0 > self.round.0.saturating_add(ROUNDS_AHEAD_MAX) || data.round.0 == 0 {
            return Err(ConsensusError::RoundNotAcceptable {
                got: data.round,
                current: self.round,
                reason: "vote too far ahead",
            });
        }
        if let Some(round_votes) = self.votes.get(&data.round)
            && let Some(previous) = round_votes.by_signer.get(&vote.signer)
        {
            return Err(if *previous == data {
                ConsensusError::Duplicate("vote")
            } else {
                ConsensusError::Conflicting {
                    what: "votes",
                    signer: vote.signer.0,
                    round: data.round,
                }
            });
        }
        let digest = data.signing_digest(self.validators.chain());
        if self.checks_signatures() {
            self.validators
                .verify_signature(vote.signer, &digest.0, &vote.signature, "vote")?;
        }
        let quorum = self.validators.quorum();
        let round_votes = self.votes.entry(data.round).or_default();
        round_votes.by_signer.insert(vote.signer, data);
        let same = round_votes.by_data.entry(digest).or_default();
        same.push(vote);
        if round_votes.certified || same.len() < quorum {
            return Ok(());
        }
        round_votes.certified = true;
        let mut signatures: Vec<_> = same.iter().map(|v| (v.signer, v.signature)).collect();
        signatures.sort_by_key(|(signer, _)| *signer);
        let qc = QuorumCert {
            vote: data,
            signatures,
        };
        self.remember_verified(qc.digest());
        let me = self.me;
        self.after_qc(&qc, me, out)
    }

    /// A timeout: take its certificates, collect 2f + 1 into a timeout
    /// certificate, and join a round that f + 1 others gave up on (so one
    /// honest node's timeout spreads and rounds stay in step).
    fn on_timeout(&mut self, from: PublicKey, timeout: Timeout, out: &mut Out) -> Result<()> {
        self.check_epoch(timeout.epoch, out)?;
        self.validators.key(timeout.signer)?;
        let justified = timeout.high_qc.round().next()? == timeout.round
            || match &timeout.last_tc {
                Some(tc) => tc.round.next()? == timeout.round,
                None => false,
            };
        if !justified {
            return Err(ConsensusError::RoundNotAcceptable {
                got: timeout.round,
                current: self.round,
                reason: "timeout round not justified by its certificates",
            });
        }
        if timeout.round < self.round {
            // The sender is behind in rounds (it missed the certificate
            // that moved this node on): send it that certificate.
            self.help_behind_peer(from, out);
            return Err(ConsensusError::StaleRound {
                got: timeout.round,
                current: self.round,
            });
        }
        if let Some(round_timeouts) = self.timeouts.get(&timeout.round)
            && let Some(previous) = round_timeouts.by_signer.get(&timeout.signer)
        {
            return Err(if previous.high_qc_round == timeout.high_qc.round() {
                ConsensusError::Duplicate("timeout")
            } else {
                ConsensusError::Conflicting {
                    what: "timeouts",
                    signer: timeout.signer.0,
                    round: timeout.round,
                }
            });
        }
        if self.checks_signatures() {
            let digest = timeout_digest(
                self.validators.chain(),
                timeout.epoch,
                timeout.round,
                timeout.high_qc.round(),
            );
            self.validators.verify_signature(
                timeout.signer,
                &digest.0,
                &timeout.signature,
                "timeout",
            )?;
        }
        if let Some(tc) = &timeout.last_tc {
            self.process_tc(tc, from, out)?;
        }
        self.process_qc(&timeout.high_qc, from, out)?;
        if timeout.epoch != self.epoch() || timeout.round < self.round {
            return Ok(());
        }
        if timeout.round.0 > self.round.0.saturating_add(ROUNDS_AHEAD_MAX) {
            return Err(ConsensusError::RoundNotAcceptable {
                got: timeout.round,
                current: self.round,
                reason: "timeout too far ahead",
            });
        }
        let round_timeouts = self.timeouts.entry(timeout.round).or_default();
        if round_timeouts
            .high_qc
            .as_ref()
            .is_none_or(|high| timeout.high_qc.round() > high.round())
        {
            round_timeouts.high_qc = Some(timeout.high_qc.clone());
        }
        round_timeouts.by_signer.insert(
            timeout.signer,
            TimeoutEntry {
                signer: timeout.signer,
                high_qc_round: timeout.high_qc.round(),
                signature: timeout.signature,
            },
        );
        let count = round_timeouts.by_signer.len();
        let certified = round_timeouts.certified;
        if count >= self.validators.weak_quorum()
            && timeout.round == self.round
            && self.safety.highest_timeout_round < self.round
            && self.my_id.is_some()
        {
            self.local_timeout(out);
        }
        let Some(round_timeouts) = self.timeouts.get_mut(&timeout.round) else {
            return Ok(());
        };
        if certified || round_timeouts.by_signer.len() < self.validators.quorum() {
            return Ok(());
        }
        let Some(high_qc) = round_timeouts.high_qc.clone() else {
            return Err(ConsensusError::Inconsistent(
                "timeouts without a certificate",
            ));
        };
        round_timeouts.certified = true;
        let tc = TimeoutCert {
            epoch: timeout.epoch,
            round: timeout.round,
            entries: round_timeouts.by_signer.values().copied().collect(),
            high_qc,
        };
        self.safety.observe_tc(&tc);
        self.advance_round(tc.round.next()?, true, out);
        Ok(())
    }
}

/// The bytes a committed block holds in memory, roughly (its encoding and
/// its certificates').
fn committed_size(entry: &CommittedBlock) -> usize {
    let proof = entry.epoch_end.as_ref().map_or(0, |proof| {
        proof
            .blocks
            .iter()
            .fold(proof.qc.encoded_len(), |sum, block| {
                sum.saturating_add(block.encoded_len())
            })
    });
    entry
        .block
        .encoded_len()
        .saturating_add(entry.commit_qc.encoded_len())
        .saturating_add(proof)
}

/// Checks a checkpoint's consistency and returns its committed head: the
/// window is one chain, the root is on it (or below it), and the head, when
/// it is not the root, carries a verified certificate of this epoch at or
/// above it (its commit certificate names it or a later block: a pipelined
/// store may have lost the last few).
fn check_checkpoint(
    checkpoint: &Checkpoint,
    validators: &ValidatorSet,
    config: &Config,
) -> Result<Root> {
    let inconsistent = ConsensusError::Inconsistent;
    let root = checkpoint.root;
    for pair in checkpoint.recent.windows(2) {
        if pair[1].block.parent != pair[0].block.hash()
            || pair[1].block.height != pair[0].block.height.next()?
        {
            return Err(inconsistent("checkpoint blocks do not form one chain"));
        }
    }
    let Some(last) = checkpoint.recent.last() else {
        return Ok(root);
    };
    let head = Root {
        hash: last.block.hash(),
        height: last.block.height,
        timestamp_ms: last.block.timestamp_ms,
    };
    for entry in &checkpoint.recent {
        let block = &entry.block;
        if block.height == root.height && block.hash() != root.hash {
            return Err(inconsistent("checkpoint root is not on its chain"));
        }
        if (block.height > root.height) != (block.epoch == checkpoint.epoch) {
            return Err(inconsistent("checkpoint block of the wrong epoch"));
        }
    }
    if head.height < root.height {
        return Err(inconsistent("checkpoint head below the epoch root"));
    }
    if head.height == root.height {
        return if head.hash == root.hash {
            Ok(head)
        } else {
            Err(inconsistent("checkpoint head differs from the epoch root"))
        };
    }
    let qc = &last.commit_qc;
    if qc.vote.epoch != checkpoint.epoch || qc.vote.height < head.height {
        return Err(inconsistent(
            "checkpoint head's certificate is not at or above it",
        ));
    }
    validators.verify_qc(
        qc,
        crate::validators::VerifyMode::Batched,
        checks_signatures(config),
    )?;
    Ok(head)
}

/// Whether signatures are checked (always, but in throughput benchmarks).
fn checks_signatures(config: &Config) -> bool {
    #[cfg(feature = "testing")]
    {
        !config.testing.skip_signature_checks
    }
    #[cfg(not(feature = "testing"))]
    {
        let _ = config;
        true
    }
}
