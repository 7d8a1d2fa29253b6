//! One suite, run against both block stores: each case takes a fresh, empty
//! store as `&dyn BlockStore`, and [`store_suite!`] makes a `#[test]` of it per store
//! (`suite::mem::<case>` and `suite::rocks::<case>`), so the two can never
//! drift apart.

use yuchain_proto::{Address, Hash32};
use yuchain_storage::{
    BlockCommit, BlockStore, Error, HISTORY_PAGE_ENTRIES_MAX, HistoryEntry, MemStore, RocksStore,
};

use crate::fixtures::{
    assert_fixture_chain, assert_nothing_of, block_hash, collect, commit_at, commit_fixture_chain,
    full_history,
};

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod mem {
            $(
                #[test]
                fn $case() {
                    super::$case(&yuchain_storage::MemStore::new());
                }
            )*
        }

        mod rocks {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = yuchain_storage::RocksStore::create(dir.path()).expect("create");
                    super::$case(&store);
                }
            )*
        }
    };
}

store_suite!(
    empty_store_has_no_head_and_no_data,
    committed_blocks_read_back_every_kind,
    first_commit_must_be_genesis_at_height_zero,
    height_gap_is_rejected_and_writes_nothing,
    repeated_height_is_rejected_and_writes_nothing,
    duplicate_block_hash_is_rejected_and_writes_nothing,
    none_deletes_state_and_tree_nodes_and_last_update_wins,
    for_each_visits_in_bytewise_key_order_and_stops_on_error,
    history_pages_newest_first_across_heights,
    history_of_adjacent_addresses_never_mixes,
    history_limit_is_capped,
    head_follows_many_commits,
    concurrent_commits_of_one_height_let_exactly_one_win,
    ordered_batches_are_indexed_to_the_first_block_that_ordered_them,
);

/// Both stores behind the trait object, to check object safety at compile
/// time.
#[test]
fn both_stores_are_usable_as_trait_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores: Vec<Box<dyn BlockStore>> = vec![
        Box::new(MemStore::new()),
        Box::new(RocksStore::create(dir.path()).expect("create")),
    ];
    for store in &stores {
        commit_fixture_chain(store.as_ref(), 2);
        assert_fixture_chain(store.as_ref(), 1);
    }
}

fn empty_store_has_no_head_and_no_data(store: &dyn BlockStore) {
    assert_eq!(store.head().expect("head"), None);
    assert_eq!(store.block(0).expect("block"), None);
    assert_eq!(store.block_height(&block_hash(0)).expect("height"), None);
    assert_eq!(store.transaction(&Hash32::ZERO).expect("tx"), None);
    assert_eq!(store.receipt(&Hash32::ZERO).expect("receipt"), None);
    assert_eq!(store.state(b"any").expect("state"), None);
    assert_eq!(store.tree_node(b"any").expect("node"), None);
    assert!(collect(|visit| store.for_each_state(visit)).is_empty());
    assert!(collect(|visit| store.for_each_tree_node(visit)).is_empty());
    assert_eq!(
        store.history(&Address([0; 20]), None, 10).expect("history"),
        []
    );
    assert_nothing_of(store, 0);
}

fn committed_blocks_read_back_every_kind(store: &dyn BlockStore) {
    let genesis = commit_at(0);
    store.commit(&genesis).expect("commit genesis");
    assert_fixture_chain(store, 0);
    // Spot-check one value of each kind against the commit itself, not only
    // the fixture helpers.
    let (tx_id, tx) = &genesis.transactions[2];
    assert_eq!(store.transaction(tx_id).expect("tx").as_ref(), Some(tx));
    let (tx_id, receipt) = &genesis.receipts[3];
    assert_eq!(
        store.receipt(tx_id).expect("receipt").as_ref(),
        Some(receipt)
    );
    let (key, value) = &genesis.state[1];
    assert_eq!(store.state(key).expect("state").as_ref(), value.as_ref());
    let (key, value) = &genesis.tree_nodes[1];
    assert_eq!(store.tree_node(key).expect("node").as_ref(), value.as_ref());

    store.commit(&commit_at(1)).expect("commit 1");
    store.commit(&commit_at(2)).expect("commit 2");
    assert_fixture_chain(store, 2);
}

