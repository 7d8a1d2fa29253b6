//! The safety stores: one suite for [`MemSafetyStore`] and
//! [`FileSafetyStore`] (`safety::mem::<case>`, `safety::file::<case>`), then
//! what only the file store has: reopening, and damaged or missing files,
//! which are errors and never an empty record.

use std::path::Path;

use yuchain_storage::safety::{
    SAFETY_ENTRIES_MAX, SAFETY_KEY_BYTES_MAX, SAFETY_RECORD_BYTES_MAX, SLOT_BYTES_MIN,
};
use yuchain_storage::{Error, FileSafetyStore, MemSafetyStore, SafetyStore};

macro_rules! safety_suite {
    ($($case:ident),* $(,)?) => {
        mod mem {
            $(
                #[test]
                fn $case() {
                    super::$case(&yuchain_storage::MemSafetyStore::new());
                }
            )*
        }

        mod file {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = yuchain_storage::FileSafetyStore::create(dir.path().join("safety"))
                        .expect("create");
                    super::$case(&store);
                }
            )*
        }
    };
}

safety_suite!(
    a_new_store_is_empty,
    entries_are_stored_overwritten_and_kept_apart,
    writes_past_a_bound_are_refused_and_change_nothing,
    several_changes_are_one_write_and_removals_remove,
);

#[test]
fn both_safety_stores_are_usable_as_trait_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores: Vec<Box<dyn SafetyStore>> = vec![
        Box::new(MemSafetyStore::new()),
        Box::new(FileSafetyStore::create(dir.path().join("safety")).expect("create")),
    ];
    for store in &stores {
        entries_are_stored_overwritten_and_kept_apart(store.as_ref());
    }
}

fn several_changes_are_one_write_and_removals_remove(store: &dyn SafetyStore) {
    store
        .write_safety(&[
            (b"safety".to_vec(), Some(b"v1".to_vec())),
            (b"block/a".to_vec(), Some(b"A".to_vec())),
            (b"block/b".to_vec(), Some(b"B".to_vec())),
        ])
        .expect("write");
    assert_eq!(
        store.safety_keys().expect("keys"),
        vec![b"block/a".to_vec(), b"block/b".to_vec(), b"safety".to_vec()]
    );
    store
        .write_safety(&[
            (b"block/a".to_vec(), None),
            (b"safety".to_vec(), Some(b"v2".to_vec())),
            (b"missing".to_vec(), None),
        ])
        .expect("write");
    assert_eq!(store.safety(b"block/a").expect("get"), None);
    assert_eq!(store.safety(b"safety").expect("get"), Some(b"v2".to_vec()));
    // A write past a bound changes none of its keys.
    let too_long = vec![b'k'; SAFETY_KEY_BYTES_MAX + 1];
    assert!(
        store
            .write_safety(&[(b"block/b".to_vec(), None), (too_long, Some(b"x".to_vec())),])
            .is_err()
    );
    assert_eq!(store.safety(b"block/b").expect("get"), Some(b"B".to_vec()));
}

fn a_new_store_is_empty(store: &dyn SafetyStore) {
    assert_eq!(store.safety(b"last_vote").expect("get"), None);
    assert_eq!(store.safety(b"").expect("get"), None);
}

fn entries_are_stored_overwritten_and_kept_apart(store: &dyn SafetyStore) {
    store.put_safety(b"last_vote", b"round 1").expect("put");
    store.put_safety(b"locked", b"block a").expect("put");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"round 1".to_vec())
    );
    store
        .put_safety(b"last_vote", b"round 2")
        .expect("overwrite");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"round 2".to_vec())
    );
    assert_eq!(
        store.safety(b"locked").expect("get"),
        Some(b"block a".to_vec())
    );
    assert_eq!(store.safety(b"other").expect("get"), None);
    // The empty key and the empty value are ordinary.
    store.put_safety(b"", b"").expect("put empty");
    assert_eq!(store.safety(b"").expect("get"), Some(vec![]));
}

