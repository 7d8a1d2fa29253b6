//! RocksStore after a clean close and after `kill -9`, and FileSafetyStore
//! after `kill -9`.
//!
//! The kill tests re-invoke this test binary as a child that runs only
//! [`child_commits_until_killed`] (or [`child_writes_safety_until_killed`]):
//! it commits fixture blocks (writes safety records) in a loop and prints
//! each height (round) after `commit` (`put_safety`) returns. The parent
//! reads a few reports, kills the child with SIGKILL (what `Child::kill`
//! sends on unix), reopens the store and checks that every reported write is
//! there, complete, and that nothing of a later one is half-visible.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use yuchain_storage::{BlockStore, Error, FileSafetyStore, RocksStore, SafetyStore};

use crate::fixtures::{assert_fixture_chain, commit_at, commit_fixture_chain};

/// Set (to the database directory) only in the block-writing child process.
const CHILD_DIR_ENV: &str = "YUCHAIN_STORAGE_CRASH_CHILD_DIR";
/// The libtest name of the block-writing child.
const CHILD_TEST: &str = "crash::child_commits_until_killed";
/// Set (to the safety record file) only in the safety-writing child process.
const SAFETY_CHILD_ENV: &str = "YUCHAIN_STORAGE_CRASH_SAFETY_CHILD_FILE";
/// The libtest name of the safety-writing child.
const SAFETY_CHILD_TEST: &str = "crash::child_writes_safety_until_killed";
/// The safety key the child writes, and the size of each value: several
/// pages, so a write that was not atomic would show as a torn record.
const SAFETY_KEY: &[u8] = b"safety_data";
const SAFETY_VALUE_BYTES: usize = 20_000;
/// The prefix of the child's report lines.
const COMMITTED: &str = "committed ";
/// A child that is never killed gives up after this, so a broken parent
/// cannot leave it running.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(30);

#[test]
fn reopen_after_clean_close_restores_exactly_the_last_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::create(dir.path()).expect("create");
        commit_fixture_chain(&store, 10);
    }
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_fixture_chain(&store, 9);
    // The reopened store knows its head: the old height is refused, the next
    // one accepted.
    let result = store.commit(&commit_at(9));
    assert!(
        matches!(
            result,
            Err(Error::HeightMismatch {
                expected: 10,
                got: 9
            })
        ),
        "got {result:?}"
    );
    store.commit(&commit_at(10)).expect("commit after reopen");
    assert_fixture_chain(&store, 10);
}

#[test]
fn kill_9_during_commits_loses_no_reported_block_and_shows_no_partial_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (reports to wait for, extra delay before the kill): from "right after
    // the first commit" to "somewhere in a later fsync". Every round
    // continues the chain the previous ones left, so recovery is also
    // followed by more commits.
    let rounds = [
        (1, Duration::ZERO),
        (2, Duration::from_micros(300)),
        (5, Duration::from_millis(1)),
        (3, Duration::from_millis(4)),
        (12, Duration::ZERO),
        (8, Duration::from_millis(9)),
    ];
    drop(RocksStore::create(dir.path()).expect("create"));
    let mut previous_head = None;
    for (round, (reports, delay)) in rounds.into_iter().enumerate() {
        let last_reported = kill_child(CHILD_TEST, CHILD_DIR_ENV, dir.path(), reports, delay);
        let store = RocksStore::open(dir.path()).expect("reopen after kill -9");
        let head = store.head().expect("head").expect("a head after commits");
        assert!(
            head.height >= last_reported,
            "round {round}: head {} is below the reported height {last_reported}",
            head.height
        );
        assert!(
            previous_head.is_none_or(|previous| head.height > previous),
            "round {round}: head {} did not pass the previous head {previous_head:?}",
            head.height
        );
        assert_fixture_chain(&store, head.height);
        eprintln!(
            "round {round}: killed after reported height {last_reported}, recovered head {}",
            head.height
        );
        previous_head = Some(head.height);
    }
}

