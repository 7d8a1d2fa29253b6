//! The consensus driver: one task that owns the core, feeds it messages,
//! ticks and answers, and performs its actions in order — safety data and
//! voted blocks written durably (one synced write per step) before anything
//! leaves, messages sent, payloads built from certified batches, proposals
//! checked off the task, commits handed to the executor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};
use yuchain_consensus::types::{BlockHash, Height, Round};
use yuchain_consensus::{Action, Block, CommittedBlock, Core, Input};
use yuchain_network::{Channel, PeerKey};
use yuchain_proto::{Hash32, pb};
use yuchain_storage::SafetyStore;

use crate::batch::{self, BLOCK_BATCHES_MAX};
use crate::chain::{SAFETY_KEY, block_key, block_key_height, read_committed};
use crate::shared::{ClaimError, Shared, check_claim, now_ms};

/// The most consensus messages waiting for the driver.
pub const CONSENSUS_INBOX: usize = 4_096;
/// How long a safety write or a hand-over to the executor may take before
/// it is logged as slow.
const SLOW: Duration = Duration::from_millis(200);
/// How many blocks behind its own execution a leader's executed-state claim
/// is.
const CLAIM_LAG: u64 = 8;
/// The most scheduled ticks remembered.
const TICKS_MAX: usize = 1_024;

/// What the driver receives from other tasks.
#[derive(Debug)]
pub enum DriverEvent {
    /// A consensus message from a peer.
    Message {
        /// The sender's network key.
        from: PeerKey,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A proposal's payload was checked.
    Checked {
        /// The block.
        block: BlockHash,
        /// Whether it is valid.
        valid: bool,
    },
    /// Committed blocks read from the store for a peer.
    Read {
        /// The peer (as the core knows it).
        peer: yuchain_proto::PublicKey,
        /// The first height.
        from_height: Height,
        /// The blocks.
        blocks: Vec<CommittedBlock>,
    },
}

/// A batch a proposal orders again, and what ordered it first.
#[derive(Debug)]
struct Repeat {
    digest: Hash32,
    by: &'static str,
    /// The height it was executed at, when read from the store.
    at: Option<u64>,
}

/// A payload request waiting for a certified batch.
struct PendingPayload {
    round: Round,
    deadline_ms: u64,
}

/// The driver's state besides the core.
pub struct Driver {
    shared: Arc<Shared>,
    core: Core,
    safety: Option<Arc<dyn SafetyStore>>,
    inbox: mpsc::Receiver<DriverEvent>,
    /// Where checks and reads answer.
    answers: mpsc::Sender<DriverEvent>,
    commits: mpsc::Sender<Box<CommittedBlock>>,
    ticks: BTreeSet<u64>,
    pending_payload: Option<PendingPayload>,
    /// Voted blocks persisted, by height (to drop them once committed).
    persisted_blocks: BTreeSet<(u64, Vec<u8>)>,
    /// Voted blocks to delete with the next safety write.
    stale_blocks: Vec<Vec<u8>>,
    halted: bool,
}

impl Driver {
    /// A driver over `core`.
    pub fn new(
        shared: Arc<Shared>,
        core: Core,
        safety: Option<Arc<dyn SafetyStore>>,
        inbox: mpsc::Receiver<DriverEvent>,
        answers: mpsc::Sender<DriverEvent>,
        commits: mpsc::Sender<Box<CommittedBlock>>,
    ) -> Result<Driver> {
        let mut persisted_blocks = BTreeSet::new();
        if let Some(safety) = &safety {
            for key in safety.safety_keys().context("reading the safety record")? {
                if let Some(height) = block_key_height(&key) {
                    persisted_blocks.insert((height, key));
                }
            }
        }
        Ok(Driver {
            shared,
            core,
            safety,
            inbox,
            answers,
            commits,
            ticks: BTreeSet::new(),
            pending_payload: None,
            persisted_blocks,
            stale_blocks: Vec::new(),
            halted: false,
        })
    }

