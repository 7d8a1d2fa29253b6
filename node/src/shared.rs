//! What the node's tasks share: the chain's identity, the stores, the
//! ledger, the mempool, the batches, the metrics and the network handle.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{Notify, watch};
use yuchain_consensus::ValidatorSet;
use yuchain_consensus::types::ValidatorId;
use yuchain_ledger::Ledger;
use yuchain_network::{NetworkHandle, PeerKey};
use yuchain_proto::{Hash32, PublicKey, SigningKey, pb};
use yuchain_storage::RocksStore;

use crate::batch::{AckCollector, BatchRef, BatchStore};
use crate::config::NodeConfig;
use crate::mempool::Mempool;
use crate::metrics::Metrics;

/// The bytes of batches a node holds in memory.
pub const BATCH_STORE_BYTES_MAX: usize = 512 << 20;
/// How many ordered batch digests are remembered (so a late certificate of
/// an already ordered batch is not proposed again).
pub const ORDERED_REMEMBERED: usize = 100_000;
/// How many expired transaction ids are remembered for status queries.
pub const EXPIRED_REMEMBERED: usize = 100_000;

/// Consensus keys and network keys of the chain's nodes.
#[derive(Debug, Default)]
pub struct PeerMap {
    by_consensus: HashMap<PublicKey, PeerKey>,
    by_network: HashMap<PeerKey, PublicKey>,
}

impl PeerMap {
    /// Binds a validator's consensus key to its network key.
    pub fn insert(&mut self, consensus: PublicKey, network: PeerKey) {
        self.by_consensus.insert(consensus, network);
        self.by_network.insert(network, consensus);
    }

    /// The network key to reach the holder of `consensus`; a key that is no
    /// validator's is taken as a network key itself (observers are known to
    /// the core by their network key).
    pub fn network_of(&self, consensus: &PublicKey) -> PeerKey {
        self.by_consensus
            .get(consensus)
            .copied()
            .unwrap_or(PeerKey(consensus.0))
    }

    /// The identity the core knows a peer by: a validator's consensus key,
    /// or an observer's network key.
    pub fn consensus_of(&self, network: &PeerKey) -> PublicKey {
        self.by_network
            .get(network)
            .copied()
            .unwrap_or(PublicKey(network.0))
    }

    /// Whether the peer is a validator.
    pub fn is_validator(&self, network: &PeerKey) -> bool {
        self.by_network.contains_key(network)
    }
}

/// A bounded set of recently seen ids, oldest forgotten first.
#[derive(Debug, Default)]
pub struct RecentSet {
    set: HashSet<Hash32>,
    order: VecDeque<Hash32>,
    capacity: usize,
}

impl RecentSet {
    /// An empty set remembering at most `capacity` ids.
    pub fn new(capacity: usize) -> RecentSet {
        RecentSet {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `id`.
    pub fn insert(&mut self, id: Hash32) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &Hash32) -> bool {
        self.set.contains(id)
    }
}

/// Batches: held, certified and waiting for a block, ordered.
#[derive(Debug)]
pub struct BatchState {
    /// Batches held (own and acknowledged), until executed.
    pub store: BatchStore,
    /// Certified batches not yet ordered, oldest first.
    pub certified: VecDeque<(BatchRef, pb::BatchCertificate)>,
    /// Their digests.
    pub certified_index: HashSet<Hash32>,
    /// Digests ordered by committed blocks.
    pub ordered: RecentSet,
    /// Acknowledgements of own batches.
    pub acks: AckCollector,
    /// The next own batch's sequence.
    pub next_sequence: u64,
}

impl BatchState {
    fn new() -> BatchState {
        BatchState {
            store: BatchStore::new(BATCH_STORE_BYTES_MAX),
            certified: VecDeque::new(),
            certified_index: HashSet::new(),
            ordered: RecentSet::new(ORDERED_REMEMBERED),
            acks: AckCollector::default(),
            next_sequence: 0,
        }
    }

    /// Adds a checked certificate unless its batch is known to be ordered
    /// or already waiting; returns whether it was added.
    pub fn add_certified(
        &mut self,
        reference: BatchRef,
        certificate: pb::BatchCertificate,
    ) -> bool {
        if self.ordered.contains(&reference.digest)
            || !self.certified_index.insert(reference.digest)
        {
            return false;
        }
        self.certified.push_back((reference, certificate));
        true
    }

