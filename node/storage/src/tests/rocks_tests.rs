//! Encodings and the consistency check of [`RocksStore::open`], which need
//! the raw database to break on purpose.

use super::*;

fn commit_at(height: u64) -> BlockCommit {
    BlockCommit {
        height,
        block_hash: Hash32([height as u8 + 1; 32]),
        state_root: Hash32([0xA0 + height as u8; 32]),
        block: format!("block {height}").into_bytes(),
        ..BlockCommit::default()
    }
}

/// A store at `dir` with blocks 0..=2 committed and then closed.
fn store_with_three_blocks(dir: &Path) {
    let store = RocksStore::create(dir).expect("create");
    for height in 0..3 {
        store.commit(&commit_at(height)).expect("commit");
    }
}

/// Opens the raw database at `dir`, lets `damage` change it, closes it, and
/// returns what reopening the store says.
fn reopen_after(dir: &Path, damage: impl FnOnce(&DB)) -> Result<RocksStore> {
    let db = open_db(dir, &RocksConfig::default(), OpenMode::Open).expect("open raw");
    damage(&db);
    drop(db);
    RocksStore::open(dir)
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("column family")
}

fn assert_corruption(result: Result<RocksStore>, needle: &str) {
    match result {
        Err(Error::Corruption { detail }) => {
            assert!(
                detail.contains(needle),
                "detail {detail:?} lacks {needle:?}"
            )
        }
        other => panic!("expected corruption mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn head_encoding_round_trips_and_rejects_wrong_lengths() {
    let head = Head {
        height: 0x0102_0304_0506_0708,
        block_hash: Hash32([3; 32]),
        state_root: Hash32([4; 32]),
    };
    let bytes = encode_head(&head);
    assert_eq!(&bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(decode_head(&bytes).expect("decode"), head);
    assert!(matches!(
        decode_head(&bytes[..71]),
        Err(Error::Corruption { .. })
    ));
}

#[test]
fn history_keys_sort_by_address_then_height_then_index() {
    let low = Address([1; 20]);
    let high = Address([2; 20]);
    let mut keys = [
        history_key(&high, 0, 0),
        history_key(&low, 256, 0),
        history_key(&low, 1, 7),
        history_key(&low, 1, 300),
        history_key(&low, 0, u32::MAX),
    ];
    keys.sort();
    let decoded: Vec<(u64, u32)> = keys
        .iter()
        .map(|key| {
            decode_history_entry(key, &[0; 32])
                .expect("decode")
                .position()
        })
        .collect();
    assert_eq!(decoded, [(0, u32::MAX), (1, 7), (1, 300), (256, 0), (0, 0)]);
    assert_eq!(&keys[4][..20], &high.0);
}

#[test]
fn open_of_a_consistent_store_restores_its_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let store = reopen_after(dir.path(), |_| {}).expect("reopen");
    let head = store.head().expect("head").expect("some head");
    assert_eq!(head.height, 2);
    assert_eq!(head.block_hash, commit_at(2).block_hash);
    assert_eq!(head.state_root, commit_at(2).state_root);
}

#[test]
fn open_reports_corruption_when_the_head_block_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.delete_cf(cf(db, CF_BLOCKS), 2u64.to_be_bytes())
            .expect("delete");
    });
    assert_corruption(result, "last stored block is Some(1)");
}

#[test]
fn open_reports_corruption_when_the_head_hash_is_not_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.delete_cf(cf(db, CF_BLOCK_HASHES), commit_at(2).block_hash.0)
            .expect("delete");
    });
    assert_corruption(result, "indexed at height None");
}

#[test]
fn open_reports_corruption_when_a_block_lies_above_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.put_cf(cf(db, CF_BLOCKS), 3u64.to_be_bytes(), b"stray")
            .expect("put");
    });
    assert_corruption(result, "last stored block is Some(3)");
}

#[test]
fn open_reports_corruption_when_blocks_exist_without_a_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.delete_cf(cf(db, CF_META), META_HEAD).expect("delete");
    });
    assert_corruption(result, "no head, but block 2 is stored");
}

#[test]
fn open_reports_corruption_for_a_truncated_head_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.put_cf(cf(db, CF_META), META_HEAD, [0; 10]).expect("put");
    });
    assert_corruption(result, "head record has 10 bytes");
}

