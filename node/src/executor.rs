//! Execution after commit, in commit order, on a thread of its own: each
//! committed block's batches are gathered (held here, or fetched from a
//! validator that signed their certificate, and verified), the ledger block
//! is built from them (its header carries the previous block's state root)
//! and applied deterministically, and the result goes to the committer,
//! which writes it in one synced RocksDB batch with the block's finality
//! certificate while the next block executes. Clients waiting for a
//! transaction are answered only once its block is durable.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use prost::Message as _;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};
use yuchain_consensus::CommittedBlock;
use yuchain_consensus::types::ValidatorId;
use yuchain_network::PeerKey;
use yuchain_proto::tx::VerifiedTx;
use yuchain_proto::{Address, Hash32, pb};

use crate::batch::{self, Batch, BatchRef};
use crate::persist::{Committer, into_block_commit};
use crate::shared::{ClaimError, ExecutedState, Shared, check_claim, now_ms};
use yuchain_storage::BlockStore as _;

/// The most committed blocks waiting for execution.
pub const EXECUTION_QUEUE: usize = 64;
/// How long one batch fetch waits for a peer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most batch fetches one committed block has in flight at once.
const FETCHES_AT_ONCE: usize = 16;

/// What a block's durability releases: its transactions leave the mempool
/// and its waiting clients are answered.
struct Executed {
    height: u64,
    ids: Vec<Hash32>,
    /// The batches it executed: their records are deleted once it is
    /// durable.
    batches: Vec<Hash32>,
    senders: Vec<(Address, u64)>,
    timestamp_ms: u64,
}

/// Starts the executor thread. Once `abandon` turns true (the node's drain
/// time is up), a fetch still waiting for a batch gives up and the thread
/// stops with an error instead of waiting on a runtime that shuts down.
pub fn start(
    shared: Arc<Shared>,
    mut commits: mpsc::Receiver<Box<CommittedBlock>>,
    runtime: Handle,
    fatal: mpsc::UnboundedSender<anyhow::Error>,
    abandon: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>> {
    let pending: Arc<Mutex<VecDeque<Executed>>> = Arc::default();
    let hook_shared = Arc::clone(&shared);
    let hook_pending = Arc::clone(&pending);
    let report_fatal = fatal.clone();
    let committer = Committer::start_with_hooks(
        shared.store.clone(),
        Box::new(move |error| {
            let _ = report_fatal.send(anyhow::anyhow!("the block writer failed: {error:#}"));
        }),
        Box::new(move |height| durable(&hook_shared, &hook_pending, height)),
    )?;
    let thread = std::thread::Builder::new()
        .name("executor".into())
        .spawn(move || {
            let mut committer = committer;
            let mut ordered = OrderedBatches::default();
            while let Some(entry) = commits.blocking_recv() {
                if let Err(error) = execute(
                    &shared,
                    &runtime,
                    &abandon,
                    &mut committer,
                    &pending,
                    &mut ordered,
                    &entry,
                ) {
                    error!(error = %format!("{error:#}"), "execution stopped");
                    let _ = fatal.send(error);
                    break;
                }
            }
            if let Err(error) = committer.close() {
                let _ = fatal.send(error.context("closing the block writer"));
            }
            info!("executor stopped; every executed block is durable");
        })
        .context("starting the executor thread")?;
    Ok(thread)
}

/// A block became durable: release what it executed.
fn durable(shared: &Shared, pending: &Mutex<VecDeque<Executed>>, height: u64) {
    let mut released = Vec::new();
    {
        let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
        while pending.front().is_some_and(|entry| entry.height <= height) {
            if let Some(entry) = pending.pop_front() {
                released.push(entry);
            }
        }
    }
    for entry in released {
        if let Err(error) = shared.store.delete_batches(&entry.batches) {
            warn!(%error, "deleting executed batches from the store");
        }
        let expired = {
            let mut mempool = shared.mempool();
            let expired =
                mempool.committed(&entry.ids, &entry.senders, entry.height.saturating_add(1));
            shared.update_mempool_metrics(&mempool);
            expired
        };
        if !expired.is_empty() {
            {
                let mut remembered = shared.expired();
                for id in &expired {
                    remembered.insert(*id);
                }
            }
            shared.wake(&expired);
        }
        shared.wake(&entry.ids);
        let latency_ms = now_ms().saturating_sub(entry.timestamp_ms);
        shared
            .metrics
            .commit_latency
            .observe(latency_ms as f64 / 1_000.0);
    }
    shared
        .metrics
        .height
        .set(i64::try_from(height).unwrap_or(i64::MAX));
    shared.durable.send_replace(height);
}

/// The batches this executor ordered since it started, by digest, with
/// the height that ordered them (bounded; older ones are durable, and the
/// store's index answers for them).
#[derive(Default)]
struct OrderedBatches {
    heights: std::collections::HashMap<Hash32, u64>,
    order: VecDeque<Hash32>,
}

/// How many recently ordered batches the executor remembers itself.
const ORDERED_BATCHES_REMEMBERED: usize = 200_000;

impl OrderedBatches {
    fn insert(&mut self, digest: Hash32, height: u64) {
        if self.heights.insert(digest, height).is_none() {
            self.order.push_back(digest);
            while self.order.len() > ORDERED_BATCHES_REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.heights.remove(&old);
                }
            }
        }
    }

    /// Whether a block below `height` ordered the batch: from memory, or
    /// the store's index (everything older is durable). Every node answers
    /// alike, for it depends on the committed chain alone.
    fn ordered_before(&self, shared: &Shared, digest: &Hash32, height: u64) -> Result<bool> {
        if let Some(first) = self.heights.get(digest) {
            return Ok(*first < height);
        }
        Ok(shared
            .store
            .batch_height(digest)
            .context("reading the batch index")?
            .is_some_and(|first| first < height))
    }
}

