//! Self-describing commits: everything in the commit at a height is derived
//! from the height, so a test can check that a store holds every entry of
//! every block up to its head and nothing of the block after.

use yuchain_proto::{Address, Domain, Hash32};
use yuchain_storage::{BlockCommit, BlockStore, HISTORY_PAGE_ENTRIES_MAX, HistoryEntry, Visitor};

/// Transactions (and receipts) in each fixture block.
pub(crate) const TXS_PER_BLOCK: u32 = 6;
/// State keys each fixture block writes.
pub(crate) const STATE_PER_BLOCK: u32 = 8;
/// Merkle nodes each fixture block writes.
pub(crate) const NODES_PER_BLOCK: u32 = 8;
/// Bytes of filler in each fixture block, so a commit takes a moment to write.
const BLOCK_FILLER_BYTES: usize = 4_096;

/// The account every fixture transaction touches, so its history spans all
/// heights.
pub(crate) fn shared_account() -> Address {
    Address([0x5A; 20])
}

/// The account touched only by the first transaction at `height`.
pub(crate) fn account_at(height: u64) -> Address {
    let mut bytes = [0; 20];
    bytes[..8].copy_from_slice(&height.to_be_bytes());
    bytes[19] = 1;
    Address(bytes)
}

/// The hash of the fixture block at `height`.
pub(crate) fn block_hash(height: u64) -> Hash32 {
    Domain::BlockHeader.hash(&height.to_be_bytes())
}

/// The state root after the fixture block at `height`.
pub(crate) fn state_root(height: u64) -> Hash32 {
    Domain::StateKey.hash(&height.to_be_bytes())
}

/// The id of transaction `index` at `height`.
pub(crate) fn tx_id(height: u64, index: u32) -> Hash32 {
    Domain::TxId.hash_parts(&[&height.to_be_bytes(), &index.to_be_bytes()])
}

/// The encoded fixture block at `height`.
pub(crate) fn block_bytes(height: u64) -> Vec<u8> {
    let mut bytes = format!("block {height}|").into_bytes();
    bytes.resize(BLOCK_FILLER_BYTES, (height % 251) as u8);
    bytes
}

/// State key `index` written at `height`.
pub(crate) fn state_key(height: u64, index: u32) -> Vec<u8> {
    format!("state/{height:012}/{index:03}").into_bytes()
}

/// The value of state key `index` written at `height`.
pub(crate) fn state_value(height: u64, index: u32) -> Vec<u8> {
    format!(
        "balance of {height}/{index}: {}",
        height * 100 + u64::from(index)
    )
    .into_bytes()
}

/// Merkle node key `index` written at `height`.
pub(crate) fn node_key(height: u64, index: u32) -> Vec<u8> {
    let mut key = height.to_be_bytes().to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The bytes of Merkle node `index` written at `height`.
pub(crate) fn node_value(height: u64, index: u32) -> Vec<u8> {
    Domain::StateKey
        .hash_parts(&[b"node", &height.to_be_bytes(), &index.to_be_bytes()])
        .0
        .to_vec()
}

/// The fixture commit at `height`: [`TXS_PER_BLOCK`] transactions and
/// receipts, [`STATE_PER_BLOCK`] state keys and [`NODES_PER_BLOCK`] Merkle
/// nodes of its own, a deletion of the first state key and first node of the
/// block before, and history entries for [`shared_account`] (every
/// transaction) and [`account_at`] (the first).
pub(crate) fn commit_at(height: u64) -> BlockCommit {
    let tx_ids: Vec<Hash32> = (0..TXS_PER_BLOCK).map(|i| tx_id(height, i)).collect();
    let mut state: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..STATE_PER_BLOCK)
        .map(|i| (state_key(height, i), Some(state_value(height, i))))
        .collect();
    let mut tree_nodes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..NODES_PER_BLOCK)
        .map(|i| (node_key(height, i), Some(node_value(height, i))))
        .collect();
    if let Some(previous) = height.checked_sub(1) {
        state.push((state_key(previous, 0), None));
        tree_nodes.push((node_key(previous, 0), None));
    }
    let mut history: Vec<(Address, u32, Hash32)> = tx_ids
        .iter()
        .zip(0..)
        .map(|(id, index)| (shared_account(), index, *id))
        .collect();
    history.push((account_at(height), 0, tx_ids[0]));
    BlockCommit {
        height,
        block_hash: block_hash(height),
        state_root: state_root(height),
        block: block_bytes(height),
        transactions: tx_ids
            .iter()
            .map(|id| (*id, format!("tx {id}").into_bytes()))
            .collect(),
        receipts: tx_ids
            .iter()
            .map(|id| (*id, format!("receipt {id}").into_bytes()))
            .collect(),
        state,
        tree_nodes,
        history,
        ordered_batches: vec![Hash32([height as u8; 32])],
    }
}

/// Commits the fixture blocks `0..count`.
pub(crate) fn commit_fixture_chain(store: &dyn BlockStore, count: u64) {
    for height in 0..count {
        store
            .commit(&commit_at(height))
            .expect("commit fixture block");
    }
}