#[test]
fn open_refuses_another_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.put_cf(cf(db, CF_META), META_SCHEMA_VERSION, 7u32.to_be_bytes())
            .expect("put");
    });
    assert!(
        matches!(
            result,
            Err(Error::SchemaVersion {
                found: 7,
                supported: SCHEMA_VERSION
            })
        ),
        "got {result:?}"
    );
}

#[test]
fn open_of_a_missing_database_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let result = RocksStore::open(&path);
    match &result {
        Err(error @ Error::NotFound { path: found, .. }) => {
            assert_eq!(found, &path);
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("never creates"), "{message}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!path.exists(), "open created {}", path.display());
    // An empty directory is not a database either.
    let result = RocksStore::open(dir.path());
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn create_over_an_existing_database_or_any_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = RocksStore::create(dir.path());
    assert!(
        matches!(&result, Err(Error::AlreadyExists { path, .. }) if path == dir.path()),
        "{result:?}"
    );
    // The existing database is untouched.
    let store = RocksStore::open(dir.path()).expect("open");
    assert_eq!(store.head().expect("head").map(|head| head.height), Some(2));
    drop(store);

    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("notes"), b"not a database").expect("write");
    let result = RocksStore::create(other.path());
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
}

#[test]
fn open_refuses_a_schema_1_database_with_a_safety_column_family() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    {
        let mut db = open_db(dir.path(), &RocksConfig::default(), OpenMode::Open).expect("raw");
        db.create_cf("safety", &Options::default())
            .expect("create cf");
    }
    assert_corruption(RocksStore::open(dir.path()), "column family \"safety\"");
}

#[test]
fn open_refuses_a_database_without_a_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let result = reopen_after(dir.path(), |db| {
        db.delete_cf(cf(db, CF_META), META_SCHEMA_VERSION)
            .expect("delete");
    });
    assert_corruption(result, "records no schema version");
}

/// The head lock is not held across the synced write: a commit is held
/// just before `write_opt` (where the fsync happens) while another thread
/// reads the head, which must answer at once with the previous head. With the
/// head locked for the whole commit, as before, the read would wait for the
/// commit and this test would time out.
#[test]
fn readers_get_the_previous_head_while_a_commit_is_syncing() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    store_with_three_blocks(dir.path());
    let (entered, in_write) = mpsc::channel::<u64>();
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let entered = Mutex::new(entered);
    let mut store = RocksStore::open(dir.path()).expect("open");
    store.before_write = Some(Box::new(move |height| {
        entered.lock().expect("entered").send(height).expect("send");
        gate.lock().expect("gate").recv().expect("released");
    }));
    let store = &store;
    std::thread::scope(|scope| {
        // Owned by this closure, so a failed assertion drops it, which lets
        // the held commit go and the test fail instead of hanging.
        let release = release;
        let committer = scope.spawn(move || store.commit(&commit_at(3)));
        assert_eq!(in_write.recv().expect("commit reached its write"), 3);
        let (answer, answered) = mpsc::channel();
        scope.spawn(move || answer.send(store.head().expect("head")).expect("send"));
        let head = answered
            .recv_timeout(Duration::from_secs(10))
            .expect("head() blocked behind a commit's write");
        assert_eq!(head.map(|head| head.height), Some(2));
        release.send(()).expect("release");
        committer.join().expect("thread").expect("commit");
    });
    assert_eq!(store.head().expect("head").map(|head| head.height), Some(3));
}

#[test]
fn batch_records_are_kept_across_a_reopen_until_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = RocksStore::create(&path).expect("create");
        store.put_batch(&Hash32([1; 32]), b"one").expect("put");
        store.put_batch(&Hash32([2; 32]), b"two").expect("put");
        store.put_batch(&Hash32([3; 32]), b"three").expect("put");
        store.delete_batches(&[Hash32([2; 32])]).expect("delete");
    }
    let store = RocksStore::open(&path).expect("reopen");
    assert_eq!(
        store.batch(&Hash32([1; 32])).expect("get"),
        Some(b"one".to_vec())
    );
    assert_eq!(store.batch(&Hash32([2; 32])).expect("get"), None);
    let mut seen = Vec::new();
    store
        .for_each_batch(&mut |key, value| {
            seen.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .expect("visit");
    assert_eq!(
        seen,
        vec![
            (vec![1; 32], b"one".to_vec()),
            (vec![3; 32], b"three".to_vec())
        ]
    );
    // Batch records are not blocks: the head and the chain are untouched.
    assert_eq!(store.head().expect("head"), None);
}