    /// Runs until `shutdown` turns true or the inbox closes.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let first = self.core.step(Input::Tick { now_ms: now_ms() });
        self.perform(first).await?;
        loop {
            let now = now_ms();
            let next_tick = self.ticks.first().copied();
            let payload_deadline = self.pending_payload.as_ref().map(|p| p.deadline_ms);
            let wake_at = [next_tick, payload_deadline].into_iter().flatten().min();
            let sleep_for = wake_at.map_or(Duration::from_secs(3600), |at| {
                Duration::from_millis(at.saturating_sub(now))
            });
            let waiting_for_batch = self.pending_payload.is_some();
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                }
                event = self.inbox.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    self.handle(event).await?;
                }
                () = self.shared.batch_ready.notified(), if waiting_for_batch => {
                    self.try_payload(false).await?;
                }
                () = tokio::time::sleep(sleep_for) => {
                    let now = now_ms();
                    if self.pending_payload.as_ref().is_some_and(|p| p.deadline_ms <= now) {
                        self.try_payload(true).await?;
                    }
                    if self.ticks.first().is_some_and(|at| *at <= now) {
                        while self.ticks.first().is_some_and(|at| *at <= now) {
                            self.ticks.pop_first();
                        }
                        let round = self.core.round();
                        let actions = self.core.step(Input::Tick { now_ms: now });
                        if actions.iter().any(|action| {
                            matches!(action, Action::Broadcast(bytes)
                                if matches!(yuchain_consensus::Message::decode(bytes), Ok(yuchain_consensus::Message::Timeout(_))))
                        }) {
                            info!(%round, "round timed out here (no certificate in time)");
                        }
                        self.perform(actions).await?;
                    }
                }
            }
        }
    }

    async fn handle(&mut self, event: DriverEvent) -> Result<()> {
        let input = match event {
            DriverEvent::Message { from, bytes } => Input::Message {
                from: self.shared.peers.consensus_of(&from),
                bytes,
                now_ms: now_ms(),
            },
            DriverEvent::Checked { block, valid } => Input::ProposalChecked { block, valid },
            DriverEvent::Read {
                peer,
                from_height,
                blocks,
            } => Input::CommittedRead {
                peer,
                from_height,
                blocks,
            },
        };
        let actions = self.core.step(input);
        self.perform(actions).await
    }

    /// Performs a step's actions in order. Safety data and voted blocks are
    /// gathered into one synced write, done before the first send after
    /// them.
    async fn perform(&mut self, actions: Vec<Action>) -> Result<()> {
        let mut unsynced: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut payload_asked = false;
        for action in actions {
            match action {
                Action::PersistSafety(safety) => {
                    unsynced.push((SAFETY_KEY.to_vec(), Some(safety.encode())));
                }
                Action::PersistBlock(block) => {
                    let key = block_key(&block);
                    self.persisted_blocks.insert((block.height.0, key.clone()));
                    unsynced.push((key, Some(block.encode())));
                }
                Action::Broadcast(bytes) => {
                    self.flush(&mut unsynced).await?;
                    self.shared.network.broadcast(Channel::Consensus, bytes);
                }
                Action::Send { to, bytes } => {
                    self.flush(&mut unsynced).await?;
                    let peer = self.shared.peers.network_of(&to);
                    if let Err(error) = self.shared.network.send(peer, Channel::Consensus, bytes) {
                        debug!(peer = %peer.to_hex(), %error, "consensus message not sent");
                    }
                }
                Action::ScheduleTick { at_ms } => {
                    if self.ticks.len() < TICKS_MAX {
                        self.ticks.insert(at_ms);
                    }
                }
                Action::GetPayload { round, .. } => {
                    // Answered after this step's actions are all done (its
                    // safety writes first): the answer is a step of its own,
                    // whose writes must come after these.
                    self.pending_payload = Some(PendingPayload {
                        round,
                        deadline_ms: now_ms()
                            .saturating_add(self.shared.config.consensus.empty_block_wait_ms),
                    });
                    payload_asked = true;
                }
                Action::CheckProposal(block) => self.check_proposal(block),
                Action::Commit(entry) => {
                    self.flush(&mut unsynced).await?;
                    self.commit(entry).await?;
                }
                Action::ReadCommitted {
                    peer,
                    from_height,
                    count,
                } => self.read_committed(peer, from_height, count),
                Action::DropUncommitted { epoch } => {
                    info!(%epoch, "epoch ended: dropping its uncommitted blocks");
                    let keys: Vec<(u64, Vec<u8>)> = self.persisted_blocks.iter().cloned().collect();
                    for (_, key) in keys {
                        unsynced.push((key, None));
                    }
                    self.persisted_blocks.clear();
                }
                Action::EpochChanged { epoch, .. } => {
                    error!(%epoch, "the validator set changed; this node version does not follow epoch changes yet");
                }
                Action::Reject { from, error } => {
                    let kind = format!("{error:?}");
                    let kind = kind
                        .split(['(', ' ', '{'])
                        .next()
                        .unwrap_or("other")
                        .to_string();
                    self.shared
                        .metrics
                        .consensus_rejected
                        .get_or_create(&crate::metrics::Kind { kind })
                        .inc();
                    debug!(from = ?from.map(|key| hex_short(&key.0)), %error, "consensus input refused");
                }
                Action::Halt { reason } => {
                    error!(%reason, "consensus halted: a certified chain conflicts with a committed block; more than f validators are faulty. Operator action needed.");
                    self.halted = true;
                }
            }
        }
        self.flush(&mut unsynced).await?;
        self.shared
            .metrics
            .round
            .set(round_gauge(self.core.round()));
        if self.halted {
            anyhow::bail!("consensus halted");
        }
        if payload_asked {
            Box::pin(self.try_payload(false)).await?;
        }
        Ok(())
    }

    /// Writes the gathered safety changes in one synced write.
    async fn flush(&mut self, unsynced: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        if unsynced.is_empty() {
            return Ok(());
        }
        let Some(safety) = self.safety.clone() else {
            // An observer never votes; its core persists nothing of worth.
            unsynced.clear();
            self.stale_blocks.clear();
            return Ok(());
        };
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            self.stale_blocks.drain(..).map(|key| (key, None)).collect();
        changes.append(unsynced);
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || safety.write_safety(&changes))
            .await
            .context("the safety writer panicked")?
            .context("writing the safety record; nothing that depends on it is sent")?;
        let took = started.elapsed();
        if took >= SLOW {
            warn!(
                took_ms = took.as_millis() as u64,
                "a safety record write was slow (the disk's fsync)"
            );
        }
        Ok(())
    }

    /// Answers a pending payload request with the certified batches not yet
    /// ordered by the block's ancestors, or, once `deadline` passed or when
    /// an uncommitted ancestor orders batches (it needs the blocks after it
    /// to commit), with whatever there is (possibly nothing).
    async fn try_payload(&mut self, deadline: bool) -> Result<()> {
        let Some(pending) = self.pending_payload.as_ref() else {
            return Ok(());
        };
        // The core builds on its highest certificate when the payload
        // arrives, which may have risen since it asked.
        let parent = self.core.safety().high_qc.vote.block;
        let exclude = self.ancestor_batches(parent);
        let mut chosen = Vec::new();
        let mut transactions: u64 = 0;
        {
            let batches = self.shared.batches();
            for (reference, certificate) in &batches.certified {
                if chosen.len() >= BLOCK_BATCHES_MAX {
                    break;
                }
                if exclude.contains(&reference.digest) {
                    continue;
                }
                let more = transactions.saturating_add(u64::from(reference.tx_count));
                if more > yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX as u64 {
                    break;
                }
                transactions = more;
                chosen.push(certificate.clone());
            }
        }
        // Wait for work only when there is nothing to finish: an uncommitted
        // ancestor that orders batches needs the blocks after it to commit,
        // so those are proposed at once, empty or not. So does a parent or
        // grandparent that orders batches even when this node already
        // committed it: the others learn of that commit only from the
        // certificate this proposal carries (waiting here held every
        // other node's commit, and its clients, back by the whole wait).
        if chosen.is_empty() && !deadline && exclude.is_empty() && !self.orders_batches(parent, 2) {
            return Ok(());
        }
        let round = pending.round;
        self.pending_payload = None;
        // A few blocks behind this node's execution, so voters whose
        // execution trails a little need not wait for it.
        let latest = *self.shared.executed.borrow();
        let executed = self
            .shared
            .executed_at(latest.height.saturating_sub(CLAIM_LAG))
            .ok()
            .flatten()
            .unwrap_or(latest);
        let payload = pb::BlockPayload {
            batches: chosen,
            executed: Some(executed.to_pb()),
        }
        .encode_to_vec();
        let actions = self.core.step(Input::PayloadReady {
            round,
            payload,
            next_validators: None,
        });
        self.perform(actions).await
    }

    /// Whether any of the `depth` blocks from `from` down orders a batch,
    /// committed or not.
    fn orders_batches(&self, from: BlockHash, depth: usize) -> bool {
        let mut cursor = from;
        for _ in 0..depth {
            let Some(block) = self.core.block(&cursor) else {
                return false;
            };
            if batch::payload_references(&block.payload).is_ok_and(|refs| !refs.is_empty()) {
                return true;
            }
            cursor = block.parent;
        }
        false
    }

    /// The batches ordered by the uncommitted ancestors of `parent` (they
    /// will be executed with it, so a new block must not order them again).
    fn ancestor_batches(&self, parent: BlockHash) -> BTreeSet<Hash32> {
        let (committed_height, committed_hash) = self.core.committed_head();
        let mut out = BTreeSet::new();
        let mut cursor = parent;
        for _ in 0..64 {
            if cursor == committed_hash {
                break;
            }
            let Some(block) = self.core.block(&cursor) else {
                // A sync answer's first block may hang below a gap; logged
                // at debug, since a leader walks on every payload attempt.
                debug!(
                    missing = %hex_short(&cursor.0),
                    committed = committed_height.0,
                    "an ancestor walk met a block this node does not hold"
                );
                break;
            };
            if block.height <= committed_height {
                break;
            }
            if let Ok(references) = batch::payload_references(&block.payload) {
                out.extend(references.into_iter().map(|reference| reference.digest));
            }
            cursor = block.parent;
        }
        out
    }

    /// Checks a proposal's payload on a blocking thread (certificate
    /// signatures), then its executed state against this node's own
    /// execution (waiting a little for it), and answers through the inbox.
    ///
    /// Whether the proposal orders a batch again is decided against what
    /// this node knew when the proposal arrived: by the time the blocking
    /// check runs, the block itself (or its parent) may have been committed
    /// here through the other validators' certificates, and its own batches
    /// then look "already ordered" although the block is their first.
    fn check_proposal(&self, block: Block) {
        let shared = Arc::clone(&self.shared);
        let answers = self.answers.clone();
        let hash = block.hash();
        let height = block.height.0;
        let round = block.round;
        let payload = pb::BlockPayload::decode(block.payload.as_slice()).ok();
        let known = payload
            .as_ref()
            .and_then(|payload| self.known_repeat(block.parent, payload));
        let claim = payload.and_then(|payload| payload.executed);
        let (committed, _) = self.core.committed_head();
        let wait = Duration::from_millis(self.shared.config.consensus.round_timeout_ms / 2);
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let checker = Arc::clone(&shared);
            let certificates_valid = tokio::task::spawn_blocking(move || {
                let shared = checker;
                match batch::check_payload(
                    &block.payload,
                    &shared.validators,
                    &shared.checked_certificates,
                ) {
                    Ok(certificates) => {
                        let repeat = known.or_else(|| {
                            certificates.iter().find_map(|certificate| {
                                let digest = certificate.reference.digest;
                                // Executed no later than this node's commits
                                // when the proposal arrived.
                                yuchain_storage::BlockStore::batch_height(
                                    shared.store.as_ref(),
                                    &digest,
                                )
                                .ok()
                                .flatten()
                                .filter(|at| *at <= committed.0)
                                .map(|at| Repeat {
                                    digest,
                                    by: "a stored block",
                                    at: Some(at),
                                })
                            })
                        });
                        if let Some(repeat) = &repeat {
                            warn!(
                                height,
                                round = round.0,
                                batch = %hex_short(&repeat.digest.0),
                                by = repeat.by,
                                at = repeat.at,
                                "a proposal orders a batch already ordered"
                            );
                        }
                        repeat.is_none()
                    }
                    Err(error) => {
                        warn!(%error, "a proposal's payload is invalid");
                        false
                    }
                }
            })
            .await
            .unwrap_or(false);
            let verdict =
                certificates_valid && check_executed(&shared, claim.as_ref(), height, wait).await;
            shared
                .metrics
                .proposal_check
                .observe(started.elapsed().as_secs_f64());
            let _ = answers
                .send(DriverEvent::Checked {
                    block: hash,
                    valid: verdict,
                })
                .await;
        });
    }

    /// A batch the proposal orders that its uncommitted ancestors or this
    /// node's committed blocks (as far as remembered in memory) already
    /// ordered, as this node knows it now.
    /// (A certificate without a readable batch is left to the payload check,
    /// which refuses it.)
    fn known_repeat(&self, parent: BlockHash, payload: &pb::BlockPayload) -> Option<Repeat> {
        let ancestors = self.ancestor_batches(parent);
        let batches = self.shared.batches();
        payload.batches.iter().find_map(|certificate| {
            let digest = batch::BatchRef::from_pb(certificate.batch.as_ref()?)
                .ok()?
                .digest;
            let by = if ancestors.contains(&digest) {
                "an uncommitted ancestor"
            } else if batches.ordered.contains(&digest) {
                "a committed block"
            } else {
                return None;
            };
            Some(Repeat {
                digest,
                by,
                at: None,
            })
        })
    }

    /// Hands a committed block to the executor (waiting while it is
    /// behind: consensus slows to what execution sustains) and forgets the
    /// voted blocks it makes obsolete.
    async fn commit(&mut self, entry: Box<CommittedBlock>) -> Result<()> {
        let height = entry.block.height.0;
        if let Ok(references) = batch::payload_references(&entry.block.payload) {
            let digests: Vec<Hash32> = references.iter().map(|r| r.digest).collect();
            self.shared.batches().mark_ordered(&digests);
        }
        let started = std::time::Instant::now();
        self.commits
            .send(entry)
            .await
            .map_err(|_| anyhow::anyhow!("the executor stopped"))?;
        let took = started.elapsed();
        if took >= SLOW {
            warn!(
                took_ms = took.as_millis() as u64,
                "consensus waited for execution (the executor is behind)"
            );
        }
        // A voted block may go once a block at its height is durable here
        // (until then it is this node's copy of a certified block); the
        // deletion rides along with the next safety write, never a write
        // of its own.
        let durable = (*self.shared.durable.borrow()).min(height);
        let obsolete: Vec<(u64, Vec<u8>)> = self
            .persisted_blocks
            .iter()
            .take_while(|(block_height, _)| *block_height <= durable)
            .cloned()
            .collect();
        for entry in obsolete {
            self.persisted_blocks.remove(&entry);
            self.stale_blocks.push(entry.1);
        }
        Ok(())
    }

    /// Reads committed blocks for a syncing peer on a blocking thread.
    fn read_committed(&self, peer: yuchain_proto::PublicKey, from_height: Height, count: usize) {
        let shared = Arc::clone(&self.shared);
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let blocks = tokio::task::spawn_blocking(move || {
                let mut blocks = Vec::new();
                let count = count.min(yuchain_consensus::types::SYNC_BLOCKS_MAX);
                for offset in 0..count as u64 {
                    let Some(height) = from_height.0.checked_add(offset) else {
                        break;
                    };
                    match read_committed(shared.store.as_ref(), height) {
                        Ok(Some(block)) => blocks.push(block),
                        Ok(None) => break,
                        Err(error) => {
                            warn!(%error, height, "reading a committed block for a peer");
                            break;
                        }
                    }
                }
                blocks
            })
            .await
            .unwrap_or_default();
            let _ = answers
                .send(DriverEvent::Read {
                    peer,
                    from_height,
                    blocks,
                })
                .await;
        });
    }
}

