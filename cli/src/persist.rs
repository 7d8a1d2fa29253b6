//! From what the ledger applied to what the store commits, and back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
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
    let mut transactions = Vec::new();
    let mut receipts = Vec::new();
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
        block: record.encode_to_vec(),
        transactions,
        receipts,
        state: applied.state_changes.clone(),
        tree_nodes: applied.tree_diff.nodes.clone(),
        history: applied.history.clone(),
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

/// Writes block commits on a thread of its own, so that one block's synced
/// write overlaps the next block's execution instead of following it.
///
/// Commits are written in the order submitted, each in its own synced
/// `WriteBatch`. A block is durable once [`Committer::durable_height`]
/// reaches it; nothing that depends on its durability (answering a client,
/// acknowledging a payment) may happen before. The first failed write stops
/// the writer: nothing submitted after it is written, and the error is
/// returned by the next [`Committer::submit`] or by [`Committer::finish`].
#[derive(Debug)]
pub struct Committer {
    sender: Option<SyncSender<BlockCommit>>,
    writer: Option<JoinHandle<Result<()>>>,
    /// One more than the last height written, 0 before the first.
    durable: Arc<AtomicU64>,
}

impl Committer {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn BlockStore>) -> Result<Committer> {
        let (sender, receiver) = sync_channel::<BlockCommit>(COMMITS_IN_FLIGHT_MAX);
        let durable = Arc::new(AtomicU64::new(0));
        let written = Arc::clone(&durable);
        let writer = thread::Builder::new()
            .name("block-writer".into())
            .spawn(move || -> Result<()> {
                for commit in receiver {
                    store
                        .commit(&commit)
                        .with_context(|| format!("writing block {}", commit.height))?;
                    let next = commit.height.checked_add(1).context("height overflow")?;
                    written.store(next, Ordering::Release);
                }
                Ok(())
            })
            .context("starting the block writer thread")?;
        Ok(Committer {
            sender: Some(sender),
            writer: Some(writer),
            durable,
        })
    }

    /// Queues `commit` behind those already submitted; waits while
    /// [`COMMITS_IN_FLIGHT_MAX`] are queued. Fails, queuing nothing, once an
    /// earlier write has failed (with that write's error).
    pub fn submit(&mut self, commit: BlockCommit) -> Result<()> {
        let Some(sender) = &self.sender else {
            bail!("the block writer has already stopped");
        };
        if sender.send(commit).is_err() {
            // The writer hung up: it stopped at a failed write.
            self.sender = None;
            return Err(match self.join() {
                Err(error) => error,
                Ok(()) => anyhow!("the block writer stopped"),
            });
        }
        Ok(())
    }

    /// The highest height this committer has written and synced so far
    /// (`None` before its first write).
    pub fn durable_height(&self) -> Option<u64> {
        self.durable.load(Ordering::Acquire).checked_sub(1)
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
    /// Lets the writer finish what was submitted: dropping a committer never
    /// abandons a queued block half-way (each write is atomic anyway).
    fn drop(&mut self) {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use yuchain_proto::Hash32;
    use yuchain_storage::MemStore;

    use super::*;

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
}
