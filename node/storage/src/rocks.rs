//! The RocksDB store.
//!
//! One database per node, one column family per kind of data:
//!
//! | column family | key | value |
//! |---|---|---|
//! | `blocks` | height (u64 big-endian) | encoded block |
//! | `block_hashes` | block hash (32 bytes) | height (u64 big-endian) |
//! | `transactions` | tx id (32 bytes) | stored transaction bytes |
//! | `receipts` | tx id (32 bytes) | encoded receipt |
//! | `state` | state key | value |
//! | `tree_nodes` | Merkle node key | node bytes |
//! | `history` | address (20) ‖ height (u64 BE) ‖ index (u32 BE) | tx id (32 bytes) |
//! | `meta` | `head`, `schema_version` | height ‖ block hash ‖ state root; u32 BE |
//! | `batch_heights` | batch digest (32 bytes) | height of the block that first ordered it (u64 BE) |
//! | `batches` | batch digest (32 bytes) | the node's record of a batch it holds for consensus |
//!
//! Big-endian integers make byte order equal numeric order, so the last
//! block is the last key of `blocks` and an account's history is one
//! contiguous, ordered range that the 20-byte prefix extractor of `history`
//! lets RocksDB find with a prefix Bloom filter.
//!
//! Every commit is one `WriteBatch` written with `sync = true`: the write-ahead
//! log makes a batch atomic across column families, and syncing it before
//! [`commit`](crate::BlockStore::commit) returns makes a returned commit
//! survive `kill -9` and power loss. [`RocksStore::open`] checks that the head
//! agrees with the blocks before anything reads the store.
//!
//! A database is made once, by [`RocksStore::create`], and afterwards only
//! opened: [`RocksStore::open`] of a missing database is [`Error::NotFound`],
//! never a fresh, empty one. Consensus safety data is not kept here but in
//! [`FileSafetyStore`](crate::FileSafetyStore) (schema 1 had a `safety`
//! column family; schema 2 has none; schema 3 adds `batches` and
//! `batch_heights`).
//!
//! A commit holds the commit lock across its synced write, but not the lock
//! of the cached head: readers of [`head`](crate::BlockStore::head) never
//! wait for a commit's fsync, and the new head is published only after the
//! write is durable.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    DBRecoveryMode, Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions,
};
use yuchain_proto::address::ADDRESS_LENGTH;
use yuchain_proto::{Address, Hash32};

use crate::{
    BlockCommit, BlockStore, Error, HISTORY_KEY_LENGTH, HISTORY_PAGE_ENTRIES_MAX, Head,
    HistoryEntry, Result, Visitor, check_next_height,
};

/// Column family of encoded blocks by height.
pub const CF_BLOCKS: &str = "blocks";
/// Column family of block heights by block hash.
pub const CF_BLOCK_HASHES: &str = "block_hashes";
/// Column family of transactions by id.
pub const CF_TRANSACTIONS: &str = "transactions";
/// Column family of receipts by transaction id.
pub const CF_RECEIPTS: &str = "receipts";
/// Column family of account state.
pub const CF_STATE: &str = "state";
/// Column family of Merkle tree nodes.
pub const CF_TREE_NODES: &str = "tree_nodes";
/// Column family of per-account history.
pub const CF_HISTORY: &str = "history";
/// Column family of the head and the schema version.
pub const CF_META: &str = "meta";
/// Column family of batches of transactions the node acknowledged (or
/// made) and has not executed yet, by digest: kept across a crash, because
/// a batch's availability certificate promises the signers hold it.
pub const CF_BATCHES: &str = "batches";
/// Column family of the height of the block that ordered each batch.
pub const CF_BATCH_HEIGHTS: &str = "batch_heights";

/// Every column family of the database.
pub const COLUMN_FAMILIES: [&str; 10] = [
    CF_BLOCKS,
    CF_BLOCK_HASHES,
    CF_TRANSACTIONS,
    CF_RECEIPTS,
    CF_STATE,
    CF_TREE_NODES,
    CF_HISTORY,
    CF_META,
    CF_BATCHES,
    CF_BATCH_HEIGHTS,
];

