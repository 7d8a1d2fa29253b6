//! RocksStore after a clean close and after `kill -9`.
//!
//! The kill test re-invokes this test binary as a child that runs only
//! [`child_commits_until_killed`]: it commits fixture blocks in a loop and
//! prints each height after `commit` returns. The parent reads a few heights,
//! kills the child with SIGKILL (what `Child::kill` sends on unix), reopens
//! the database and checks that every reported block is there, complete, and
//! that nothing of the block after the head is visible.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use yuchain_storage::{BlockStore, Error, RocksStore, SafetyStore};

use crate::fixtures::{assert_fixture_chain, commit_at, commit_fixture_chain};

/// Set (to the database directory) only in the child process.
const CHILD_DIR_ENV: &str = "YUCHAIN_STORAGE_CRASH_CHILD_DIR";
/// The libtest name of the child-mode test.
const CHILD_TEST: &str = "crash::child_commits_until_killed";
/// The prefix of the child's report lines.
const COMMITTED: &str = "committed ";
/// A child that is never killed gives up after this, so a broken parent
/// cannot leave it running.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(30);

#[test]
fn reopen_after_clean_close_restores_exactly_the_last_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path()).expect("open");
        commit_fixture_chain(&store, 10);
        store.put_safety(b"last_vote", b"height 9").expect("safety");
    }
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_fixture_chain(&store, 9);
    assert_eq!(
        store.safety(b"last_vote").expect("safety"),
        Some(b"height 9".to_vec())
    );
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
    let mut previous_head = None;
    for (round, (reports, delay)) in rounds.into_iter().enumerate() {
        let last_reported = kill_child_during_commits(dir.path(), reports, delay);
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

/// Runs the child on `dir`, waits for `reports` committed heights, sleeps
/// `delay`, kills it with SIGKILL and returns the last height it reported.
fn kill_child_during_commits(dir: &Path, reports: usize, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
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