    /// The reference of the certified batch with `digest`, if its checked
    /// certificate waits to be ordered.
    pub fn certified_reference(&self, digest: &Hash32) -> Option<BatchRef> {
        if !self.certified_index.contains(digest) {
            return None;
        }
        self.certified
            .iter()
            .find(|(reference, _)| reference.digest == *digest)
            .map(|(reference, _)| *reference)
    }

    /// Whether an own batch still waits for acknowledgements.
    pub fn acks_pending(&self, digest: &Hash32) -> bool {
        self.acks.is_pending(digest)
    }

    /// Whether one of `author`'s batches is on its way: waiting for
    /// acknowledgements, or certified and waiting for a block.
    pub fn in_flight(&self, author: &PublicKey) -> bool {
        !self.acks.is_empty()
            || self
                .certified
                .iter()
                .any(|(reference, _)| reference.author == *author)
    }

    /// Marks batches ordered by a committed block.
    pub fn mark_ordered(&mut self, digests: &[Hash32]) {
        for digest in digests {
            self.ordered.insert(*digest);
            if self.certified_index.remove(digest) {
                self.certified
                    .retain(|(reference, _)| reference.digest != *digest);
            }
        }
    }
}

/// How many recent executed states are kept in memory (older ones are read
/// from the store).
pub const EXECUTED_REMEMBERED: usize = 4_096;

/// The ledger after one executed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutedState {
    /// The height.
    pub height: u64,
    /// The ledger block's hash.
    pub block_hash: Hash32,
    /// The state root after it.
    pub state_root: Hash32,
}

impl ExecutedState {
    /// As a message.
    pub fn to_pb(&self) -> pb::ExecutedState {
        pb::ExecutedState {
            height: self.height,
            block_hash: self.block_hash.0.to_vec(),
            state_root: self.state_root.0.to_vec(),
        }
    }

    /// From a message (`None` if a hash is not 32 bytes).
    pub fn from_pb(message: &pb::ExecutedState) -> Option<ExecutedState> {
        Some(ExecutedState {
            height: message.height,
            block_hash: Hash32::from_slice(&message.block_hash)?,
            state_root: Hash32::from_slice(&message.state_root)?,
        })
    }
}

/// Why a block's executed-state claim is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// None, or a hash of the wrong length.
    #[error("the block carries no well-formed executed state")]
    Missing,
    /// Of a block that cannot be committed yet.
    #[error(
        "the block (height {block}) claims the execution of height {claim}, which is not committed before it"
    )]
    TooHigh {
        /// The claimed height.
        claim: u64,
        /// The block's height.
        block: u64,
    },
    /// This node has not executed that height.
    #[error("this node has not executed height {0} yet")]
    NotExecuted(u64),
    /// Different from this node's own execution.
    #[error("at height {height} this node computed state root {ours}, the block claims {theirs}")]
    Differs {
        /// The height.
        height: u64,
        /// This node's state root.
        ours: Hash32,
        /// The claimed one.
        theirs: Hash32,
    },
}

/// Checks a block's claim about the executed state: present, of genesis or
/// of a height at least two below the block (only committed blocks are
/// executed, and the parent is certified, not committed), and equal to this
/// node's own execution there (`own`). Voters check it before voting; every
/// node checks it again when it executes the block, so a node whose
/// re-execution diverged (after a sync, say) stops.
pub fn check_claim(
    claim: Option<&pb::ExecutedState>,
    block_height: u64,
    own: impl FnOnce(u64) -> Option<ExecutedState>,
) -> Result<ExecutedState, ClaimError> {
    let claim = claim
        .and_then(ExecutedState::from_pb)
        .ok_or(ClaimError::Missing)?;
    if claim.height != 0 && claim.height.saturating_add(2) > block_height {
        return Err(ClaimError::TooHigh {
            claim: claim.height,
            block: block_height,
        });
    }
    let ours = own(claim.height).ok_or(ClaimError::NotExecuted(claim.height))?;
    if ours != claim {
        return Err(ClaimError::Differs {
            height: claim.height,
            ours: ours.state_root,
            theirs: claim.state_root,
        });
    }
    Ok(claim)
}

