//! From what the ledger applied to what the store commits, and back.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use anyhow::{Context as _, Result, anyhow, bail};
use prost::Message as _;
use yuchain_ledger::ledger::consumes_sequence;
use yuchain_ledger::{AppliedBlock, Genesis, Ledger};
use yuchain_proto::pb;
use yuchain_storage::{BlockCommit, BlockStore};

/// The store's record of a block the ledger applied: the block with every
/// receipt, the executed transactions' locations and receipts by id, the
/// state changes and the account histories. Transactions that had no effect
/// (bad sequence, expired, …) keep their receipt in the block record only, so
/// a replayed transaction can never overwrite the receipt of its first,
/// executed inclusion.
pub fn block_commit(block: Option<&pb::Block>, applied: &AppliedBlock) -> BlockCommit {
    let record = pb::BlockRecord {
        block: block.cloned(),
        receipts: applied.receipts.clone(),
    };
    block_commit_with(record.encode_to_vec(), applied)
}

/// Like [`block_commit`], with the block's record already encoded (the node
/// stores a [`pb::CommittedBlockRecord`]: the ledger block with its
/// receipts, the consensus block with its finality certificate, and its
/// batches).
pub fn block_commit_with(record: Vec<u8>, applied: &AppliedBlock) -> BlockCommit {
    into_block_commit(record, applied.clone())
}

/// Like [`block_commit_with`], taking what the ledger applied instead of
/// copying its state changes and history (the executor's path).
pub fn into_block_commit(record: Vec<u8>, applied: AppliedBlock) -> BlockCommit {
    let mut transactions = Vec::with_capacity(applied.receipts.len());
    let mut receipts = Vec::with_capacity(applied.receipts.len());
    for receipt in &applied.receipts {
        let code = pb::ResultCode::try_from(receipt.code).unwrap_or(pb::ResultCode::Unspecified);
        if !consumes_sequence(code) {
            continue;
        }
        let Some(id) = yuchain_proto::Hash32::from_slice(&receipt.tx_id) else {
            continue;
        };
        let location = pb::TxLocation {
            height: receipt.height,
            index: receipt.index,
        };
        transactions.push((id, location.encode_to_vec()));
        receipts.push((id, receipt.encode_to_vec()));
    }
    BlockCommit {
        height: applied.height,
        block_hash: applied.block_hash,
        state_root: applied.state_root,
        block: record,
        transactions,
        receipts,
        state: applied.state_changes,
        tree_nodes: applied.tree_diff.nodes,
        history: applied.history,
        ordered_batches: Vec::new(),
    }
}

/// Rebuilds the ledger from a store: every state entry, checked against the
/// head's state root.
pub fn load_ledger(store: &dyn BlockStore, genesis: &Genesis) -> Result<Ledger> {
    let Some(head) = store.head().context("reading the head")? else {
        bail!("the store is empty: it has no genesis");
    };
    let mut state = Vec::new();
    store
        .for_each_state(&mut |key, value| {
            state.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .context("reading the state")?;
    let ledger = Ledger::load(genesis, state, head.state_root).context("rebuilding the ledger")?;
    if ledger.height() != head.height || ledger.last_block_hash() != head.block_hash {
        bail!(
            "stored state is at height {} ({}), the head is at {} ({})",
            ledger.height(),
            ledger.last_block_hash(),
            head.height,
            head.block_hash
        );
    }
    Ok(ledger)
}

/// The most block commits that wait for the writer thread, besides the one
/// it is writing: execution runs at most this many blocks ahead of the disk
/// (plus the block being written), and `submit` waits beyond that.
pub const COMMITS_IN_FLIGHT_MAX: usize = 2;

/// What a [`Committer`] does with a writer error nobody collected when it is
/// dropped: [`Drop`] cannot return it.
pub type ErrorReport = Box<dyn Fn(&anyhow::Error) + Send + Sync>;

/// Called on the writer thread after each block is durable, with its
/// height (the node answers waiting clients from it).
pub type DurableHook = Box<dyn Fn(u64) + Send + Sync>;

/// Writes block commits on a thread of its own, so that one block's synced
/// write overlaps the next block's execution instead of following it.
///
/// Commits are written in the order submitted, each in its own synced
/// `WriteBatch`. A block is durable once [`Committer::durable_height`]
/// reaches it, or once [`Committer::wait_durable`] for it returns `Ok`;
/// nothing that depends on its durability (answering a client,
/// acknowledging a payment) may happen before. The first failed write stops
/// the writer: nothing submitted after it is written, and the error is
/// returned by `wait_durable`, the next [`Committer::submit`],
/// [`Committer::close`] or [`Committer::finish`], and reported on drop if
/// none of the last three collected it.
pub struct Committer {
    sender: Option<SyncSender<BlockCommit>>,
    writer: Option<JoinHandle<Result<()>>>,
    shared: Arc<Shared>,
    /// The last height queued.
    submitted: Option<u64>,
    report: ErrorReport,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("running", &self.writer.is_some())
            .field("submitted", &self.submitted)
            .field("progress", &*self.shared.lock())
            .finish_non_exhaustive()
    }
}

/// The writer's progress, shared with the committer's waiters.
#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Progress {
    /// One more than the last height written, 0 before the first.
    durable_next: u64,
    /// The failed write's error, with its causes.
    failure: Option<String>,
    /// The writer thread has ended (after a failure, a panic, or the end of
    /// the queue).
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // Every update is a single field assignment, so the progress behind
        // a poisoned lock is consistent.
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

/// Marks the writer stopped when its thread ends, by return or by panic, so
/// no [`Committer::wait_durable`] waits forever.
struct StopOnExit(Arc<Shared>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.update(|state| state.stopped = true);
    }
}

