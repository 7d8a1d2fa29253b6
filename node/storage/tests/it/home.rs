//! Node homes: created once, then only opened; a validator refuses a home
//! with a block database but no safety record.

use yuchain_storage::home::{ASSUME_NEVER_VOTED_FLAG, block_database_path, safety_record_path};
use yuchain_storage::{
    BlockStore, Error, RocksConfig, Role, SafetyStore, create_node_home, open_node_home,
};

use crate::fixtures::{assert_fixture_chain, commit_fixture_chain};

/// A validator home with blocks 0..=2 and a vote recorded, closed.
fn validator_home(home: &std::path::Path) {
    let created = create_node_home(home, &RocksConfig::default()).expect("create");
    commit_fixture_chain(&created.blocks, 3);
    created
        .safety
        .expect("a validator home has a safety record")
        .put_safety(b"last_vote", b"round 5")
        .expect("vote");
}

#[test]
fn a_created_home_reopens_with_its_blocks_and_votes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    validator_home(&home);
    let opened = open_node_home(&home, Role::Validator, &RocksConfig::default()).expect("open");
    assert_fixture_chain(&opened.blocks, 2);
    let safety = opened.safety.expect("safety");
    assert_eq!(
        safety.safety(b"last_vote").expect("get"),
        Some(b"round 5".to_vec())
    );
    assert_eq!(safety.path(), safety_record_path(&home));
}

#[test]
fn opening_a_missing_home_is_an_error_naming_the_path_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("typo");
    for role in [
        Role::Validator,
        Role::ValidatorAssumeNeverVoted,
        Role::Observer,
    ] {
        let result = open_node_home(&home, role, &RocksConfig::default());
        match result {
            Err(error @ Error::NotFound { .. }) => {
                let database = block_database_path(&home).display().to_string();
                assert!(error.to_string().contains(&database), "{error}");
            }
            other => panic!("{role:?}: expected NotFound, got {other:?}"),
        }
        assert!(!home.exists(), "{role:?} created {}", home.display());
    }
}

#[test]
fn creating_a_home_over_an_existing_one_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    validator_home(&home);
    let result = create_node_home(&home, &RocksConfig::default());
    assert!(
        matches!(&result, Err(Error::AlreadyExists { path, .. }) if *path == block_database_path(&home)),
        "{result:?}"
    );
    let opened = open_node_home(&home, Role::Validator, &RocksConfig::default()).expect("open");
    assert_fixture_chain(&opened.blocks, 2);
}

#[test]
fn a_validator_home_with_a_chain_but_no_safety_record_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    validator_home(&home);
    let safety_path = safety_record_path(&home);
    std::fs::remove_file(&safety_path).expect("lose the safety record");

    let result = open_node_home(&home, Role::Validator, &RocksConfig::default());
    let error = match result {
        Err(error @ Error::SafetyRecordMissing { .. }) => error,
        other => panic!("expected SafetyRecordMissing, got {other:?}"),
    };
    let message = error.to_string();
    // Names the problem, where, why it matters and both ways out.
    for needle in [
        safety_path.display().to_string().as_str(),
        "no consensus safety record",
        "head at height 2",
        "vote twice",
        "Restore",
        "backup",
        ASSUME_NEVER_VOTED_FLAG,
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert!(!safety_path.exists(), "the refusal created a record");

    // An observer never votes and opens the home without a record.
    let observer =
        open_node_home(&home, Role::Observer, &RocksConfig::default()).expect("observer");
    assert!(observer.safety.is_none());
    drop(observer);

    // The operator's explicit statement creates an empty record once; from
    // then on the home opens as a plain validator.
    let assumed = open_node_home(
        &home,
        Role::ValidatorAssumeNeverVoted,
        &RocksConfig::default(),
    )
    .expect("assume never voted");
    let safety = assumed.safety.expect("safety");
    assert_eq!(safety.safety(b"last_vote").expect("get"), None);
    // RocksDB allows one open handle per database.
    drop((assumed.blocks, safety));
    let opened = open_node_home(&home, Role::Validator, &RocksConfig::default()).expect("open");
    assert_fixture_chain(&opened.blocks, 2);
}

#[test]
fn assume_never_voted_keeps_an_existing_record_and_still_refuses_a_corrupt_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    validator_home(&home);
    let opened = open_node_home(
        &home,
        Role::ValidatorAssumeNeverVoted,
        &RocksConfig::default(),
    )
    .expect("open");
    let safety = opened.safety.expect("safety");
    assert_eq!(
        safety.safety(b"last_vote").expect("get"),
        Some(b"round 5".to_vec())
    );
    drop((opened.blocks, safety));
    std::fs::write(safety_record_path(&home), b"garbage").expect("damage");
    for role in [Role::Validator, Role::ValidatorAssumeNeverVoted] {
        let result = open_node_home(&home, role, &RocksConfig::default());
        assert!(
            matches!(result, Err(Error::SafetyRecordCorrupt { .. })),
            "{role:?}: {result:?}"
        );
    }
}

#[test]
fn a_home_that_lost_its_database_is_recreated_keeping_its_votes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    validator_home(&home);
    std::fs::remove_dir_all(block_database_path(&home)).expect("lose the database");
    let result = open_node_home(&home, Role::Validator, &RocksConfig::default());
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    let created = create_node_home(&home, &RocksConfig::default()).expect("recreate");
    assert_eq!(created.blocks.head().expect("head"), None);
    assert_eq!(
        created
            .safety
            .expect("safety")
            .safety(b"last_vote")
            .expect("get"),
        Some(b"round 5".to_vec())
    );
}