/// Executes one committed block and queues its write. A batch that an
/// earlier block already ordered is skipped (its transactions were
/// executed; a Byzantine leader may order it again), and so is a batch
/// given twice in one block.
fn execute(
    shared: &Shared,
    runtime: &Handle,
    abandon: &watch::Receiver<bool>,
    committer: &mut Committer,
    pending: &Mutex<VecDeque<Executed>>,
    ordered: &mut OrderedBatches,
    entry: &CommittedBlock,
) -> Result<()> {
    let height = entry.block.height.0;
    let executed = shared.ledger().height();
    if height <= executed {
        debug!(height, "already executed");
        return Ok(());
    }
    if height != executed.saturating_add(1) {
        bail!("committed block {height} arrived while the ledger is at {executed}");
    }
    let payload = pb::BlockPayload::decode(entry.block.payload.as_slice())
        .context("a committed block's payload does not decode (its voters checked it)")?;
    let claim = check_certified_execution(shared, payload.executed.as_ref(), height)?;
    let certified = Arc::new(entry.encode());
    // The block's certificate vouches for its claim when it signs this
    // block or a child of it (honest voters of a child checked the child's
    // certificate of this block). A certificate that commits a later block
    // (after a timeout) does not name this one: the next block's will.
    let hash = entry.block.hash();
    let vote = &entry.commit_qc.vote;
    // The proof view serves GetAccount only; when it fails (a bug: it
    // replays the ledger's own changes) the node goes on executing, stops
    // answering proofs, and rebuilds the view from the ledger below.
    let mut view_failed = false;
    if vote.block == hash || vote.parent == hash {
        let certify =
            shared
                .proofs()
                .certify(claim.height, claim.state_root, Arc::clone(&certified));
        match certify {
            Ok(true) => {
                shared.certified.send_replace(Some(claim.height));
            }
            Ok(false) => {}
            Err(error) => {
                error!(height, error = %format!("{error:#}"), "the proof view failed; rebuilding it from the ledger");
                view_failed = true;
            }
        }
    }
    let certificates = payload.batches;
    // First what this node holds, then everything missing fetched at once
    // (a node catching up after a cut misses every batch of every block).
    let mut gathered: Vec<(BatchRef, Option<Batch>)> = Vec::with_capacity(certificates.len());
    let mut missing = Vec::new();
    for certificate in &certificates {
        let reference = BatchRef::from_pb(
            certificate
                .batch
                .as_ref()
                .context("a committed certificate has no batch")?,
        )?;
        if gathered
            .iter()
            .any(|(other, _)| other.digest == reference.digest)
            || ordered.ordered_before(shared, &reference.digest, height)?
        {
            warn!(
                digest = %reference.digest,
                height,
                "a committed block orders a batch already ordered; skipped"
            );
            continue;
        }
        // Taken out of the store, not copied: an executed batch is served
        // to peers from its record or its block from now on.
        let held = shared.batches().store.remove(&reference.digest);
        let batch = held.or_else(|| stored_batch(shared, &reference));
        if batch.is_none() {
            missing.push((gathered.len(), reference, certificate));
        }
        gathered.push((reference, batch));
    }
    if !missing.is_empty() {
        for (slot, batch) in fetch_all(shared, runtime, abandon, &missing, height)? {
            if let Some((_, place)) = gathered.get_mut(slot) {
                *place = Some(batch);
            }
        }
    }
    let mut signed = Vec::new();
    let mut verified: Vec<VerifiedTx> = Vec::new();
    let mut spans = Vec::with_capacity(gathered.len());
    let mut digests = Vec::with_capacity(gathered.len());
    for (reference, batch) in gathered {
        let batch = batch.with_context(|| {
            format!(
                "batch {} of committed block {height} was not gathered",
                reference.digest
            )
        })?;
        spans.push(pb::BatchSpan {
            batch: Some(reference.to_pb()),
            sequence: batch.sequence,
            first: u32::try_from(signed.len()).unwrap_or(u32::MAX),
            count: u32::try_from(batch.signed.len()).unwrap_or(u32::MAX),
        });
        digests.push(reference.digest);
        signed.extend(batch.signed);
        verified.extend(batch.verified);
    }
    for digest in &digests {
        ordered.insert(*digest, height);
    }
    let ids: Vec<Hash32> = verified.iter().map(|tx| tx.id).collect();
    let (header, mut applied, senders) = {
        let mut ledger = shared.ledger_mut();
        let header = ledger.build_header(&ids, entry.block.timestamp_ms);
        let applied = ledger
            .apply_checked(&header, &verified)
            .with_context(|| format!("executing committed block {height}"))?;
        let mut senders: Vec<Address> = verified.iter().map(|tx| tx.sender).collect();
        senders.sort_unstable();
        senders.dedup();
        let senders: Vec<(Address, u64)> = senders
            .into_iter()
            .filter_map(|sender| ledger.account(&sender).map(|a| (sender, a.next_sequence)))
            .collect();
        (header, applied, senders)
    };
    shared.record_executed(ExecutedState {
        height,
        block_hash: applied.block_hash,
        state_root: applied.state_root,
    });
    let moved = if view_failed {
        Err(anyhow::anyhow!("it failed to certify"))
    } else {
        shared
            .proofs()
            .executed(height, applied.state_root, applied.state_changes.clone())
    };
    match moved {
        Ok(false) => {}
        Ok(true) => {
            shared.certified.send_replace(None);
        }
        Err(error) => {
            if !view_failed {
                error!(height, error = %format!("{error:#}"), "the proof view failed; rebuilding it from the ledger");
            }
            shared.certified.send_replace(None);
            let ledger = shared.ledger();
            shared.proofs().rebuild(&ledger);
            shared.metrics.proof_view_rebuilt();
        }
    }
    let executed_count = applied.receipts.len() as u64;
    let state_root = applied.state_root.0.to_vec();
    let mut record = pb::CommittedBlockRecord {
        ledger: Some(pb::BlockRecord {
            block: Some(pb::Block {
                header: Some(header),
                transactions: signed,
            }),
            // Lent to the record for its encoding, then given back.
            receipts: std::mem::take(&mut applied.receipts),
        }),
        certified: certified.as_ref().clone(),
        batches: spans,
        state_root,
    };
    let encoded = record.encode_to_vec();
    applied.receipts = record
        .ledger
        .take()
        .map(|ledger| ledger.receipts)
        .unwrap_or_default();
    let mut commit = into_block_commit(encoded, applied);
    commit.ordered_batches = digests.clone();
    pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back(Executed {
            height,
            ids,
            batches: digests.clone(),
            senders,
            timestamp_ms: entry.block.timestamp_ms,
        });
    committer.submit(commit)?;
    {
        let mut batches = shared.batches();
        for digest in &digests {
            batches.store.remove(digest);
        }
        shared
            .metrics
            .batches_held
            .set(i64::try_from(batches.store.len()).unwrap_or(i64::MAX));
        shared
            .metrics
            .certified_waiting
            .set(i64::try_from(batches.certified.len()).unwrap_or(i64::MAX));
    }
    shared.metrics.executed.inc_by(executed_count);
    Ok(())
}