fn first_commit_must_be_genesis_at_height_zero(store: &dyn BlockStore) {
    let result = store.commit(&commit_at(1));
    assert!(
        matches!(
            result,
            Err(Error::HeightMismatch {
                expected: 0,
                got: 1
            })
        ),
        "got {result:?}"
    );
    assert_eq!(store.head().expect("head"), None);
    assert_nothing_of(store, 1);
    store.commit(&commit_at(0)).expect("genesis");
    assert_fixture_chain(store, 0);
}

fn height_gap_is_rejected_and_writes_nothing(store: &dyn BlockStore) {
    commit_fixture_chain(store, 2);
    let result = store.commit(&commit_at(3));
    assert!(
        matches!(
            result,
            Err(Error::HeightMismatch {
                expected: 2,
                got: 3
            })
        ),
        "got {result:?}"
    );
    assert_eq!(
        result.expect_err("rejected").to_string(),
        "commit at height 3 rejected: the next height is 2"
    );
    assert_fixture_chain(store, 1);
    assert_nothing_of(store, 3);
    store
        .commit(&commit_at(2))
        .expect("the right height still commits");
    assert_fixture_chain(store, 2);
}

fn repeated_height_is_rejected_and_writes_nothing(store: &dyn BlockStore) {
    commit_fixture_chain(store, 2);
    // A different block at the head's height, touching the same keys.
    let mut again = commit_at(1);
    again.block_hash = Hash32([0xEE; 32]);
    again.block = b"a conflicting block".to_vec();
    for (_, value) in &mut again.state {
        *value = Some(b"overwritten".to_vec());
    }
    for (_, receipt) in &mut again.receipts {
        *receipt = b"other receipt".to_vec();
    }
    let result = store.commit(&again);
    assert!(
        matches!(
            result,
            Err(Error::HeightMismatch {
                expected: 2,
                got: 1
            })
        ),
        "got {result:?}"
    );
    assert_eq!(store.block_height(&again.block_hash).expect("height"), None);
    assert_fixture_chain(store, 1);
}

fn duplicate_block_hash_is_rejected_and_writes_nothing(store: &dyn BlockStore) {
    commit_fixture_chain(store, 2);
    let mut reused = commit_at(2);
    reused.block_hash = block_hash(0);
    let result = store.commit(&reused);
    assert!(
        matches!(
            result,
            Err(Error::DuplicateBlockHash {
                height: 2,
                existing_height: 0,
                ..
            })
        ),
        "got {result:?}"
    );
    assert_fixture_chain(store, 1);
}