/// Everything the tasks share.
pub struct Shared {
    /// The node's configuration.
    pub config: NodeConfig,
    /// The chain id.
    pub chain_id: String,
    /// The chain's parameters (fixed at genesis).
    pub params: yuchain_ledger::ChainParams,
    /// The genesis file's hash.
    pub genesis_hash: Hash32,
    /// The consensus key (a validator votes with it).
    pub key: SigningKey,
    /// The validator set (epoch 0: epoch changes are not followed yet).
    pub validators: ValidatorSet,
    /// This node's index in it (none for an observer).
    pub me: Option<ValidatorId>,
    /// Consensus keys and network keys.
    pub peers: PeerMap,
    /// The block database.
    pub store: Arc<RocksStore>,
    /// The executed state.
    pub ledger: RwLock<Ledger>,
    /// Admitted transactions.
    pub mempool: Mutex<Mempool>,
    /// Batches.
    pub batches: Mutex<BatchState>,
    /// Batch certificates already checked.
    pub checked_certificates: Mutex<crate::batch::CheckedCertificates>,
    /// The committed block record last decoded to serve a peer's fetch: a
    /// peer catching up asks for all of a block's batches at once, and
    /// they are cut from one decode (one at a time, so decodes for many
    /// peers never pile up in memory).
    pub served_record: Mutex<Option<(u64, Arc<pb::CommittedBlockRecord>)>>,
    /// Signalled when a certified batch is added.
    pub batch_ready: Notify,
    /// The durable height, for clients waiting for a commit.
    pub durable: watch::Sender<u64>,
    /// The latest executed state (durable or not), for proposals and for
    /// voters checking them.
    pub executed: watch::Sender<ExecutedState>,
    /// Recent executed states by height.
    pub executed_recent: Mutex<BTreeMap<u64, ExecutedState>>,
    /// The state view that account proofs come from, and its certificate.
    pub proofs: Mutex<crate::proofs::Proofs>,
    /// The height the proof view is certified at, for clients waiting for
    /// one.
    pub certified: watch::Sender<Option<u64>>,
    /// Recently expired transaction ids.
    pub expired: Mutex<RecentSet>,
    /// Clients waiting for a transaction, woken when it is durable.
    pub waiters: Mutex<HashMap<Hash32, Arc<Notify>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network.
    pub network: NetworkHandle,
}