fn report_to_stderr(error: &anyhow::Error) {
    // The demo has no logger; the running node reports to its own.
    eprintln!("error: the block writer failed and nobody collected the error: {error:#}");
}

impl Committer {
    /// Starts the writer thread over `store`; an error nobody collected is
    /// printed to stderr on drop.
    pub fn start(store: Arc<dyn BlockStore>) -> Result<Committer> {
        Committer::start_with_report(store, Box::new(report_to_stderr))
    }

    /// Starts the writer thread over `store`; `report` is called on drop
    /// with the writer's error if nothing else returned it.
    pub fn start_with_report(store: Arc<dyn BlockStore>, report: ErrorReport) -> Result<Committer> {
        Committer::start_with_hooks(store, report, Box::new(|_| {}))
    }

    /// Starts the writer thread over `store`, with `report` as in
    /// [`Committer::start_with_report`] and `durable` called after each
    /// block's synced write.
    pub fn start_with_hooks(
        store: Arc<dyn BlockStore>,
        report: ErrorReport,
        durable: DurableHook,
    ) -> Result<Committer> {
        let (sender, receiver) = sync_channel::<BlockCommit>(COMMITS_IN_FLIGHT_MAX);
        let shared = Arc::new(Shared::default());
        let progress = Arc::clone(&shared);
        let writer = thread::Builder::new()
            .name("block-writer".into())
            .spawn(move || -> Result<()> {
                let _stop = StopOnExit(Arc::clone(&progress));
                let result = (|| -> Result<()> {
                    for commit in receiver {
                        store
                            .commit(&commit)
                            .with_context(|| format!("writing block {}", commit.height))?;
                        let next = commit.height.checked_add(1).context("height overflow")?;
                        progress.update(|state| state.durable_next = next);
                        durable(commit.height);
                    }
                    Ok(())
                })();
                if let Err(error) = &result {
                    let failure = format!("{error:#}");
                    progress.update(|state| state.failure = Some(failure));
                }
                result
            })
            .context("starting the block writer thread")?;
        Ok(Committer {
            sender: Some(sender),
            writer: Some(writer),
            shared,
            submitted: None,
            report,
        })
    }

    /// Queues `commit` behind those already submitted; waits while
    /// [`COMMITS_IN_FLIGHT_MAX`] are queued. Fails, queuing nothing, once an
    /// earlier write has failed (with that write's error).
    pub fn submit(&mut self, commit: BlockCommit) -> Result<()> {
        let Some(sender) = &self.sender else {
            bail!("the block writer has already stopped");
        };
        let height = commit.height;
        if sender.send(commit).is_err() {
            // The writer hung up: it stopped at a failed write.
            self.sender = None;
            return Err(match self.join() {
                Err(error) => error,
                Ok(()) => anyhow!("the block writer stopped"),
            });
        }
        self.submitted = Some(height);
        Ok(())
    }