/// Checks a proposal's claim about the executed state
/// ([`check_claim`]), first waiting up to `wait` for this node's own
/// execution to reach the claimed height.
pub async fn check_executed(
    shared: &Arc<Shared>,
    claim: Option<&pb::ExecutedState>,
    block_height: u64,
    wait: Duration,
) -> bool {
    if let Some(height) = claim.map(|claim| claim.height) {
        let mut executed = shared.executed.subscribe();
        let reached = tokio::time::timeout(wait, executed.wait_for(|state| state.height >= height))
            .await
            .is_ok_and(|result| result.is_ok());
        if !reached {
            debug!(
                claim = height,
                "not executed that far yet; not voting for this proposal"
            );
            return false;
        }
    }
    let reader = Arc::clone(shared);
    let claim = claim.cloned();
    let verdict = tokio::task::spawn_blocking(move || {
        check_claim(claim.as_ref(), block_height, |height| {
            reader.executed_at(height).ok().flatten()
        })
    })
    .await;
    match verdict {
        Ok(Ok(_)) => true,
        Ok(Err(error @ ClaimError::Differs { .. })) => {
            error!(%error, "a proposal's executed state differs from this node's execution; not voting");
            false
        }
        Ok(Err(error)) => {
            warn!(%error, "a proposal's executed state is refused");
            false
        }
        Err(_) => false,
    }
}