/// The layout version this build reads and writes, recorded at creation.
/// Version 2 moved consensus safety data out of the database; version 3
/// added `batches` and `batch_heights`.
pub const SCHEMA_VERSION: u32 = 3;

const META_HEAD: &[u8] = b"head";
const META_SCHEMA_VERSION: &[u8] = b"schema_version";
const HEAD_LENGTH: usize = 8 + 32 + 32;

/// Resource bounds of a [`RocksStore`]. The defaults suit a validator with a
/// few GiB of memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksConfig {
    /// The block cache shared by all column families (decompressed data,
    /// index and filter blocks).
    pub block_cache_bytes: usize,
    /// The memtable size of one column family before it is flushed.
    pub write_buffer_bytes: usize,
    /// The memtable memory of all column families together; reaching it
    /// flushes the largest.
    pub write_buffers_total_bytes: usize,
    /// The write-ahead log size past which column families that hold old
    /// log entries are flushed, so rarely written ones (safety, meta) do not
    /// pin the log.
    pub wal_bytes_max: u64,
    /// Open SST files kept by RocksDB.
    pub open_files_max: i32,
    /// Background flush and compaction threads.
    pub background_jobs: i32,
}

impl Default for RocksConfig {
    fn default() -> RocksConfig {
        RocksConfig {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
            write_buffers_total_bytes: 512 << 20,
            wal_bytes_max: 1 << 30,
            open_files_max: 1_024,
            background_jobs: 4,
        }
    }
}

/// The RocksDB store; see the [module docs](self) for the layout.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    /// Serialises commits, so two callers can never both write the same next
    /// height; held across the synced write.
    commits: Mutex<()>,
    /// The head, cached; written only under `commits` and after the write is
    /// durable, and never held across I/O.
    head: RwLock<Option<Head>>,
    synced: WriteOptions,
    /// Called by `commit` just before its synced write, so unit tests can
    /// hold a commit there and check what readers see meanwhile.
    #[cfg(test)]
    before_write: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