/// Collects all entries a `for_each_*` method visits.
pub(crate) fn collect(
    for_each: impl FnOnce(Visitor<'_>) -> yuchain_storage::Result<()>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut entries = Vec::new();
    for_each(&mut |key, value| {
        entries.push((key.to_vec(), value.to_vec()));
        Ok(())
    })
    .expect("iterate");
    entries
}

/// Pages through the whole history of `address`, `page` entries at a time.
pub(crate) fn full_history(
    store: &dyn BlockStore,
    address: &Address,
    page: usize,
) -> Vec<HistoryEntry> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let entries = store.history(address, before, page).expect("history");
        assert!(entries.len() <= page.min(HISTORY_PAGE_ENTRIES_MAX));
        let Some(last) = entries.last() else {
            return all;
        };
        before = Some(last.position());
        all.extend(entries);
    }
}

/// Asserts that `store` holds exactly the fixture chain `0..=head`: every
/// entry of every block up to the head (minus what later blocks deleted),
/// and nothing of block `head + 1`.
pub(crate) fn assert_fixture_chain(store: &dyn BlockStore, head: u64) {
    let stored_head = store.head().expect("head").expect("a head");
    assert_eq!(stored_head.height, head, "head height");
    assert_eq!(stored_head.block_hash, block_hash(head), "head hash");
    assert_eq!(stored_head.state_root, state_root(head), "head state root");
    for height in 0..=head {
        let commit = commit_at(height);
        assert_eq!(
            store.block(height).expect("block"),
            Some(commit.block),
            "block {height}"
        );
        assert_eq!(
            store
                .block_height(&commit.block_hash)
                .expect("block height"),
            Some(height),
            "hash index of block {height}"
        );
        for (id, bytes) in &commit.transactions {
            assert_eq!(
                store.transaction(id).expect("tx").as_ref(),
                Some(bytes),
                "tx at {height}"
            );
        }
        for (id, bytes) in &commit.receipts {
            assert_eq!(
                store.receipt(id).expect("receipt").as_ref(),
                Some(bytes),
                "receipt at {height}"
            );
        }
        for index in 0..STATE_PER_BLOCK {
            let deleted_by_next = index == 0 && height < head;
            let expected = (!deleted_by_next).then(|| state_value(height, index));
            assert_eq!(
                store.state(&state_key(height, index)).expect("state"),
                expected,
                "state {height}/{index}"
            );
            let expected = (!deleted_by_next).then(|| node_value(height, index));
            assert_eq!(
                store.tree_node(&node_key(height, index)).expect("node"),
                expected,
                "node {height}/{index}"
            );
        }
        let own = store
            .history(&account_at(height), None, 10)
            .expect("history");
        assert_eq!(
            own,
            [HistoryEntry {
                height,
                index: 0,
                tx_id: tx_id(height, 0)
            }],
            "history of account at {height}"
        );
    }
    assert_eq!(
        collect(|visit| store.for_each_state(visit)).len(),
        live_entries(head, STATE_PER_BLOCK)
    );
    assert_eq!(
        collect(|visit| store.for_each_tree_node(visit)).len(),
        live_entries(head, NODES_PER_BLOCK)
    );
    let expected_history: Vec<HistoryEntry> = (0..=head)
        .rev()
        .flat_map(|height| {
            (0..TXS_PER_BLOCK).rev().map(move |index| HistoryEntry {
                height,
                index,
                tx_id: tx_id(height, index),
            })
        })
        .collect();
    assert_eq!(
        full_history(store, &shared_account(), 7),
        expected_history,
        "shared history"
    );
    assert_nothing_of(store, head + 1);
}

/// The state keys (or nodes) alive after the fixture chain `0..=head`.
fn live_entries(head: u64, per_block: u32) -> usize {
    let blocks = usize::try_from(head + 1).expect("small chain");
    let deleted = usize::try_from(head).expect("small chain");
    blocks * per_block as usize - deleted
}

/// Asserts that nothing the fixture commit at `height` writes is visible,
/// and, if the head is just below it, that what it would delete is still
/// there.
pub(crate) fn assert_nothing_of(store: &dyn BlockStore, height: u64) {
    let commit = commit_at(height);
    assert_eq!(store.block(height).expect("block"), None, "block {height}");
    assert_eq!(
        store
            .block_height(&commit.block_hash)
            .expect("block height"),
        None,
        "hash of {height}"
    );
    for (id, _) in &commit.transactions {
        assert_eq!(store.transaction(id).expect("tx"), None, "tx at {height}");
        assert_eq!(
            store.receipt(id).expect("receipt"),
            None,
            "receipt at {height}"
        );
    }
    for index in 0..STATE_PER_BLOCK {
        assert_eq!(
            store.state(&state_key(height, index)).expect("state"),
            None,
            "state {height}/{index}"
        );
    }
    for index in 0..NODES_PER_BLOCK {
        assert_eq!(
            store.tree_node(&node_key(height, index)).expect("node"),
            None,
            "node {height}/{index}"
        );
    }
    let head = store.head().expect("head").map(|head| head.height);
    if let Some(previous) = height
        .checked_sub(1)
        .filter(|&previous| head == Some(previous))
    {
        assert!(
            store
                .state(&state_key(previous, 0))
                .expect("state")
                .is_some(),
            "deletion by {height} visible"
        );
        assert!(
            store
                .tree_node(&node_key(previous, 0))
                .expect("node")
                .is_some(),
            "deletion by {height} visible"
        );
    }
    assert_eq!(
        store
            .history(&account_at(height), None, 10)
            .expect("history"),
        [],
        "history at {height}"
    );
    let newest = store.history(&shared_account(), None, 1).expect("history");
    assert!(
        newest.iter().all(|entry| entry.height < height),
        "shared history reaches {height}"
    );
}