fn writes_past_a_bound_are_refused_and_change_nothing(store: &dyn SafetyStore) {
    store.put_safety(b"last_vote", b"round 1").expect("put");
    let long_key = vec![1; SAFETY_KEY_BYTES_MAX + 1];
    let result = store.put_safety(&long_key, b"x");
    assert!(
        matches!(
            result,
            Err(Error::SafetyLimit {
                what: "key length in bytes",
                ..
            })
        ),
        "{result:?}"
    );
    let result = store.put_safety(b"last_vote", &vec![0; SAFETY_RECORD_BYTES_MAX]);
    assert!(
        matches!(
            result,
            Err(Error::SafetyLimit {
                what: "record size in bytes",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"round 1".to_vec())
    );
    let fill: Vec<(Vec<u8>, Option<Vec<u8>>)> = (1..SAFETY_ENTRIES_MAX)
        .map(|index| (format!("key {index}").into_bytes(), Some(b"v".to_vec())))
        .collect();
    store.write_safety(&fill).expect("within the entry bound");
    let result = store.put_safety(b"one too many", b"v");
    assert!(
        matches!(
            result,
            Err(Error::SafetyLimit {
                what: "entries",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(store.safety(b"one too many").expect("get"), None);
    // Overwriting an existing key adds no entry, so it is still allowed.
    store
        .put_safety(b"last_vote", b"round 2")
        .expect("overwrite");
}

#[test]
fn a_reopened_file_store_has_every_entry_of_the_last_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    {
        let store = FileSafetyStore::create(&path).expect("create");
        store.put_safety(b"last_vote", b"round 1").expect("put");
        store.put_safety(b"locked", b"block a").expect("put");
        store.put_safety(b"last_vote", b"round 2").expect("put");
    }
    let store = FileSafetyStore::open(&path).expect("open");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"round 2".to_vec())
    );
    assert_eq!(
        store.safety(b"locked").expect("get"),
        Some(b"block a".to_vec())
    );
    // No temporary file is left behind after a completed write.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["safety", "safety.lock"]);
}

#[test]
fn opening_a_missing_safety_record_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    let result = FileSafetyStore::open(&path);
    assert!(
        matches!(&result, Err(Error::NotFound { what: "safety record", path: found }) if *found == path),
        "{result:?}"
    );
    assert!(!path.exists());
}

#[test]
fn creating_over_an_existing_safety_record_is_refused_and_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    FileSafetyStore::create(&path)
        .expect("create")
        .put_safety(b"last_vote", b"round 9")
        .expect("put");
    let result = FileSafetyStore::create(&path);
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
    let store = FileSafetyStore::open(&path).expect("open");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"round 9".to_vec())
    );
}

/// A record file with one entry, and its bytes.
fn record_file(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("safety");
    FileSafetyStore::create(&path)
        .expect("create")
        .put_safety(b"last_vote", b"epoch 1 round 42")
        .expect("put");
    let bytes = std::fs::read(&path).expect("read");
    (path, bytes)
}

fn assert_corrupt(path: &Path, needle: &str) {
    match FileSafetyStore::open(path) {
        Err(error @ Error::SafetyRecordCorrupt { .. }) => {
            let message = error.to_string();
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            assert!(message.contains("not treated as absent"), "{message}");
            assert!(message.contains("restore"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[test]
fn a_truncated_safety_record_is_reported_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = record_file(dir.path());
    std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
    assert_corrupt(&path, "not two slots");
    std::fs::write(&path, &bytes[..20]).expect("truncate");
    assert_corrupt(&path, "not two slots");
    // Cut to its first half: slot A alone is not two slots.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    assert_corrupt(&path, "not two slots");
}

#[test]
fn an_empty_safety_file_is_reported_corrupt_not_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = record_file(dir.path());
    std::fs::write(&path, b"").expect("empty");
    assert_corrupt(&path, "0 bytes");
}

#[test]
fn a_flipped_bit_in_one_slot_is_outvoted_by_its_mirror_and_in_both_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = record_file(dir.path());
    let slot = bytes.len() / 2;
    for damaged_slot in [0, slot] {
        let mut damaged = bytes.clone();
        damaged[damaged_slot + 30] ^= 0x10;
        std::fs::write(&path, &damaged).expect("damage");
        let store = FileSafetyStore::open(&path).expect("one slot damaged");
        assert_eq!(
            store.safety(b"last_vote").expect("get"),
            Some(b"epoch 1 round 42".to_vec())
        );
        let damage = store.damaged_slot().expect("the damage is reported");
        let (bad, good) = if damaged_slot == 0 {
            ("A", "B")
        } else {
            ("B", "A")
        };
        assert!(
            damage.contains(&format!("slot {bad} was unreadable")),
            "{damage}"
        );
        assert!(
            damage.contains(&format!("the record is slot {good}'s")),
            "{damage}"
        );
        // The next write repairs it.
        store
            .put_safety(b"last_vote", b"epoch 1 round 43")
            .expect("put");
        drop(store);
        let store = FileSafetyStore::open(&path).expect("reopen");
        assert_eq!(store.damaged_slot(), None);
        assert_eq!(
            store.safety(b"last_vote").expect("get"),
            Some(b"epoch 1 round 43".to_vec())
        );
    }
    let mut damaged = bytes.clone();
    damaged[30] ^= 0x10;
    damaged[slot + 30] ^= 0x10;
    std::fs::write(&path, &damaged).expect("damage");
    assert_corrupt(&path, "checksum mismatch");
    assert_corrupt(&path, "both slots are unreadable");
}

#[test]
fn a_write_torn_in_slot_a_falls_back_to_slot_b() {
    // What a crash in the middle of writing slot A leaves: A half new, half
    // old; B the last record whose write returned.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = record_file(dir.path());
    let mut torn = bytes.clone();
    torn[..16].copy_from_slice(b"YCSAFE\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff");
    torn[40..60].fill(0xEE);
    std::fs::write(&path, &torn).expect("tear");
    let store = FileSafetyStore::open(&path).expect("open");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"epoch 1 round 42".to_vec())
    );
    store
        .put_safety(b"last_vote", b"epoch 1 round 43")
        .expect("put");
    drop(store);
    let store = FileSafetyStore::open(&path).expect("reopen");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"epoch 1 round 43".to_vec())
    );
}