/// Compares this node's execution with the executed state a committed
/// block certifies (2f + 1 validators voted for it, so at least f + 1 honest
/// ones computed the same): a difference means this node's execution
/// diverged, and it must stop rather than serve or vote on a wrong state.
fn check_certified_execution(
    shared: &Shared,
    claim: Option<&pb::ExecutedState>,
    height: u64,
) -> Result<ExecutedState> {
    let mut read_error = None;
    let checked = check_claim(claim, height, |claimed| match shared.executed_at(claimed) {
        Ok(state) => state,
        Err(error) => {
            read_error = Some(error);
            None
        }
    });
    if let Some(error) = read_error {
        return Err(error.context("reading an executed state to check a certified one"));
    }
    match checked {
        Ok(claim) => Ok(claim),
        Err(error @ ClaimError::Differs { .. }) => bail!(
            "this node's execution diverged from what the validators certified in block \
             {height}: {error}. Stop this node, keep its home for investigation, and re-sync a \
             fresh home from genesis"
        ),
        Err(error) => bail!("committed block {height}: {error}"),
    }
}

/// Fetches the batches of a committed block that this node does not hold,
/// [`FETCHES_AT_ONCE`] at a time, and returns each with its slot. Every
/// fetch retries until a peer answers with the certified batch (at least
/// one signer of its certificate is honest and holds it).
fn fetch_all(
    shared: &Shared,
    runtime: &Handle,
    abandon: &watch::Receiver<bool>,
    missing: &[(usize, BatchRef, &pb::BatchCertificate)],
    height: u64,
) -> Result<Vec<(usize, Batch)>> {
    use futures::StreamExt as _;
    let mut abandon = abandon.clone();
    let fetched = runtime.block_on(async {
        let all = futures::stream::iter(missing.iter().map(
            |(slot, reference, certificate)| async move {
                (*slot, fetch(shared, reference, certificate, height).await)
            },
        ))
        .buffer_unordered(FETCHES_AT_ONCE)
        .collect::<Vec<_>>();
        tokio::select! {
            // First, so that once the node gives up on draining no fetch
            // timer is polled again (the runtime is about to shut down).
            biased;
            _ = abandon.wait_for(|stop| *stop) => None,
            all = all => Some(all),
        }
    });
    fetched.with_context(|| {
        format!(
            "stopping: {} batches of committed block {height} were not fetched",
            missing.len()
        )
    })
}