/// How [`open_db`] treats what is (or is not) at the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// A new database; the path must be missing or an empty directory.
    Create,
    /// An existing database with exactly this schema's column families.
    Open,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("head", &self.cached_head())
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Creates an empty database at `path` with the default [`RocksConfig`].
    pub fn create(path: impl AsRef<Path>) -> Result<RocksStore> {
        RocksStore::create_with(path, &RocksConfig::default())
    }

    /// Creates an empty database at `path`, which must be missing or an
    /// empty directory ([`Error::AlreadyExists`] otherwise), and records the
    /// schema version, synced.
    pub fn create_with(path: impl AsRef<Path>, config: &RocksConfig) -> Result<RocksStore> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path, config, OpenMode::Create)?;
        let store = RocksStore::wrap(db, path);
        store
            .db
            .put_cf_opt(
                store.cf(CF_META)?,
                META_SCHEMA_VERSION,
                SCHEMA_VERSION.to_be_bytes(),
                &store.synced,
            )
            .map_err(Error::rocks("recording the schema version"))?;
        Ok(store)
    }

    /// Opens the existing database at `path` with the default
    /// [`RocksConfig`] and checks its consistency.
    pub fn open(path: impl AsRef<Path>) -> Result<RocksStore> {
        RocksStore::open_with(path, &RocksConfig::default())
    }

    /// Opens the existing database at `path` ([`Error::NotFound`] if there
    /// is none: opening never creates one) and checks that the head agrees
    /// with the blocks: a head implies its block, its hash index and no block
    /// above it; no head implies no blocks. Fails with [`Error::Corruption`]
    /// otherwise.
    pub fn open_with(path: impl AsRef<Path>, config: &RocksConfig) -> Result<RocksStore> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path, config, OpenMode::Open)?;
        let store = RocksStore::wrap(db, path);
        store.check_schema_version()?;
        let head = store.read_head()?;
        store.check_consistency(head.as_ref())?;
        *store.head.write().unwrap_or_else(PoisonError::into_inner) = head;
        Ok(store)
    }

    fn wrap(db: DB, path: PathBuf) -> RocksStore {
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        RocksStore {
            db,
            path,
            commits: Mutex::new(()),
            head: RwLock::new(None),
            synced,
            #[cfg(test)]
            before_write: None,
        }
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a batch's record under its digest, synced: durable before it
    /// returns (the node acknowledges the batch only then).
    pub fn put_batch(&self, digest: &Hash32, record: &[u8]) -> Result<()> {
        self.db
            .put_cf_opt(self.cf(CF_BATCHES)?, digest.0, record, &self.synced)
            .map_err(Error::rocks("storing a batch"))
    }

    /// The batch record stored under `digest`.
    pub fn batch(&self, digest: &Hash32) -> Result<Option<Vec<u8>>> {
        self.get(CF_BATCHES, &digest.0)
    }

    /// Deletes batch records (not synced: a delete lost in a crash leaves a
    /// record that is deleted again later).
    pub fn delete_batches(&self, digests: &[Hash32]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_BATCHES)?;
        let mut batch = WriteBatch::default();
        for digest in digests {
            batch.delete_cf(cf, digest.0);
        }
        self.db
            .write(batch)
            .map_err(Error::rocks("deleting batches"))
    }

    /// Visits every batch record in digest order.
    pub fn for_each_batch(&self, visit: Visitor<'_>) -> Result<()> {
        self.for_each(CF_BATCHES, visit)
    }

    fn lock_commits(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data: the cached head is replaced only after
        // a successful write, so it is right even if a panic poisoned a lock.
        self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_head(&self) -> Option<Head> {
        *self.head.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish_head(&self, head: Head) {
        *self.head.write().unwrap_or_else(PoisonError::into_inner) = Some(head);
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or(Error::MissingColumnFamily { name })
    }

    fn get(&self, name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(name)?, key)
            .map_err(Error::rocks("reading a key"))
    }

    fn check_schema_version(&self) -> Result<()> {
        match self.get(CF_META, META_SCHEMA_VERSION)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| {
                        Error::corruption(format!(
                            "schema version has {} bytes, expected 4",
                            bytes.len()
                        ))
                    })?;
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(Error::SchemaVersion {
                        found,
                        supported: SCHEMA_VERSION,
                    })
                }
            }
            None => Err(Error::corruption(format!(
                "the database at {} records no schema version: its creation was interrupted \
                 (it holds no blocks then; delete it and create it again) or it is not a \
                 yuchain database",
                self.path.display()
            ))),
        }
    }

    fn read_head(&self) -> Result<Option<Head>> {
        self.get(CF_META, META_HEAD)?
            .map(|bytes| decode_head(&bytes))
            .transpose()
    }

    fn check_consistency(&self, head: Option<&Head>) -> Result<()> {
        let mut last_block = self.db.raw_iterator_cf(self.cf(CF_BLOCKS)?);
        last_block.seek_to_last();
        let last_height = match last_block.key() {
            Some(key) => Some(decode_height(key, "block key")?),
            None => None,
        };
        last_block
            .status()
            .map_err(Error::rocks("finding the last block"))?;
        drop(last_block);
        let Some(head) = head else {
            return match last_height {
                None => Ok(()),
                Some(height) => Err(Error::corruption(format!(
                    "no head, but block {height} is stored"
                ))),
            };
        };
        if last_height != Some(head.height) {
            return Err(Error::corruption(format!(
                "head is at height {}, but the last stored block is {last_height:?}",
                head.height
            )));
        }
        match self.block_height(&head.block_hash)? {
            Some(height) if height == head.height => Ok(()),
            indexed => Err(Error::corruption(format!(
                "head block {} at height {} is indexed at height {indexed:?}",
                head.block_hash, head.height
            ))),
        }
    }

    fn for_each(&self, name: &'static str, visit: Visitor<'_>) -> Result<()> {
        // An iterator reads from an implicit snapshot, so `visit` sees one
        // consistent state even if a commit lands meanwhile.
        let mut iter = self.db.raw_iterator_cf(self.cf(name)?);
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            visit(key, value)?;
            iter.next();
        }
        iter.status().map_err(Error::rocks("iterating"))
    }
}