impl Shared {
    /// Everything shared, from its parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: NodeConfig,
        genesis_hash: Hash32,
        key: SigningKey,
        validators: ValidatorSet,
        peers: PeerMap,
        store: Arc<RocksStore>,
        ledger: Ledger,
        metrics: Arc<Metrics>,
        network: NetworkHandle,
    ) -> Shared {
        let chain_id = ledger.chain_id().to_string();
        let params = ledger.params().clone();
        let height = ledger.height();
        let executed = ExecutedState {
            height,
            block_hash: ledger.last_block_hash(),
            state_root: ledger.state_root(),
        };
        let me = validators.index_of(&key.public_key());
        let mempool = Mempool::new(config.mempool.clone());
        let proofs = crate::proofs::Proofs::new(yuchain_ledger::StateView::of(&ledger));
        Shared {
            config,
            chain_id,
            params,
            genesis_hash,
            me,
            key,
            validators,
            peers,
            store,
            ledger: RwLock::new(ledger),
            mempool: Mutex::new(mempool),
            batches: Mutex::new(BatchState::new()),
            checked_certificates: Mutex::default(),
            served_record: Mutex::default(),
            batch_ready: Notify::new(),
            durable: watch::Sender::new(height),
            executed: watch::Sender::new(executed),
            executed_recent: Mutex::new(BTreeMap::from([(height, executed)])),
            proofs: Mutex::new(proofs),
            certified: watch::Sender::new(None),
            expired: Mutex::new(RecentSet::new(EXPIRED_REMEMBERED)),
            waiters: Mutex::new(HashMap::new()),
            metrics,
            network,
        }
    }

    /// The ledger, for reading.
    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        // The executor replaces the state only through apply, which leaves
        // it whole on every path; a panic there stops the node anyway.
        self.ledger.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ledger, for the executor.
    pub fn ledger_mut(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mempool.
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The batches.
    pub fn batches(&self) -> MutexGuard<'_, BatchState> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The proof view.
    pub fn proofs(&self) -> MutexGuard<'_, crate::proofs::Proofs> {
        self.proofs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Recently expired ids.
    pub fn expired(&self) -> MutexGuard<'_, RecentSet> {
        self.expired.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers an executed state without announcing it (genesis at
    /// start-up: early blocks' claims name it, and its stored record has no
    /// header to read its hash from).
    pub fn remember_executed(&self, state: ExecutedState) {
        self.executed_recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(state.height, state);
    }

    /// Records a block's execution.
    pub fn record_executed(&self, state: ExecutedState) {
        {
            let mut recent = self
                .executed_recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            recent.insert(state.height, state);
            while recent.len() > EXECUTED_REMEMBERED {
                recent.pop_first();
            }
        }
        self.executed.send_replace(state);
    }

    /// This node's executed state at `height`, if it executed it (from
    /// memory, or the store for older heights).
    pub fn executed_at(&self, height: u64) -> anyhow::Result<Option<ExecutedState>> {
        if let Some(state) = self
            .executed_recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&height)
        {
            return Ok(Some(*state));
        }
        if height > self.executed.borrow().height {
            return Ok(None);
        }
        let Some(record) = crate::chain::read_record(self.store.as_ref(), height)? else {
            return Ok(None);
        };
        // Genesis has no stored header; it is remembered from the start.
        let block_hash = record
            .ledger
            .as_ref()
            .and_then(|ledger| ledger.block.as_ref())
            .and_then(|block| block.header.as_ref())
            .map(yuchain_ledger::block_hash);
        let (Some(state_root), Some(block_hash)) =
            (Hash32::from_slice(&record.state_root), block_hash)
        else {
            return Ok(None);
        };
        Ok(Some(ExecutedState {
            height,
            block_hash,
            state_root,
        }))
    }

    /// The notification a client waiting for `id` waits on.
    pub fn waiter(&self, id: Hash32) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(waiters.entry(id).or_insert_with(|| Arc::new(Notify::new())))
    }

    /// A client stopped waiting for `id`: forget the notification if nobody
    /// else waits on it.
    pub fn release_waiter(&self, id: Hash32, notify: Arc<Notify>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters
            .get(&id)
            .is_some_and(|held| Arc::ptr_eq(held, &notify) && Arc::strong_count(held) <= 2)
        {
            waiters.remove(&id);
        }
    }

    /// Wakes the clients waiting for these transactions (their block, or
    /// their expiry, is durable).
    pub fn wake(&self, ids: &[Hash32]) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.is_empty() {
            return;
        }
        for id in ids {
            if let Some(notify) = waiters.remove(id) {
                notify.notify_waiters();
            }
        }
    }

    /// Updates the mempool gauges.
    pub fn update_mempool_metrics(&self, mempool: &Mempool) {
        self.metrics
            .mempool_transactions
            .set(i64::try_from(mempool.len()).unwrap_or(i64::MAX));
        self.metrics
            .mempool_bytes
            .set(i64::try_from(mempool.bytes()).unwrap_or(i64::MAX));
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock (the
/// consensus core's notion of time; it bounds drift itself).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(height: u64, root: u8) -> ExecutedState {
        ExecutedState {
            height,
            block_hash: Hash32([height as u8; 32]),
            state_root: Hash32([root; 32]),
        }
    }

    #[test]
    fn an_executed_state_claim_must_be_committed_present_and_equal_to_ours() {
        let ours = |height: u64| (height <= 10).then(|| state(height, 7));
        assert_eq!(
            check_claim(Some(&state(0, 7).to_pb()), 1, ours),
            Ok(state(0, 7))
        );
        assert_eq!(
            check_claim(Some(&state(8, 7).to_pb()), 10, ours),
            Ok(state(8, 7))
        );
        assert_eq!(
            check_claim(Some(&state(9, 7).to_pb()), 10, ours),
            Err(ClaimError::TooHigh {
                claim: 9,
                block: 10
            })
        );
        assert_eq!(
            check_claim(Some(&state(8, 9).to_pb()), 10, ours),
            Err(ClaimError::Differs {
                height: 8,
                ours: Hash32([7; 32]),
                theirs: Hash32([9; 32]),
            })
        );
        assert_eq!(
            check_claim(Some(&state(11, 7).to_pb()), 20, ours),
            Err(ClaimError::NotExecuted(11))
        );
        assert_eq!(check_claim(None, 20, ours), Err(ClaimError::Missing));
        let mut short = state(3, 7).to_pb();
        short.state_root.pop();
        assert_eq!(
            check_claim(Some(&short), 20, ours),
            Err(ClaimError::Missing)
        );
    }
}