#[test]
fn writes_rewrite_the_file_in_place_and_a_large_record_grows_it() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    let store = FileSafetyStore::create(&path).expect("create");
    let made = std::fs::metadata(&path).expect("stat");
    assert_eq!(made.len(), 2 * SLOT_BYTES_MIN as u64);
    for round in 0..5u8 {
        store.put_safety(b"last_vote", &[round; 100]).expect("put");
    }
    // Same file, same size: no rename, nothing allocated, so the sync has
    // no metadata to commit.
    let written = std::fs::metadata(&path).expect("stat");
    assert_eq!((written.ino(), written.len()), (made.ino(), made.len()));
    // A record larger than a slot: a new file of larger slots, once.
    let big = vec![7; SLOT_BYTES_MIN + 1];
    store.put_safety(b"block/x", &big).expect("put big");
    let grown = std::fs::metadata(&path).expect("stat");
    assert_eq!(grown.len(), 2 * 2 * SLOT_BYTES_MIN as u64);
    store.put_safety(b"last_vote", b"after").expect("put");
    assert_eq!(std::fs::metadata(&path).expect("stat").ino(), grown.ino());
    drop(store);
    let store = FileSafetyStore::open(&path).expect("reopen");
    assert_eq!(store.safety(b"block/x").expect("get"), Some(big));
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"after".to_vec())
    );
}

#[test]
fn a_foreign_or_oversized_file_is_reported_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = record_file(dir.path());
    std::fs::write(&path, [0x42; 100]).expect("overwrite");
    assert_corrupt(&path, "not two slots");
    std::fs::write(&path, vec![0x42; 2 * SLOT_BYTES_MIN]).expect("overwrite");
    assert_corrupt(&path, "wrong magic");
    std::fs::write(&path, vec![0; 2 * SAFETY_RECORD_BYTES_MAX + 1]).expect("overwrite");
    assert_corrupt(&path, "larger than the maximum");
}

#[test]
fn a_leftover_temporary_file_does_not_affect_the_record() {
    // What a crash between writing the temporary file and renaming it
    // leaves: the old record stands, and the next write replaces both.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = record_file(dir.path());
    std::fs::write(dir.path().join("safety.tmp"), b"half a rec").expect("tmp");
    let store = FileSafetyStore::open(&path).expect("open");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"epoch 1 round 42".to_vec())
    );
    store
        .put_safety(b"last_vote", b"epoch 1 round 43")
        .expect("put");
    drop(store);
    let store = FileSafetyStore::open(&path).expect("reopen");
    assert_eq!(
        store.safety(b"last_vote").expect("get"),
        Some(b"epoch 1 round 43".to_vec())
    );
}

#[test]
fn a_safety_record_open_elsewhere_is_refused_until_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    let first = FileSafetyStore::create(&path).expect("create");
    for attempt in [FileSafetyStore::open(&path), FileSafetyStore::create(&path)] {
        match attempt {
            Err(error @ Error::SafetyRecordInUse { .. }) => {
                assert!(error.to_string().contains("in use"), "{error}");
            }
            other => panic!("expected SafetyRecordInUse, got {other:?}"),
        }
    }
    first.put_safety(b"last_vote", b"round 3").expect("put");
    drop(first);
    let second = FileSafetyStore::open(&path).expect("open after close");
    assert_eq!(
        second.safety(b"last_vote").expect("get"),
        Some(b"round 3".to_vec())
    );
}
