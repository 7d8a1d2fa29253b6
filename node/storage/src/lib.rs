//! yuchain's storage: blocks, transactions, receipts, account state, Merkle
//! nodes, per-account history and consensus safety data.
//!
//! The store keeps bytes; the ledger and the consensus core produce them.
//! Everything one committed block changes arrives as one [`BlockCommit`] and
//! is written in one atomic, synced batch together with the new [`Head`], so
//! after `kill -9` at any instant the store holds exactly the blocks whose
//! [`BlockStore::commit`] returned, possibly plus the one in flight, never a
//! part of a block.
//!
//! Two implementations of each store behave identically and pass one test
//! suite:
//!
//! - [`RocksStore`]: RocksDB, one column family per kind of data (see
//!   [`rocks`]), synced `WriteBatch` per commit and a consistency check on
//!   open; [`MemStore`]: `BTreeMap`s behind a lock, for tests and the
//!   simulator;
//! - [`FileSafetyStore`]: the consensus safety record in a file of its own,
//!   replaced atomically and durably on every write and checksummed (see
//!   [`safety`]); [`MemSafetyStore`]: its in-memory twin.
//!
//! A node keeps both in its home directory ([`home`]): [`create_node_home`]
//! makes one, [`open_node_home`] opens it and never creates anything, and a
//! validator whose home has a block database but no safety record refuses to
//! start ([`Error::SafetyRecordMissing`]).
//!
//! The API, in two traits (as the consensus driver needs only the second):
//!
//! - [`BlockStore`]: [`commit`](BlockStore::commit) a block at height
//!   `head + 1` (genesis is height 0, the first commit of an empty store);
//!   read the [`head`](BlockStore::head), blocks by height or hash,
//!   transactions and receipts by id, state and Merkle nodes by key or all in
//!   key order (to reload the ledger at startup), and an account's
//!   [`history`](BlockStore::history) newest first, in pages of at most
//!   [`HISTORY_PAGE_ENTRIES_MAX`];
//! - [`SafetyStore`]: small consensus safety records (last vote, locks),
//!   each write durable before it returns, apart from the block data.
//!
//! ```
//! use yuchain_proto::{Address, Hash32};
//! use yuchain_storage::{BlockCommit, BlockStore, MemStore};
//!
//! let store = MemStore::new();
//! let alice = Address([7; 20]);
//! let tx_id = Hash32([1; 32]);
//! let genesis = BlockCommit {
//!     height: 0,
//!     block_hash: Hash32([9; 32]),
//!     state_root: Hash32([5; 32]),
//!     block: b"encoded block".to_vec(),
//!     transactions: vec![(tx_id, b"tx".to_vec())],
//!     receipts: vec![(tx_id, b"receipt".to_vec())],
//!     state: vec![(b"account/alice".to_vec(), Some(b"100 fen".to_vec()))],
//!     tree_nodes: vec![],
//!     history: vec![(alice, 0, tx_id)],
//!     ordered_batches: vec![],
//! };
//! store.commit(&genesis)?;
//! assert_eq!(store.head()?.map(|head| head.height), Some(0));
//! assert_eq!(store.state(b"account/alice")?, Some(b"100 fen".to_vec()));
//! assert_eq!(store.history(&alice, None, 10)?[0].tx_id, tx_id);
//! // Height 0 again is refused and changes nothing.
//! assert!(store.commit(&genesis).is_err());
//! # Ok::<(), yuchain_storage::Error>(())
//! ```
//!
//! This crate depends on no async runtime, network or RPC stack: it is called
//! from the node's executor thread and from offline audit tools.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod home;
mod mem;
pub mod rocks;
pub mod safety;

pub use error::{Error, Result};
pub use home::{NodeHome, Role, create_node_home, open_node_home};
pub use mem::{MemStore, SyncHook};
pub use rocks::{RocksConfig, RocksStore};
pub use safety::{FileSafetyStore, MemSafetyStore};

use yuchain_proto::{Address, Hash32};

/// The most history entries one [`BlockStore::history`] call returns; larger
/// limits are capped to it, so one request never reads an unbounded range.
pub const HISTORY_PAGE_ENTRIES_MAX: usize = 1_000;