/// Fetches a batch this node does not hold from the validators that signed
/// its certificate (at least one of them is honest), then from everyone,
/// until one answers with the batch whose digest is certified. The batch
/// is checked against that certificate (its digest, and the transactions
/// decoded under the certificate's attestation of their signatures)
/// before it is used.
async fn fetch(
    shared: &Shared,
    reference: &BatchRef,
    certificate: &pb::BatchCertificate,
    height: u64,
) -> Batch {
    let mut candidates: Vec<PeerKey> = Vec::new();
    for signature in &certificate.signatures {
        let Ok(signer) = u16::try_from(signature.signer) else {
            continue;
        };
        if let Ok(key) = shared.validators.key(ValidatorId(signer)) {
            candidates.push(shared.peers.network_of(key));
        }
    }
    for key in shared.validators.keys() {
        let peer = shared.peers.network_of(key);
        if !candidates.contains(&peer) {
            candidates.push(peer);
        }
    }
    let me = shared.network.local_key();
    candidates.retain(|peer| *peer != me);
    let request = pb::FetchRequest {
        digest: reference.digest.0.to_vec(),
        height,
    }
    .encode_to_vec();
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        // Every candidate at once; the first valid answer wins (a peer
        // without the batch answers at once with none: wait for the others).
        let mut asks = tokio::task::JoinSet::new();
        for peer in &candidates {
            let network = shared.network.clone();
            let bytes = request.clone();
            let peer = *peer;
            asks.spawn(async move {
                let answer =
                    tokio::time::timeout(FETCH_TIMEOUT, network.request(peer, bytes)).await;
                (peer, answer.ok().and_then(Result::ok))
            });
        }
        while let Some(done) = asks.join_next().await {
            let Ok((peer, Some(bytes))) = done else {
                continue;
            };
            let Ok(response) = pb::FetchResponse::decode(bytes.as_slice()) else {
                warn!(peer = %peer.to_hex(), "a batch fetch answer does not decode");
                continue;
            };
            let Some(message) = response.batch else {
                continue;
            };
            // A committed block's certificates were checked by its voters
            // (2f + 1, so f + 1 honest): each attests the batch's
            // signatures. (This runs on the executor's thread, in its
            // `block_on`, not on a runtime worker.)
            match Batch::check_certified(message, &shared.chain_id, &shared.validators, reference) {
                Ok(batch) => {
                    shared.metrics.batch("fetched");
                    return batch;
                }
                Err(error) => {
                    warn!(peer = %peer.to_hex(), %error, "a peer answered with an invalid batch")
                }
            }
        }
        if attempt.is_multiple_of(10) {
            warn!(
                digest = %reference.digest,
                height,
                waited_ms = started.elapsed().as_millis() as u64,
                "fetching a certified batch: no peer has answered with it yet"
            );
        }
        tokio::time::sleep(Duration::from_millis(
            20u64.saturating_mul(u64::from(attempt) + 1).min(200),
        ))
        .await;
        if shared.network.connected_peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// A batch from the store's batch records (one this node acknowledged
/// before a restart, or evicted from memory), checked again against the
/// committed certificate `reference` comes from.
fn stored_batch(shared: &Shared, reference: &BatchRef) -> Option<Batch> {
    let record = shared.store.batch(&reference.digest).ok()??;
    let (_, message) = batch::read_batch_record(&record)?;
    Batch::check_certified(message, &shared.chain_id, &shared.validators, reference).ok()
}

/// Loads the batch records kept in the store into memory at start-up
/// (verifying each again), and deletes those past
/// [`batch::BATCH_RETENTION_MS`] or unreadable.
pub fn restore_batches(shared: &Shared) -> Result<usize> {
    let mut records = Vec::new();
    shared
        .store
        .for_each_batch(&mut |key, value| {
            records.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .context("reading the stored batches")?;
    let now = now_ms();
    let mut stale = Vec::new();
    let mut restored = 0;
    for (key, value) in records {
        let Some(digest) = Hash32::from_slice(&key) else {
            continue;
        };
        let checked = batch::read_batch_record(&value).and_then(|(stored_at, message)| {
            if now.saturating_sub(stored_at) > batch::BATCH_RETENTION_MS {
                return None;
            }
            Batch::check(message, &shared.chain_id, &shared.validators).ok()
        });
        match checked {
            Some(batch) if batch.reference.digest == digest => {
                shared.batches().store.insert(batch);
                restored += 1;
            }
            _ => stale.push(digest),
        }
    }
    shared
        .store
        .delete_batches(&stale)
        .context("deleting stale batches")?;
    Ok(restored)
}

/// Serves a peer's fetch: from the batches held, the batch records, or the
/// committed block that ordered it.
pub fn serve_fetch(shared: &Shared, request: &[u8]) -> Vec<u8> {
    let batch = (|| -> Option<pb::Batch> {
        let request = pb::FetchRequest::decode(request).ok()?;
        let digest = Hash32::from_slice(&request.digest)?;
        if let Some(batch) = shared.batches().store.get(&digest) {
            return Some(batch.to_pb());
        }
        if let Some((_, message)) = shared
            .store
            .batch(&digest)
            .ok()
            .flatten()
            .and_then(|record| batch::read_batch_record(&record))
        {
            return Some(message);
        }
        let height = shared.store.batch_height(&digest).ok()??;
        let record = served_record(shared, height)?;
        let span = record.batches.iter().find(|span| {
            span.batch
                .as_ref()
                .is_some_and(|batch| batch.digest == digest.0)
        })?;
        let reference = span.batch.as_ref()?;
        let block = record.ledger.as_ref()?.block.as_ref()?;
        let first = usize::try_from(span.first).ok()?;
        let count = usize::try_from(span.count).ok()?;
        let transactions = block
            .transactions
            .get(first..first.checked_add(count)?)?
            .to_vec();
        Some(pb::Batch {
            author: reference.author.clone(),
            epoch: reference.epoch,
            sequence: span.sequence,
            transactions,
        })
    })();
    pb::FetchResponse { batch }.encode_to_vec()
}

/// The committed block record at `height`, decoded once for all the
/// fetches of its batches that arrive together.
fn served_record(shared: &Shared, height: u64) -> Option<Arc<pb::CommittedBlockRecord>> {
    let mut last = shared
        .served_record
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((at, record)) = last.as_ref()
        && *at == height
    {
        return Some(Arc::clone(record));
    }
    let record = Arc::new(crate::chain::read_record(shared.store.as_ref(), height).ok()??);
    *last = Some((height, Arc::clone(&record)));
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnode::{OneValidator, one_validator};

    /// A fetch that no peer can answer (the only validator's copy is gone)
    /// waits, and gives up with an error once the node's drain time is up;
    /// the runtime then shuts down and the fetching thread has not
    /// panicked. (It once slept on the runtime's timer inside `block_on`
    /// with nothing to stop it, and panicked when the runtime went away.)
    #[test]
    fn a_fetch_no_peer_can_answer_gives_up_when_the_drain_time_is_up() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let OneValidator {
            _dir,
            shared,
            reference,
            certificate,
            ..
        } = runtime.block_on(one_validator());
        assert!(shared.batches().store.remove(&reference.digest).is_some());
        let (abandon_tx, abandon_rx) = watch::channel(false);
        let handle = runtime.handle().clone();
        let thread = std::thread::spawn(move || {
            fetch_all(
                &shared,
                &handle,
                &abandon_rx,
                &[(0, reference, &certificate)],
                1,
            )
            .map(|fetched| fetched.len())
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!thread.is_finished(), "no peer holds the batch: it waits");
        abandon_tx.send(true).expect("the fetch listens");
        let started = std::time::Instant::now();
        while !thread.is_finished() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(thread.is_finished(), "the fetch gave up within 5 s");
        runtime.shutdown_timeout(Duration::from_secs(1));
        let outcome = thread.join().expect("the fetching thread did not panic");
        let error = outcome.expect_err("abandoned, not fetched");
        assert!(
            format!("{error:#}").contains("were not fetched"),
            "{error:#}"
        );
    }
}