    /// The highest height this committer has written and synced so far
    /// (`None` before its first write).
    pub fn durable_height(&self) -> Option<u64> {
        self.shared.lock().durable_next.checked_sub(1)
    }

    /// Blocks until block `height` is written and synced. Fails at once for
    /// a height above the last one submitted (it would never come), and as
    /// soon as the writer fails or stops first, with the writer's error.
    pub fn wait_durable(&self, height: u64) -> Result<()> {
        if self.submitted.is_none_or(|submitted| height > submitted) {
            bail!(
                "block {height} was never submitted to the block writer (last submitted: {:?})",
                self.submitted
            );
        }
        let mut progress = self.shared.lock();
        loop {
            if progress.durable_next > height {
                return Ok(());
            }
            if let Some(failure) = &progress.failure {
                bail!("block {height} is not durable: the block writer failed: {failure}");
            }
            if progress.stopped {
                bail!("block {height} is not durable: the block writer stopped");
            }
            progress = self
                .shared
                .changed
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until every submitted commit is written; returns the first
    /// write's error, if any.
    pub fn close(self) -> Result<()> {
        self.finish().map(|_| ())
    }

    /// Waits until every submitted commit is written; returns the last
    /// height written, or the first write's error.
    pub fn finish(mut self) -> Result<Option<u64>> {
        self.sender = None;
        self.join()?;
        Ok(self.durable_height())
    }

    fn join(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(writer) => match writer.join() {
                Ok(result) => result,
                Err(_) => bail!("the block writer thread panicked"),
            },
            None => bail!("the block writer has already stopped"),
        }
    }
}

impl Drop for Committer {
    /// Lets the writer finish what was submitted (dropping a committer never
    /// abandons a queued block half-way; each write is atomic anyway), then
    /// reports its error if `submit`, `close` or `finish` did not return it.
    fn drop(&mut self) {
        self.sender = None;
        if self.writer.is_some()
            && let Err(error) = self.join()
        {
            (self.report)(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use yuchain_proto::Hash32;
    use yuchain_storage::MemStore;

    use super::*;

    /// A store whose commits wait in their "sync" until the test lets each
    /// one through, so a test decides when a write becomes durable.
    fn gated_store() -> (Arc<MemStore>, mpsc::SyncSender<()>) {
        let (open, gate) = mpsc::sync_channel::<()>(0);
        let gate = Mutex::new(gate);
        let store = MemStore::with_sync_hook(Box::new(move |_height| {
            // A closed gate (the test ended) lets every commit through.
            let _ = gate.lock().expect("gate").recv();
        }));
        (Arc::new(store), open)
    }

    /// A committer whose drop report is collected instead of printed.
    fn collecting(store: Arc<MemStore>) -> (Committer, Arc<Mutex<Vec<String>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let committer = Committer::start_with_report(
            store,
            Box::new(move |error| sink.lock().expect("reports").push(format!("{error:#}"))),
        )
        .expect("start");
        (committer, reports)
    }

    fn commit(height: u64) -> BlockCommit {
        BlockCommit {
            height,
            block_hash: Hash32([u8::try_from(height + 1).expect("small"); 32]),
            block: vec![u8::try_from(height).expect("small"); 3],
            ..BlockCommit::default()
        }
    }

    #[test]
    fn every_submitted_block_is_written_in_order() {
        let store = Arc::new(MemStore::default());
        let mut committer = Committer::start(store.clone()).expect("start");
        for height in 0..20 {
            committer.submit(commit(height)).expect("submit");
            let durable = committer.durable_height();
            assert!(durable.is_none_or(|durable| durable <= height));
        }
        assert_eq!(committer.finish().expect("finish"), Some(19));
        let head = store.head().expect("head").expect("a head");
        assert_eq!(head.height, 19);
        for height in 0..20 {
            assert_eq!(
                store.block(height).expect("read"),
                Some(commit(height).block)
            );
        }
    }

    #[test]
    fn a_failed_write_stops_the_writer_and_is_reported() {
        let store = Arc::new(MemStore::default());
        let mut committer = Committer::start(store.clone()).expect("start");
        committer.submit(commit(0)).expect("submit 0");
        // Height 5 does not follow 0: its write fails, and 1, submitted
        // after it, must never be written.
        let mut error = committer.submit(commit(5)).err();
        if error.is_none() {
            error = committer.submit(commit(1)).err();
        }
        let error = match error {
            Some(error) => error,
            None => committer.finish().expect_err("the gap is reported"),
        };
        assert!(
            format!("{error:#}").contains("writing block 5"),
            "{error:#}"
        );
        assert_eq!(store.head().expect("head").expect("a head").height, 0);
        assert_eq!(
            store.block_height(&commit(1).block_hash).expect("read"),
            None
        );
    }

    #[test]
    fn wait_durable_returns_only_after_the_write_is_done() {
        let (store, open) = gated_store();
        let mut committer = Committer::start(store.clone()).expect("start");
        committer.submit(commit(0)).expect("submit");
        thread::scope(|scope| {
            let (done, finished) = mpsc::channel();
            let (waiter, reader) = (&committer, &store);
            scope.spawn(move || {
                let result = waiter.wait_durable(0);
                // The head moves when the write completes; a waiter released
                // earlier would see none.
                let head = reader.head().expect("head").map(|head| head.height);
                done.send((result.map_err(|error| format!("{error:#}")), head))
                    .expect("send");
            });
            // The write is held in its sync: the waiter must still wait.
            assert!(
                finished.recv_timeout(Duration::from_millis(100)).is_err(),
                "wait_durable returned before the write"
            );
            open.send(()).expect("let the write through");
            let (result, head) = finished.recv().expect("waiter result");
            assert_eq!(result, Ok(()));
            assert_eq!(head, Some(0));
        });
        assert_eq!(committer.durable_height(), Some(0));
        committer.close().expect("close");
    }

    #[test]
    fn wait_durable_returns_the_writer_error_after_a_failed_write() {
        let store = Arc::new(MemStore::default());
        let (mut committer, reports) = collecting(store);
        committer.submit(commit(0)).expect("submit 0");
        // The writer holds the receiver until it has failed on 5, so this
        // send always succeeds.
        committer.submit(commit(5)).expect("submit 5");
        committer.wait_durable(0).expect("0 was written");
        let error = committer.wait_durable(5).expect_err("5 failed");
        assert!(
            format!("{error:#}").contains("writing block 5"),
            "{error:#}"
        );
        let error = committer.close().expect_err("close returns the error");
        assert!(
            format!("{error:#}").contains("writing block 5"),
            "{error:#}"
        );
        // close collected the error: nothing is left to report on drop.
        assert!(reports.lock().expect("reports").is_empty());
    }

    #[test]
    fn wait_durable_refuses_a_height_never_submitted() {
        let mut committer = Committer::start(Arc::new(MemStore::default())).expect("start");
        let error = committer.wait_durable(0).expect_err("nothing submitted");
        assert!(format!("{error}").contains("never submitted"), "{error}");
        committer.submit(commit(0)).expect("submit");
        assert!(committer.wait_durable(1).is_err());
        committer.wait_durable(0).expect("written");
        committer.close().expect("close");
    }

    #[test]
    fn drop_reports_a_writer_error_nobody_collected() {
        let store = Arc::new(MemStore::default());
        let (mut committer, reports) = collecting(store.clone());
        committer.submit(commit(0)).expect("submit 0");
        committer.submit(commit(5)).expect("submit 5");
        drop(committer);
        let reports = reports.lock().expect("reports");
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].contains("writing block 5"), "{reports:?}");
        assert_eq!(store.head().expect("head").map(|head| head.height), Some(0));
    }

    #[test]
    fn drop_after_clean_writes_reports_nothing_and_writes_everything() {
        let store = Arc::new(MemStore::default());
        let (mut committer, reports) = collecting(store.clone());
        for height in 0..5 {
            committer.submit(commit(height)).expect("submit");
        }
        drop(committer);
        assert!(reports.lock().expect("reports").is_empty());
        assert_eq!(store.head().expect("head").map(|head| head.height), Some(4));
    }
}