/// Everything one committed block changes, written in one atomic, synced
/// batch together with the new head.
///
/// Entries are applied in order, so a key written twice in one commit keeps
/// its last value (`None` deletes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockCommit {
    /// The block's height: 0 (genesis) for an empty store, else head + 1.
    pub height: u64,
    /// The block's hash, indexed to its height.
    pub block_hash: Hash32,
    /// The state root after applying this block.
    pub state_root: Hash32,
    /// The encoded block.
    pub block: Vec<u8>,
    /// Transaction id to its stored bytes (the transaction or its location).
    pub transactions: Vec<(Hash32, Vec<u8>)>,
    /// Transaction id to its encoded receipt.
    pub receipts: Vec<(Hash32, Vec<u8>)>,
    /// State key to its new value; `None` deletes the key.
    pub state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Merkle node key to its node bytes; `None` deletes a pruned node.
    pub tree_nodes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Per-account history entries at this height: (account, index of the
    /// transaction in the block, transaction id).
    pub history: Vec<(Address, u32, Hash32)>,
    /// The batch digests the block ordered, indexed to its height in the
    /// same write (so a batch ordered again is recognised, and served, by
    /// every node alike).
    pub ordered_batches: Vec<Hash32>,
}

impl BlockCommit {
    /// The bytes of keys and values this commit writes, for metrics and
    /// benchmarks (the on-disk size differs by encoding and compression).
    pub fn payload_bytes(&self) -> usize {
        let pairs = |entries: &[(Hash32, Vec<u8>)]| -> usize {
            entries.iter().map(|(_, value)| 32 + value.len()).sum()
        };
        let updates = |entries: &[(Vec<u8>, Option<Vec<u8>>)]| -> usize {
            entries
                .iter()
                .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
                .sum()
        };
        self.block.len()
            + self.ordered_batches.len() * (32 + 8)
            + pairs(&self.transactions)
            + pairs(&self.receipts)
            + updates(&self.state)
            + updates(&self.tree_nodes)
            + self.history.len() * (HISTORY_KEY_LENGTH + 32)
    }
}

/// The last committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash32,
    /// The state root after it.
    pub state_root: Hash32,
}

/// One entry of an account's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The height of the block holding the transaction.
    pub height: u64,
    /// The transaction's index in that block.
    pub index: u32,
    /// The transaction id.
    pub tx_id: Hash32,
}

impl HistoryEntry {
    /// The cursor to pass as `before` to get the page after this entry.
    pub fn position(&self) -> (u64, u32) {
        (self.height, self.index)
    }
}

/// A callback of [`BlockStore::for_each_state`] and
/// [`BlockStore::for_each_tree_node`], called with each key and value; an
/// error stops the iteration (use [`Error::VisitorStopped`] for the caller's
/// own reasons).
pub type Visitor<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<()>;

/// Blocks, transactions, receipts, state, Merkle nodes and history.
pub trait BlockStore: Send + Sync {
    /// Writes everything `commit` changes and the new head in one atomic,
    /// synced write. Rejects, writing nothing, a height other than
    /// head + 1 (0 for an empty store) with [`Error::HeightMismatch`], and a
    /// block hash already stored with [`Error::DuplicateBlockHash`].
    fn commit(&self, commit: &BlockCommit) -> Result<()>;

    /// The last committed block, `None` for an empty store.
    fn head(&self) -> Result<Option<Head>>;

    /// The encoded block at `height`.
    fn block(&self, height: u64) -> Result<Option<Vec<u8>>>;

    /// The height of the block with this hash.
    fn block_height(&self, block_hash: &Hash32) -> Result<Option<u64>>;

    /// The height of the block that ordered the batch with `digest`
    /// (the first, if several did).
    fn batch_height(&self, digest: &Hash32) -> Result<Option<u64>>;