/// Opens the database with every column family: a new one for
/// [`OpenMode::Create`], an existing one with exactly [`COLUMN_FAMILIES`]
/// for [`OpenMode::Open`].
pub(crate) fn open_db(path: &Path, config: &RocksConfig, mode: OpenMode) -> Result<DB> {
    let mut options = Options::default();
    match mode {
        OpenMode::Create => {
            let empty = match std::fs::read_dir(path) {
                Ok(mut entries) => entries.next().is_none(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
                Err(error) => return Err(Error::io("listing", path)(error)),
            };
            if !empty {
                return Err(Error::AlreadyExists {
                    what: "block database",
                    path: path.to_path_buf(),
                });
            }
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            options.set_error_if_exists(true);
        }
        OpenMode::Open => {
            if !path.join("CURRENT").is_file() {
                return Err(Error::NotFound {
                    what: "block database",
                    path: path.to_path_buf(),
                });
            }
            options.create_if_missing(false);
            options.create_missing_column_families(false);
            let found =
                DB::list_cf(&options, path).map_err(Error::rocks("listing column families"))?;
            if let Some(unknown) = found.iter().find(|name| {
                name.as_str() != "default" && !COLUMN_FAMILIES.contains(&name.as_str())
            }) {
                return Err(Error::corruption(format!(
                    "the database at {} has a column family {unknown:?} that schema version \
                     {SCHEMA_VERSION} does not have (schema 1 kept safety data in \"safety\"; \
                     move a validator's safety record out of it before upgrading)",
                    path.display()
                )));
            }
        }
    }
    let cache = Cache::new_lru_cache(config.block_cache_bytes);
    // Point-in-time recovery replays the write-ahead log up to the first
    // damaged record. Commits are whole batches, so it never stops inside
    // one; and a synced batch is complete, so it is never the one dropped.
    options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    options.set_paranoid_checks(true);
    options.set_max_background_jobs(config.background_jobs);
    options.set_max_open_files(config.open_files_max);
    options.set_db_write_buffer_size(config.write_buffers_total_bytes);
    options.set_max_total_wal_size(config.wal_bytes_max);
    options.set_bytes_per_sync(1 << 20);
    options.set_keep_log_file_num(10);
    let descriptors = COLUMN_FAMILIES.iter().map(|&name| {
        ColumnFamilyDescriptor::new(name, column_family_options(name, &cache, config))
    });
    DB::open_cf_descriptors(&options, path, descriptors)
        .map_err(Error::rocks("opening the database"))
}

fn column_family_options(name: &str, cache: &Cache, config: &RocksConfig) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Full (not block-based) Bloom filters at 10 bits per key: about 1 %
    // false positives, so a lookup of a missing tx id or state key rarely
    // reads a data block.
    table.set_bloom_filter(10.0, false);
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_bottommost_compression_type(DBCompressionType::Lz4);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_write_buffer_size(config.write_buffer_bytes);
    if name == CF_HISTORY {
        // History is only read by account: filter on the 20-byte address
        // prefix instead of whole keys.
        options.set_prefix_extractor(SliceTransform::create_fixed_prefix(ADDRESS_LENGTH));
        options.set_memtable_prefix_bloom_ratio(0.1);
        table.set_whole_key_filtering(false);
    } else if matches!(name, CF_RECEIPTS | CF_TRANSACTIONS | CF_BATCH_HEIGHTS) {
        // Asked for ids that are mostly absent (every new submission asks
        // whether its id is committed; every batch whether it was ordered):
        // a Bloom filter over the memtable's keys answers without walking
        // its skip list.
        options.set_memtable_prefix_bloom_ratio(0.05);
        options.set_memtable_whole_key_filtering(true);
    }
    options.set_block_based_table_factory(&table);
    options
}

fn decode_height(bytes: &[u8], what: &str) -> Result<u64> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corruption(format!("{what} has {} bytes, expected 8", bytes.len())))
}

fn encode_head(head: &Head) -> [u8; HEAD_LENGTH] {
    let mut bytes = [0; HEAD_LENGTH];
    bytes[..8].copy_from_slice(&head.height.to_be_bytes());
    bytes[8..40].copy_from_slice(&head.block_hash.0);
    bytes[40..].copy_from_slice(&head.state_root.0);
    bytes
}