#[test]
fn kill_9_during_safety_writes_never_leaves_a_torn_or_older_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("safety");
    drop(FileSafetyStore::create(&path).expect("create"));
    // Safety writes take two fdatasyncs (slot A, then slot B), so short
    // delays land inside them.
    let rounds = [
        (1, Duration::ZERO),
        (3, Duration::from_micros(200)),
        (4, Duration::from_millis(1)),
        (2, Duration::from_millis(3)),
        (10, Duration::ZERO),
        (6, Duration::from_micros(700)),
    ];
    let mut previous = None;
    for (round, (reports, delay)) in rounds.into_iter().enumerate() {
        let last_reported = kill_child(SAFETY_CHILD_TEST, SAFETY_CHILD_ENV, &path, reports, delay);
        let store = FileSafetyStore::open(&path).expect("reopen after kill -9: a whole record");
        let value = store
            .safety(SAFETY_KEY)
            .expect("read")
            .expect("a value after writes");
        let recovered = parse_safety_value(&value);
        assert!(
            recovered >= last_reported,
            "round {round}: record {recovered} is older than the reported {last_reported}"
        );
        assert!(
            previous.is_none_or(|previous| recovered > previous),
            "round {round}: record {recovered} did not pass the previous {previous:?}"
        );
        eprintln!("round {round}: killed after reported {last_reported}, recovered {recovered}");
        previous = Some(recovered);
    }
}

/// The child's value for `sequence`: the number, then filler derived from it,
/// so a value mixed from two writes is recognised.
fn safety_value(sequence: u64) -> Vec<u8> {
    let mut value = sequence.to_be_bytes().to_vec();
    value.resize(SAFETY_VALUE_BYTES, (sequence % 251) as u8);
    value
}

fn parse_safety_value(value: &[u8]) -> u64 {
    let sequence = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
    assert_eq!(
        value,
        safety_value(sequence),
        "a mixed value for {sequence}"
    );
    sequence
}

/// Runs the child test `test` with `env` set to `target`, waits for `reports`
/// reports, sleeps `delay`, kills it with SIGKILL and returns the last number
/// it reported.
fn kill_child(test: &str, env: &str, target: &Path, reports: usize, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, target)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut last_reported = None;
    let mut seen = 0;
    while seen < reports {
        let Some(line) = lines.next() else {
            let status = child.wait().expect("wait");
            panic!("child exited ({status}) after {seen} reports");
        };
        if let Some(height) = parse_report(&line.expect("read child")) {
            last_reported = Some(height);
            seen += 1;
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("kill child");
    // Heights the child printed between our last read and its death were
    // committed too: read the pipe to its end.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(height) = parse_report(&line) {
            last_reported = Some(height);
        }
    }
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "child was not killed by SIGKILL: {status}"
    );
    last_reported.expect("at least one report")
}

fn parse_report(line: &str) -> Option<u64> {
    line.strip_prefix(COMMITTED)
        .map(|height| height.trim().parse().expect("a height"))
}

/// The child: commits fixture blocks after the head until it is killed.
/// Without the environment variable (any normal test run) it does nothing.
#[test]
fn child_commits_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    // The parent created it: a child that finds none fails, and never
    // starts a new chain.
    let store = RocksStore::open(&dir).expect("child open");
    let start = store
        .head()
        .expect("head")
        .map_or(0, |head| head.height + 1);
    let deadline = Instant::now() + CHILD_LIFETIME_MAX;
    // Written to the process's stdout directly, past libtest's capture, and
    // flushed per line so the parent sees each height as soon as it is
    // durable.
    let mut stdout = std::io::stdout().lock();
    for height in start.. {
        assert!(Instant::now() < deadline, "child was not killed in time");
        store.commit(&commit_at(height)).expect("child commit");
        writeln!(stdout, "{COMMITTED}{height}").expect("report");
        stdout.flush().expect("flush report");
    }
}

/// The safety child: writes ever higher safety values until it is killed.
/// Without the environment variable (any normal test run) it does nothing.
#[test]
fn child_writes_safety_until_killed() {
    let Some(path) = std::env::var_os(SAFETY_CHILD_ENV) else {
        return;
    };
    let store = FileSafetyStore::open(&path).expect("child open");
    let start = store
        .safety(SAFETY_KEY)
        .expect("read")
        .map_or(0, |value| parse_safety_value(&value) + 1);
    let deadline = Instant::now() + CHILD_LIFETIME_MAX;
    let mut stdout = std::io::stdout().lock();
    for sequence in start.. {
        assert!(Instant::now() < deadline, "child was not killed in time");
        store
            .put_safety(SAFETY_KEY, &safety_value(sequence))
            .expect("child safety write");
        writeln!(stdout, "{COMMITTED}{sequence}").expect("report");
        stdout.flush().expect("flush report");
    }
}