fn none_deletes_state_and_tree_nodes_and_last_update_wins(store: &dyn BlockStore) {
    let put = |key: &[u8], value: &[u8]| (key.to_vec(), Some(value.to_vec()));
    let delete = |key: &[u8]| (key.to_vec(), None);
    let mut first = BlockCommit {
        height: 0,
        block_hash: Hash32([1; 32]),
        ..BlockCommit::default()
    };
    first.state = vec![put(b"a", b"1"), put(b"b", b"2"), put(b"c", b"3")];
    first.tree_nodes = vec![put(b"n1", b"x"), put(b"n2", b"y")];
    store.commit(&first).expect("commit 0");

    let mut second = BlockCommit {
        height: 1,
        block_hash: Hash32([2; 32]),
        ..BlockCommit::default()
    };
    second.state = vec![
        delete(b"a"),
        delete(b"never-written"),
        put(b"d", b"4"),
        delete(b"d"),
        delete(b"c"),
        put(b"c", b"33"),
        put(b"b", b"22"),
        put(b"b", b"222"),
    ];
    second.tree_nodes = vec![delete(b"n1"), put(b"n3", b"z")];
    store.commit(&second).expect("commit 1");

    assert_eq!(store.state(b"a").expect("state"), None);
    assert_eq!(store.state(b"never-written").expect("state"), None);
    assert_eq!(store.state(b"d").expect("state"), None);
    assert_eq!(store.state(b"c").expect("state"), Some(b"33".to_vec()));
    assert_eq!(store.state(b"b").expect("state"), Some(b"222".to_vec()));
    assert_eq!(store.tree_node(b"n1").expect("node"), None);
    assert_eq!(store.tree_node(b"n2").expect("node"), Some(b"y".to_vec()));
    assert_eq!(
        collect(|visit| store.for_each_state(visit)),
        [
            (b"b".to_vec(), b"222".to_vec()),
            (b"c".to_vec(), b"33".to_vec())
        ]
    );
    assert_eq!(
        collect(|visit| store.for_each_tree_node(visit)),
        [
            (b"n2".to_vec(), b"y".to_vec()),
            (b"n3".to_vec(), b"z".to_vec())
        ]
    );
}

fn for_each_visits_in_bytewise_key_order_and_stops_on_error(store: &dyn BlockStore) {
    // Inserted out of order, with prefixes, an empty key and high bytes.
    let keys: Vec<Vec<u8>> = vec![
        vec![0xFF],
        b"ab".to_vec(),
        vec![],
        vec![0x00, 0x01],
        b"a".to_vec(),
        vec![0x00],
        vec![0x7F, 0xFF, 0xFF],
    ];
    let commit = BlockCommit {
        height: 0,
        block_hash: Hash32([1; 32]),
        state: keys
            .iter()
            .map(|k| (k.clone(), Some(k.repeat(2))))
            .collect(),
        tree_nodes: keys
            .iter()
            .map(|k| (k.clone(), Some(k.repeat(3))))
            .collect(),
        ..BlockCommit::default()
    };
    store.commit(&commit).expect("commit");
    let mut sorted = keys.clone();
    sorted.sort();
    let state = collect(|visit| store.for_each_state(visit));
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        sorted.iter().map(|k| (k.clone(), k.repeat(2))).collect();
    assert_eq!(state, expected);
    let nodes = collect(|visit| store.for_each_tree_node(visit));
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        sorted.iter().map(|k| (k.clone(), k.repeat(3))).collect();
    assert_eq!(nodes, expected);

    let mut visited = 0;
    let result = store.for_each_state(&mut |_, _| {
        visited += 1;
        if visited == 3 {
            return Err(Error::VisitorStopped {
                reason: "enough".into(),
            });
        }
        Ok(())
    });
    assert!(
        matches!(&result, Err(Error::VisitorStopped { reason }) if reason == "enough"),
        "got {result:?}"
    );
    assert_eq!(visited, 3, "the iteration went on after the error");
}

fn entry(height: u64, index: u32) -> HistoryEntry {
    HistoryEntry {
        height,
        index,
        tx_id: Hash32::from_slice(
            &[
                &height.to_be_bytes()[..],
                &index.to_be_bytes()[..],
                &[0u8; 20][..],
            ]
            .concat(),
        )
        .expect("32 bytes"),
    }
}