fn decode_head(bytes: &[u8]) -> Result<Head> {
    if bytes.len() != HEAD_LENGTH {
        return Err(Error::corruption(format!(
            "head record has {} bytes, expected {HEAD_LENGTH}",
            bytes.len()
        )));
    }
    let hash = |range: std::ops::Range<usize>| {
        Hash32::from_slice(&bytes[range]).ok_or_else(|| Error::corruption("head hash length"))
    };
    Ok(Head {
        height: decode_height(&bytes[..8], "head height")?,
        block_hash: hash(8..40)?,
        state_root: hash(40..72)?,
    })
}

fn history_key(address: &Address, height: u64, index: u32) -> [u8; HISTORY_KEY_LENGTH] {
    let mut key = [0; HISTORY_KEY_LENGTH];
    key[..ADDRESS_LENGTH].copy_from_slice(&address.0);
    key[ADDRESS_LENGTH..ADDRESS_LENGTH + 8].copy_from_slice(&height.to_be_bytes());
    key[ADDRESS_LENGTH + 8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn decode_history_entry(key: &[u8], value: &[u8]) -> Result<HistoryEntry> {
    if key.len() != HISTORY_KEY_LENGTH {
        return Err(Error::corruption(format!(
            "history key has {} bytes, expected {HISTORY_KEY_LENGTH}",
            key.len()
        )));
    }
    let tx_id = Hash32::from_slice(value).ok_or_else(|| {
        Error::corruption(format!(
            "history tx id has {} bytes, expected 32",
            value.len()
        ))
    })?;
    let height = decode_height(&key[ADDRESS_LENGTH..ADDRESS_LENGTH + 8], "history height")?;
    let mut index = [0; 4];
    index.copy_from_slice(&key[ADDRESS_LENGTH + 8..]);
    Ok(HistoryEntry {
        height,
        index: u32::from_be_bytes(index),
        tx_id,
    })
}

/// Adds one column family's writes to the batch in key order. RocksDB's
/// memtable (a skip list) inserts a run of ascending keys far faster than
/// the same keys in random order, since each insert resumes from the last
/// one's position; at 60,000 keys a block, that is much of a commit's cost.
/// The sort is stable, so were a key ever given twice, the later value would
/// still win, as in the unsorted batch.
fn put_sorted<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    mut entries: Vec<(K, Option<V>)>,
) {
    entries.sort_by(|(a, _), (b, _)| a.as_ref().cmp(b.as_ref()));
    for (key, value) in entries {
        match value {
            Some(value) => batch.put_cf(cf, key, value),
            None => batch.delete_cf(cf, key),
        }
    }
}

/// Writes keyed by transaction id, borrowed for [`put_sorted`].
fn by_id(entries: &[(Hash32, Vec<u8>)]) -> Vec<([u8; 32], Option<&[u8]>)> {
    entries
        .iter()
        .map(|(tx_id, bytes)| (tx_id.0, Some(bytes.as_slice())))
        .collect()
}

/// Puts and deletes, borrowed for [`put_sorted`].
fn updates(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<(&[u8], Option<&[u8]>)> {
    entries
        .iter()
        .map(|(key, value)| (key.as_slice(), value.as_deref()))
        .collect()
}

impl BlockStore for RocksStore {
    fn commit(&self, commit: &BlockCommit) -> Result<()> {
        let _committing = self.lock_commits();
        // Only commits change the head, and they wait for the lock above.
        let head = self.cached_head();
        check_next_height(head.as_ref(), commit)?;
        if let Some(existing_height) = self.block_height(&commit.block_hash)? {
            return Err(Error::DuplicateBlockHash {
                height: commit.height,
                block_hash: commit.block_hash,
                existing_height,
            });
        }
        let new_head = Head {
            height: commit.height,
            block_hash: commit.block_hash,
            state_root: commit.state_root,
        };
        let mut batch = WriteBatch::default();
        let height = commit.height.to_be_bytes();
        batch.put_cf(self.cf(CF_BLOCKS)?, height, &commit.block);
        batch.put_cf(self.cf(CF_BLOCK_HASHES)?, commit.block_hash.0, height);
        put_sorted(
            &mut batch,
            self.cf(CF_TRANSACTIONS)?,
            by_id(&commit.transactions),
        );
        put_sorted(&mut batch, self.cf(CF_RECEIPTS)?, by_id(&commit.receipts));
        let batch_heights = self.cf(CF_BATCH_HEIGHTS)?;
        for digest in &commit.ordered_batches {
            // The first block to order a batch keeps it.
            if self.get(CF_BATCH_HEIGHTS, &digest.0)?.is_none() {
                batch.put_cf(batch_heights, digest.0, height);
            }
        }
        put_sorted(&mut batch, self.cf(CF_STATE)?, updates(&commit.state));
        put_sorted(
            &mut batch,
            self.cf(CF_TREE_NODES)?,
            updates(&commit.tree_nodes),
        );
        put_sorted(
            &mut batch,
            self.cf(CF_HISTORY)?,
            commit
                .history
                .iter()
                .map(|(address, index, tx_id)| {
                    (history_key(address, commit.height, *index), Some(tx_id.0))
                })
                .collect(),
        );
        batch.put_cf(self.cf(CF_META)?, META_HEAD, encode_head(&new_head));
        #[cfg(test)]
        if let Some(hook) = &self.before_write {
            hook(commit.height);
        }
        // The fsync happens here, with no lock readers need: `head` keeps
        // answering the previous head until the write is durable.
        self.db
            .write_opt(batch, &self.synced)
            .map_err(Error::rocks("writing a block commit"))?;
        self.publish_head(new_head);
        Ok(())
    }

    fn head(&self) -> Result<Option<Head>> {
        Ok(self.cached_head())
    }

    fn block(&self, height: u64) -> Result<Option<Vec<u8>>> {
        self.get(CF_BLOCKS, &height.to_be_bytes())
    }

    fn block_height(&self, block_hash: &Hash32) -> Result<Option<u64>> {
        self.get(CF_BLOCK_HASHES, &block_hash.0)?
            .map(|bytes| decode_height(&bytes, "block hash index value"))
            .transpose()
    }

    fn transaction(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>> {
        self.get(CF_TRANSACTIONS, &tx_id.0)
    }

    fn receipt(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>> {
        self.get(CF_RECEIPTS, &tx_id.0)
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(CF_STATE, key)
    }

    fn for_each_state(&self, visit: Visitor<'_>) -> Result<()> {
        self.for_each(CF_STATE, visit)
    }

    fn tree_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(CF_TREE_NODES, key)
    }

    fn batch_height(&self, digest: &Hash32) -> Result<Option<u64>> {
        match self.get(CF_BATCH_HEIGHTS, &digest.0)? {
            None => Ok(None),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(|bytes| Some(u64::from_be_bytes(bytes)))
                .map_err(|_| Error::corruption("a batch height is not 8 bytes")),
        }
    }

    fn for_each_tree_node(&self, visit: Visitor<'_>) -> Result<()> {
        self.for_each(CF_TREE_NODES, visit)
    }

    fn history(
        &self,
        address: &Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>> {
        let limit = limit.min(HISTORY_PAGE_ENTRIES_MAX);
        let mut entries = Vec::with_capacity(limit);
        if limit == 0 {
            return Ok(entries);
        }
        // Bound the iterator to this address's keys: the lower bound is the
        // bare address, the upper one sorts after every key with it.
        let mut upper = [0xFF; HISTORY_KEY_LENGTH + 1];
        upper[..ADDRESS_LENGTH].copy_from_slice(&address.0);
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(address.0.to_vec());
        read.set_iterate_upper_bound(upper.to_vec());
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(CF_HISTORY)?, read);
        match before {
            None => iter.seek_for_prev(history_key(address, u64::MAX, u32::MAX)),
            Some((height, index)) => {
                let cursor = history_key(address, height, index);
                iter.seek_for_prev(cursor);
                if iter.key() == Some(&cursor[..]) {
                    iter.prev();
                }
            }
        }
        while let Some((key, value)) = iter.item() {
            if entries.len() == limit || !key.starts_with(&address.0) {
                break;
            }
            entries.push(decode_history_entry(key, value)?);
            iter.prev();
        }
        iter.status()
            .map_err(Error::rocks("reading account history"))?;
        Ok(entries)
    }
}

#[cfg(test)]
#[path = "tests/rocks_tests.rs"]
mod tests;