    /// The stored bytes of a transaction.
    fn transaction(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>>;

    /// The encoded receipt of a transaction.
    fn receipt(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>>;

    /// The value of a state key.
    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `visit` on every state entry in key order (bytewise), over a
    /// consistent view, to reload the ledger at startup. An error from
    /// `visit` stops the iteration and is returned.
    fn for_each_state(&self, visit: Visitor<'_>) -> Result<()>;

    /// The bytes of a Merkle node.
    fn tree_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `visit` on every Merkle node in key order, like
    /// [`for_each_state`](BlockStore::for_each_state).
    fn for_each_tree_node(&self, visit: Visitor<'_>) -> Result<()>;

    /// Up to `limit` (capped at [`HISTORY_PAGE_ENTRIES_MAX`]) history entries
    /// of `address`, newest first, strictly older than `before` (a
    /// `(height, index)` cursor, see [`HistoryEntry::position`]) if given.
    fn history(
        &self,
        address: &Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>>;
}

/// Consensus safety data (last vote, locked block), kept apart from the block
/// data and written synced, so a validator never votes twice after a crash.
/// At most [`safety::SAFETY_ENTRIES_MAX`] keys of at most
/// [`safety::SAFETY_KEY_BYTES_MAX`] bytes, and
/// [`safety::SAFETY_RECORD_BYTES_MAX`] bytes in all
/// ([`Error::SafetyLimit`] otherwise, writing nothing).
pub trait SafetyStore: Send + Sync {
    /// Stores `value` under `key`, durable before returning. After an error
    /// the write must be treated as not done (nothing that depends on it may
    /// leave the node).
    fn put_safety(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write_safety(&[(key.to_vec(), Some(value.to_vec()))])
    }

    /// Sets (`Some`) or removes (`None`) several keys in one atomic write,
    /// durable before returning (one sync for all of them). After an error
    /// none of them is done.
    fn write_safety(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()>;

    /// The value stored under `key`.
    fn safety(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Every key stored, in order.
    fn safety_keys(&self) -> Result<Vec<Vec<u8>>>;
}

/// History keys are address ‖ height (big-endian) ‖ index (big-endian), so
/// an account's entries are adjacent and ordered by position.
pub(crate) const HISTORY_KEY_LENGTH: usize = 20 + 8 + 4;

/// The check both stores make before writing: the commit's height must
/// follow the head.
pub(crate) fn check_next_height(head: Option<&Head>, commit: &BlockCommit) -> Result<()> {
    let expected = match head {
        None => 0,
        Some(head) => head.height.checked_add(1).ok_or_else(|| {
            Error::corruption(format!("head height {} has no successor", head.height))
        })?,
    };
    if commit.height == expected {
        Ok(())
    } else {
        Err(Error::HeightMismatch {
            expected,
            got: commit.height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_counts_every_key_and_value() {
        let commit = BlockCommit {
            block: vec![0; 100],
            transactions: vec![(Hash32::ZERO, vec![0; 10])],
            receipts: vec![(Hash32::ZERO, vec![0; 5])],
            state: vec![(vec![0; 3], Some(vec![0; 7])), (vec![0; 4], None)],
            tree_nodes: vec![(vec![0; 2], Some(vec![0; 9]))],
            history: vec![(Address([0; 20]), 0, Hash32::ZERO)],
            ..BlockCommit::default()
        };
        let expected = 100 + (32 + 10) + (32 + 5) + (3 + 7) + 4 + (2 + 9) + (32 + 32);
        assert_eq!(commit.payload_bytes(), expected);
    }

    #[test]
    fn next_height_is_zero_for_an_empty_store_then_head_plus_one() {
        let at = |height| BlockCommit {
            height,
            ..BlockCommit::default()
        };
        assert!(check_next_height(None, &at(0)).is_ok());
        assert!(matches!(
            check_next_height(None, &at(1)),
            Err(Error::HeightMismatch {
                expected: 0,
                got: 1
            })
        ));
        let head = Head {
            height: 41,
            block_hash: Hash32::ZERO,
            state_root: Hash32::ZERO,
        };
        assert!(check_next_height(Some(&head), &at(42)).is_ok());
        for height in [0, 41, 43, u64::MAX] {
            assert!(matches!(
                check_next_height(Some(&head), &at(height)),
                Err(Error::HeightMismatch { expected: 42, got }) if got == height
            ));
        }
    }
}