fn history_pages_newest_first_across_heights(store: &dyn BlockStore) {
    let account = Address([0x33; 20]);
    // Indices chosen so that byte order and numeric order would differ in a
    // little-endian or decimal encoding (2 < 256 < 300, height 9 < 10 < 256).
    let heights = [0u64, 1, 2, 9, 10, 256];
    let mut expected = Vec::new();
    for (next, &height) in heights.iter().enumerate() {
        // Fill the gaps between interesting heights with empty blocks.
        let from = store
            .head()
            .expect("head")
            .map_or(0, |head| head.height + 1);
        for filler in from..height {
            store.commit(&empty_block(filler)).expect("filler block");
        }
        let indices: &[u32] = if next % 2 == 0 {
            &[0, 2, 256, 300]
        } else {
            &[1]
        };
        let mut commit = empty_block(height);
        commit.history = indices
            .iter()
            .map(|&index| (account, index, entry(height, index).tx_id))
            .collect();
        store.commit(&commit).expect("commit");
        expected.extend(indices.iter().map(|&index| entry(height, index)));
    }
    expected.reverse();

    assert_eq!(
        store.history(&account, None, 1_000).expect("history"),
        expected
    );
    for page in [1, 2, 3, 5, 100] {
        assert_eq!(
            full_history(store, &account, page),
            expected,
            "pages of {page}"
        );
    }
    assert_eq!(store.history(&account, None, 0).expect("history"), []);
    // A cursor between stored positions returns what is strictly older.
    assert_eq!(
        store.history(&account, Some((2, 100)), 2).expect("history"),
        [entry(2, 2), entry(2, 0)]
    );
    assert_eq!(
        store.history(&account, Some((10, 0)), 1).expect("history"),
        [entry(9, 1)]
    );
    assert_eq!(
        store.history(&account, Some((0, 0)), 10).expect("history"),
        []
    );
    assert_eq!(
        store
            .history(&account, Some((u64::MAX, u32::MAX)), 1)
            .expect("history"),
        [entry(256, 1)]
    );
}

fn empty_block(height: u64) -> BlockCommit {
    BlockCommit {
        height,
        block_hash: block_hash(height),
        block: height.to_be_bytes().to_vec(),
        ..BlockCommit::default()
    }
}

fn history_of_adjacent_addresses_never_mixes(store: &dyn BlockStore) {
    let mut low = [0x10; 20];
    low[19] = 0x00;
    let mut middle = low;
    middle[19] = 0x01;
    let mut high = low;
    high[19] = 0x02;
    let edges = [Address([0x00; 20]), Address([0xFF; 20])];
    let accounts = [
        Address(low),
        Address(middle),
        Address(high),
        edges[0],
        edges[1],
    ];
    for height in 0..3 {
        let mut commit = empty_block(height);
        // The middle account only has history at height 1.
        commit.history = accounts
            .iter()
            .zip(0u32..)
            .filter(|(account, _)| height == 1 || account.0 != middle)
            .map(|(account, index)| (*account, index, entry(height, index).tx_id))
            .collect();
        store.commit(&commit).expect("commit");
    }
    for (account, index) in accounts.iter().zip(0u32..) {
        let heights: &[u64] = if account.0 == middle {
            &[1]
        } else {
            &[2, 1, 0]
        };
        let expected: Vec<HistoryEntry> =
            heights.iter().map(|&height| entry(height, index)).collect();
        assert_eq!(
            store.history(account, None, 10).expect("history"),
            expected,
            "{account:?}"
        );
        assert_eq!(
            full_history(store, account, 1),
            expected,
            "{account:?} one by one"
        );
    }
    let mut unknown = middle;
    unknown[18] = 0x11;
    assert_eq!(
        store.history(&Address(unknown), None, 10).expect("history"),
        []
    );
    assert_eq!(
        store
            .history(&Address(middle), Some((1, 1)), 10)
            .expect("history"),
        []
    );
}

fn history_limit_is_capped(store: &dyn BlockStore) {
    let account = Address([0x44; 20]);
    let entries = HISTORY_PAGE_ENTRIES_MAX as u32 + 25;
    let mut commit = empty_block(0);
    commit.history = (0..entries)
        .map(|index| (account, index, entry(0, index).tx_id))
        .collect();
    store.commit(&commit).expect("commit");
    let page = store.history(&account, None, usize::MAX).expect("history");
    assert_eq!(page.len(), HISTORY_PAGE_ENTRIES_MAX);
    assert_eq!(page[0], entry(0, entries - 1));
    let rest = store
        .history(
            &account,
            page.last().map(HistoryEntry::position),
            usize::MAX,
        )
        .expect("history");
    assert_eq!(rest.len(), 25);
    assert_eq!(rest.last(), Some(&entry(0, 0)));
}

