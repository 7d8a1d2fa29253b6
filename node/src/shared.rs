//! What the node's tasks share: the chain's identity, the stores, the
//! ledger, the mempool, the batches, the metrics and the network handle.

use std::collections::{HashMap, HashSet, VecDeque};
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

    /// Whether an own batch still waits for acknowledgements.
    pub fn acks_pending(&self, digest: &Hash32) -> bool {
        self.acks.is_pending(digest)
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

/// Everything the tasks share.
pub struct Shared {
    /// The node's configuration.
    pub config: NodeConfig,
    /// The chain id.
    pub chain_id: String,
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
    /// Signalled when a certified batch is added.
    pub batch_ready: Notify,
    /// The durable height, for clients waiting for a commit.
    pub durable: watch::Sender<u64>,
    /// Recently expired transaction ids.
    pub expired: Mutex<RecentSet>,
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
        let height = ledger.height();
        let me = validators.index_of(&key.public_key());
        let mempool = Mempool::new(config.mempool.clone());
        Shared {
            config,
            chain_id,
            genesis_hash,
            me,
            key,
            validators,
            peers,
            store,
            ledger: RwLock::new(ledger),
            mempool: Mutex::new(mempool),
            batches: Mutex::new(BatchState::new()),
            batch_ready: Notify::new(),
            durable: watch::Sender::new(height),
            expired: Mutex::new(RecentSet::new(EXPIRED_REMEMBERED)),
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

    /// Recently expired ids.
    pub fn expired(&self) -> MutexGuard<'_, RecentSet> {
        self.expired.lock().unwrap_or_else(PoisonError::into_inner)
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
