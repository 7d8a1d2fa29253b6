//! The in-memory twin of [`RocksStore`](crate::RocksStore), for tests and
//! the deterministic simulator. Its safety-data twin is
//! [`MemSafetyStore`](crate::MemSafetyStore).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use yuchain_proto::{Address, Hash32};

use crate::{
    BlockCommit, BlockStore, Error, HISTORY_PAGE_ENTRIES_MAX, Head, HistoryEntry, Result, Visitor,
    check_next_height,
};

/// Called by [`MemStore::commit`](BlockStore::commit) with the commit's
/// height where [`RocksStore`](crate::RocksStore) syncs its write.
pub type SyncHook = Box<dyn Fn(u64) + Send + Sync>;

/// An in-memory store with the same behaviour as
/// [`RocksStore`](crate::RocksStore): `BTreeMap`s in bytewise key order
/// behind one lock, so a commit is atomic with respect to every reader.
///
/// Like RocksStore, a commit is checked, then "synced" (the
/// [`SyncHook`], if any) without the data lock, then applied: readers never
/// wait for the sync, and see the commit only once it is complete.
#[derive(Default)]
pub struct MemStore {
    data: Mutex<Data>,
    /// Serialises commits across the check, the sync and the apply.
    commits: Mutex<()>,
    sync_hook: Option<SyncHook>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("head", &self.lock().head)
            .field("sync_hook", &self.sync_hook.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Data {
    head: Option<Head>,
    blocks: BTreeMap<u64, Vec<u8>>,
    block_hashes: BTreeMap<Hash32, u64>,
    transactions: BTreeMap<Hash32, Vec<u8>>,
    receipts: BTreeMap<Hash32, Vec<u8>>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    tree_nodes: BTreeMap<Vec<u8>, Vec<u8>>,
    history: BTreeMap<(Address, u64, u32), Hash32>,
    batch_heights: BTreeMap<Hash32, u64>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// An empty store that calls `hook` in every commit at the point where a
    /// durable store syncs, with no lock held that readers take: tests hold a
    /// commit there (a slow disk) and check what readers see meanwhile.
    pub fn with_sync_hook(hook: SyncHook) -> MemStore {
        MemStore {
            sync_hook: Some(hook),
            ..MemStore::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A panic while the lock was held cannot leave a half-applied commit:
        // `commit` validates first and then only inserts into maps, which
        // does not panic, so the data behind a poisoned lock is consistent.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn apply_updates(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, updates: &[(Vec<u8>, Option<Vec<u8>>)]) {
    for (key, value) in updates {
        match value {
            Some(value) => {
                map.insert(key.clone(), value.clone());
            }
            None => {
                map.remove(key);
            }
        }
    }
}

/// Visits a copy of the entries, so `visit` sees a consistent view and may
/// call back into the store without deadlocking. The copy costs memory equal
/// to the map, which is acceptable for the test and simulator sizes this
/// store serves.
fn visit_copy(entries: Vec<(Vec<u8>, Vec<u8>)>, visit: Visitor<'_>) -> Result<()> {
    for (key, value) in &entries {
        visit(key, value)?;
    }
    Ok(())
}

fn copy_entries(map: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl BlockStore for MemStore {
    fn commit(&self, commit: &BlockCommit) -> Result<()> {
        // Only commits change the data, and they wait for this lock, so what
        // is checked below still holds when the commit is applied.
        let _committing = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let data = self.lock();
            check_next_height(data.head.as_ref(), commit)?;
            if let Some(&existing_height) = data.block_hashes.get(&commit.block_hash) {
                return Err(Error::DuplicateBlockHash {
                    height: commit.height,
                    block_hash: commit.block_hash,
                    existing_height,
                });
            }
        }
        if let Some(hook) = &self.sync_hook {
            hook(commit.height);
        }
        let mut data = self.lock();
        data.blocks.insert(commit.height, commit.block.clone());
        data.block_hashes.insert(commit.block_hash, commit.height);
        for (tx_id, bytes) in &commit.transactions {
            data.transactions.insert(*tx_id, bytes.clone());
        }
        for (tx_id, bytes) in &commit.receipts {
            data.receipts.insert(*tx_id, bytes.clone());
        }
        for digest in &commit.ordered_batches {
            data.batch_heights.entry(*digest).or_insert(commit.height);
        }
        apply_updates(&mut data.state, &commit.state);
        apply_updates(&mut data.tree_nodes, &commit.tree_nodes);
        for (address, index, tx_id) in &commit.history {
            data.history
                .insert((*address, commit.height, *index), *tx_id);
        }
        data.head = Some(Head {
            height: commit.height,
            block_hash: commit.block_hash,
            state_root: commit.state_root,
        });
        Ok(())
    }

    fn head(&self) -> Result<Option<Head>> {
        Ok(self.lock().head)
    }

    fn block(&self, height: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().blocks.get(&height).cloned())
    }

    fn block_height(&self, block_hash: &Hash32) -> Result<Option<u64>> {
        Ok(self.lock().block_hashes.get(block_hash).copied())
    }

    fn batch_height(&self, digest: &Hash32) -> Result<Option<u64>> {
        Ok(self.lock().batch_heights.get(digest).copied())
    }

    fn transaction(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().transactions.get(tx_id).cloned())
    }

    fn receipt(&self, tx_id: &Hash32) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().receipts.get(tx_id).cloned())
    }

    fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().state.get(key).cloned())
    }

    fn for_each_state(&self, visit: Visitor<'_>) -> Result<()> {
        let entries = copy_entries(&self.lock().state);
        visit_copy(entries, visit)
    }

    fn tree_node(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().tree_nodes.get(key).cloned())
    }

    fn for_each_tree_node(&self, visit: Visitor<'_>) -> Result<()> {
        let entries = copy_entries(&self.lock().tree_nodes);
        visit_copy(entries, visit)
    }

    fn history(
        &self,
        address: &Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>> {
        let limit = limit.min(HISTORY_PAGE_ENTRIES_MAX);
        let data = self.lock();
        let start = (*address, 0, 0);
        let entries = match before {
            Some((height, index)) => data.history.range(start..(*address, height, index)),
            None => data.history.range(start..=(*address, u64::MAX, u32::MAX)),
        };
        Ok(entries
            .rev()
            .take(limit)
            .map(|(&(_, height, index), &tx_id)| HistoryEntry {
                height,
                index,
                tx_id,
            })
            .collect())
    }
}