fn round_gauge(round: Round) -> i64 {
    i64::try_from(round.0).unwrap_or(i64::MAX)
}

/// The first 8 hex digits of a key, for logs.
pub fn hex_short(bytes: &[u8]) -> String {
    hex::encode(bytes.get(..4).unwrap_or(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use yuchain_consensus::SafetyData;
    use yuchain_consensus::types::{Epoch, ValidatorId};
    use yuchain_storage::MemSafetyStore;

    use crate::testnode::{OneValidator, one_validator};

    /// Remembers every safety record written, in order.
    #[derive(Default)]
    struct Recorder {
        inner: MemSafetyStore,
        written: Mutex<Vec<SafetyData>>,
    }

    impl SafetyStore for Recorder {
        fn write_safety(
            &self,
            changes: &[(Vec<u8>, Option<Vec<u8>>)],
        ) -> yuchain_storage::Result<()> {
            self.inner.write_safety(changes)?;
            for (key, value) in changes {
                if key.as_slice() == SAFETY_KEY
                    && let Some(value) = value
                {
                    let data = SafetyData::decode(value).expect("a safety record");
                    self.written.lock().expect("lock").push(data);
                }
            }
            Ok(())
        }

        fn safety(&self, key: &[u8]) -> yuchain_storage::Result<Option<Vec<u8>>> {
            self.inner.safety(key)
        }

        fn safety_keys(&self) -> yuchain_storage::Result<Vec<Vec<u8>>> {
            self.inner.safety_keys()
        }
    }

    /// A step that persists safety data and then asks for a payload, with a
    /// certified batch waiting: the answer (a proposal, whose safety data
    /// records the round proposed in) must be written after the step's own
    /// safety data, never before it (it once was, so the older record
    /// overwrote the newer one and a crash then could let the leader
    /// propose twice in the round).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_payload_is_answered_after_the_safety_writes_of_the_step_that_asked() {
        let OneValidator {
            _dir,
            shared,
            mut core,
            ..
        } = one_validator().await;
        let recorder = Arc::new(Recorder::default());
        let (inbox_tx, inbox_rx) = mpsc::channel(16);
        let (commit_tx, _commit_rx) = mpsc::channel(16);
        let older = core.safety().clone();
        let mut actions = vec![Action::PersistSafety(Box::new(older))];
        actions.extend(core.step(Input::Tick { now_ms: now_ms() }));
        assert!(
            actions
                .iter()
                .any(|action| matches!(action, Action::GetPayload { .. })),
            "the only validator leads round 1"
        );
        let mut driver = Driver::new(
            shared,
            core,
            Some(recorder.clone() as Arc<dyn SafetyStore>),
            inbox_rx,
            inbox_tx,
            commit_tx,
        )
        .expect("driver");
        driver.perform(actions).await.expect("performed");
        let written = recorder.written.lock().expect("lock").clone();
        assert!(
            written.len() >= 2,
            "the step's record and the proposal's: {written:?}"
        );
        assert_eq!(
            written[0].last_proposed_round.0, 0,
            "the step's own record first"
        );
        let last = written.last().expect("written");
        assert_eq!(
            last.last_proposed_round.0, 1,
            "the newest record, the proposal's, is the one kept"
        );
        assert_eq!(
            driver
                .safety
                .as_ref()
                .and_then(|s| s.safety(SAFETY_KEY).ok().flatten()),
            Some(last.encode())
        );
    }

    /// A proposal whose check waits while the block is committed here
    /// (through the others' certificates: a voter's blocking pool can be
    /// that slow under load) must not be judged as ordering its own
    /// batches again; it was, and the warning "a proposal orders a batch
    /// already ordered" came from that. A batch ordered before the
    /// proposal arrived is still refused.
    #[tokio::test]
    async fn a_proposal_committed_while_its_check_waits_does_not_repeat_its_own_batches() {
        let OneValidator {
            _dir,
            shared,
            core,
            reference,
            certificate,
        } = one_validator().await;
        let justify = core.safety().high_qc.clone();
        let executed = *shared.executed.borrow();
        let block = Block {
            epoch: Epoch(0),
            round: Round(1),
            height: Height(1),
            parent: justify.vote.block,
            justify,
            timestamp_ms: now_ms(),
            proposer: ValidatorId(0),
            payload: pb::BlockPayload {
                batches: vec![certificate],
                executed: Some(executed.to_pb()),
            }
            .encode_to_vec(),
            next_validators: None,
        };
        let (inbox_tx, inbox_rx) = mpsc::channel(16);
        let (commit_tx, _commit_rx) = mpsc::channel(16);
        let mut driver = Driver::new(
            Arc::clone(&shared),
            core,
            None,
            inbox_rx,
            inbox_tx,
            commit_tx,
        )
        .expect("driver");
        let verdict = async |driver: &mut Driver| match driver.inbox.recv().await {
            Some(DriverEvent::Checked { block: hash, valid }) => {
                assert_eq!(hash, block.hash());
                valid
            }
            other => panic!("expected the check's answer, got {other:?}"),
        };

        // The check is spawned; this single-threaded runtime runs it only
        // once the test waits, after the commit marked the batch ordered.
        driver.check_proposal(block.clone());
        shared.batches().mark_ordered(&[reference.digest]);
        assert!(
            verdict(&mut driver).await,
            "the block's own batch, committed with it during the check, is no repeat"
        );

        // Known as ordered before the proposal arrived: a repeat.
        driver.check_proposal(block.clone());
        assert!(
            !verdict(&mut driver).await,
            "a batch already ordered when the proposal came is refused"
        );
    }
}