fn head_follows_many_commits(store: &dyn BlockStore) {
    const BLOCKS: u64 = 150;
    for height in 0..BLOCKS {
        store.commit(&commit_at(height)).expect("commit");
        let head = store.head().expect("head").expect("some head");
        assert_eq!(head.height, height);
        assert_eq!(head.block_hash, block_hash(height));
    }
    assert_fixture_chain(store, BLOCKS - 1);
}

fn ordered_batches_are_indexed_to_the_first_block_that_ordered_them(store: &dyn BlockStore) {
    let first = Hash32([0xB1; 32]);
    let second = Hash32([0xB2; 32]);
    store.commit(&commit_at(0)).expect("genesis");
    store
        .commit(&BlockCommit {
            ordered_batches: vec![first],
            ..commit_at(1)
        })
        .expect("commit");
    store
        .commit(&BlockCommit {
            ordered_batches: vec![first, second],
            ..commit_at(2)
        })
        .expect("commit");
    assert_eq!(store.batch_height(&first).expect("read"), Some(1));
    assert_eq!(store.batch_height(&second).expect("read"), Some(2));
    assert_eq!(store.batch_height(&Hash32([0xB3; 32])).expect("read"), None);
}

fn concurrent_commits_of_one_height_let_exactly_one_win(store: &dyn BlockStore) {
    commit_fixture_chain(store, 1);
    let next = commit_at(1);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| store.commit(&next)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("thread"))
            .collect()
    });
    let wins = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(wins, 1, "results {results:?}");
    for result in &results {
        assert!(
            matches!(
                result,
                Ok(())
                    | Err(Error::HeightMismatch {
                        expected: 2,
                        got: 1
                    })
            ),
            "got {result:?}"
        );
    }
    assert_fixture_chain(store, 1);
}

/// MemStore's sync hook stands where RocksStore fsyncs: while a commit is
/// held there, readers get the previous head at once and none of the new
/// block; once it completes, all of it.
#[test]
fn mem_readers_get_the_previous_head_while_a_commit_syncs() {
    use std::sync::Mutex;
    use std::sync::mpsc;
    use std::time::Duration;

    let (entered, in_sync) = mpsc::channel::<u64>();
    let (release, gate) = mpsc::channel::<()>();
    let entered = Mutex::new(entered);
    let gate = Mutex::new(gate);
    let store = MemStore::with_sync_hook(Box::new(move |height| {
        entered.lock().expect("entered").send(height).expect("send");
        // A dropped sender (a failed test) lets the commit go.
        let _ = gate.lock().expect("gate").recv();
    }));
    let (release_genesis, release_next) = (release.clone(), release);
    release_genesis.send(()).expect("let genesis through");
    store.commit(&commit_at(0)).expect("genesis");
    drop(release_genesis);
    assert_eq!(in_sync.recv().expect("genesis synced"), 0);
    let store = &store;
    std::thread::scope(|scope| {
        let release = release_next;
        let committer = scope.spawn(move || store.commit(&commit_at(1)));
        assert_eq!(in_sync.recv().expect("commit reached its sync"), 1);
        let (answer, answered) = mpsc::channel();
        scope.spawn(move || {
            let head = store.head().expect("head").map(|head| head.height);
            answer.send(head).expect("send");
        });
        let head = answered
            .recv_timeout(Duration::from_secs(10))
            .expect("head() blocked behind a commit's sync");
        assert_eq!(head, Some(0));
        assert_nothing_of(store, 1);
        release.send(()).expect("release");
        committer.join().expect("thread").expect("commit");
    });
    assert_fixture_chain(store, 1);
}
