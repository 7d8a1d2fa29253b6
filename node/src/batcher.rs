//! The batch task of a validator: cuts admitted transactions into batches
//! and broadcasts them; checks and acknowledges the batches of others;
//! gathers acknowledgements of its own into availability certificates and
//! broadcasts those, so any leader can order them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};
use yuchain_network::{Channel, PeerKey};
use yuchain_proto::pb;

use crate::batch::{self, BATCH_BYTES_MAX, Batch, BatchRef};
use crate::shared::Shared;

/// The most batch-lane messages waiting for the batch task.
pub const BATCH_INBOX: usize = 4_096;
/// The most peer batches being verified or waiting for it (each check
/// takes all cores for a while; two run at once).
const CHECKS_IN_FLIGHT: usize = 64;
/// The most peer batches verified at the same moment.
const CHECKS_RUNNING: usize = 2;
/// How long an own batch waits for acknowledgements before it is sent
/// again (a peer may have been down).
const REBROADCAST_AFTER: Duration = Duration::from_secs(2);
/// How many times an own batch is sent again before it is given up.
const REBROADCASTS_MAX: usize = 5;
/// The most own batches waiting for certificates.
const UNCERTIFIED_MAX: usize = 1_024;
/// How often the batch task looks whether a batch may be cut before its
/// interval is up (when none of this node's batches is on its way).
const CUT_POLL: Duration = Duration::from_millis(5);

/// How long a peer batch that this node does not verify at once waits for
/// its certificate before this node verifies and acknowledges it itself (a
/// validator that should have may be down or Byzantine).
const ATTESTATION_WAIT: Duration = Duration::from_millis(500);
/// The most peer batches waiting for their certificates.
const AWAITING_MAX: usize = 4_096;
/// The most bytes of peer batches waiting for their certificates.
const AWAITING_BYTES_MAX: usize = 128 << 20;

/// Peer batches this node does not verify at once
/// ([`batch::verifies_at_once`]), waiting for the certificate that attests
/// their signatures. Held in memory only: this node signs nothing for them,
/// so it promises nothing about holding them.
#[derive(Default)]
struct Awaiting {
    batches: HashMap<yuchain_proto::Hash32, (pb::Batch, PeerKey, Instant, usize)>,
    order: VecDeque<yuchain_proto::Hash32>,
    bytes: usize,
}

impl Awaiting {
    /// Holds `message` (with `digest`) from `from`; the oldest are dropped
    /// past the bounds (their authors send them again).
    fn insert(&mut self, digest: yuchain_proto::Hash32, message: pb::Batch, from: PeerKey) {
        if self.batches.contains_key(&digest) {
            return;
        }
        let bytes = message.encoded_len();
        while (self.batches.len() >= AWAITING_MAX
            || self.bytes.saturating_add(bytes) > AWAITING_BYTES_MAX)
            && !self.order.is_empty()
        {
            if let Some(old) = self.order.pop_front() {
                self.remove(&old);
            }
        }
        self.bytes = self.bytes.saturating_add(bytes);
        self.batches
            .insert(digest, (message, from, Instant::now(), bytes));
        self.order.push_back(digest);
    }

    fn remove(&mut self, digest: &yuchain_proto::Hash32) -> Option<(pb::Batch, PeerKey)> {
        let (message, from, _, bytes) = self.batches.remove(digest)?;
        self.bytes = self.bytes.saturating_sub(bytes);
        Some((message, from))
    }

    /// Takes the batch with `digest`, if it waits.
    fn take(&mut self, digest: &yuchain_proto::Hash32) -> Option<(pb::Batch, PeerKey)> {
        let taken = self.remove(digest)?;
        if self.order.front() == Some(digest) {
            self.order.pop_front();
        }
        Some(taken)
    }

    /// Takes the batches that waited longer than [`ATTESTATION_WAIT`].
    fn take_overdue(&mut self) -> Vec<(pb::Batch, PeerKey)> {
        let mut overdue = Vec::new();
        while let Some(digest) = self.order.front().copied() {
            match self.batches.get(&digest) {
                None => {
                    self.order.pop_front();
                }
                Some((_, _, since, _)) if since.elapsed() >= ATTESTATION_WAIT => {
                    self.order.pop_front();
                    overdue.extend(self.remove(&digest));
                }
                Some(_) => break,
            }
        }
        overdue
    }
}

/// Bounds on peer batch checks: how many may be admitted (running or
/// waiting), and how many run at once.
struct Checks {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A batch-lane message from a peer.
#[derive(Debug)]
pub struct BatchEvent {
    /// The sender.
    pub from: PeerKey,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Runs the batch task until `shutdown`.
pub async fn run(
    shared: Arc<Shared>,
    mut inbox: mpsc::Receiver<BatchEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(me) = shared.me else {
        return;
    };
    let interval = Duration::from_millis(shared.config.batches.interval_ms.max(1));
    // Cuts are checked often and made at once while none of this node's
    // batches is on its way (a lone payment waits for no timer); while one
    // is, transactions gather for the full interval, so batches grow with
    // the load and per-batch costs (acknowledgements, certificate, syncs,
    // messages) stay bounded.
    let mut ticker = tokio::time::interval(interval.min(CUT_POLL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checks = Checks {
        admitted: Arc::new(Semaphore::new(CHECKS_IN_FLIGHT)),
        running: Arc::new(Semaphore::new(CHECKS_RUNNING)),
    };
    let mut uncertified: VecDeque<(BatchRef, Instant, usize)> = VecDeque::new();
    let mut awaiting = Awaiting::default();
    let mut last_rebroadcast = Instant::now();
    let mut last_cut = Instant::now();
    let author = shared.key.public_key();
    loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
            event = inbox.recv() => {
                let Some(event) = event else { return };
                handle(&shared, &checks, event, &mut uncertified, &mut awaiting).await;
            }
            _ = ticker.tick() => {
                if last_cut.elapsed() >= interval || !shared.batches().in_flight(&author) {
                    last_cut = Instant::now();
                    while let Some(reference) = cut(&shared, me) {
                        uncertified.push_back((reference, Instant::now(), 0));
                        if uncertified.len() > UNCERTIFIED_MAX {
                            uncertified.pop_front();
                        }
                    }
                }
                for (message, from) in awaiting.take_overdue() {
                    shared.metrics.batch("verified_without_certificate");
                    check_and_acknowledge(&shared, &checks, from, message);
                }
                if last_rebroadcast.elapsed() >= REBROADCAST_AFTER {
                    last_rebroadcast = Instant::now();
                    rebroadcast(&shared, &mut uncertified);
                }
            }
        }
    }
}

/// Cuts one own batch from the mempool, if anything is queued: stores it,
/// acknowledges it itself, and broadcasts it.
fn cut(shared: &Shared, me: yuchain_consensus::types::ValidatorId) -> Option<BatchRef> {
    let transactions = {
        let mut mempool = shared.mempool();
        mempool.take_batch(shared.config.batches.transactions_max, BATCH_BYTES_MAX)
    };
    if transactions.is_empty() {
        return None;
    }
    let epoch = shared.validators.epoch();
    let batch = {
        let mut batches = shared.batches();
        let sequence = batches.next_sequence;
        batches.next_sequence = sequence.saturating_add(1);
        Batch::own(shared.key.public_key(), epoch, sequence, transactions)
    };
    let reference = batch.reference;
    // Durable before it is acknowledged, even by its author: a certificate
    // promises its signers hold the batch, also after a crash.
    let record = batch::batch_record(&batch, crate::shared::now_ms());
    if let Err(error) =
        tokio::task::block_in_place(|| shared.store.put_batch(&reference.digest, &record))
    {
        warn!(%error, "storing an own batch failed; its transactions go back to the mempool");
        let ids: Vec<_> = batch.verified.iter().map(|tx| tx.id).collect();
        shared.mempool().requeue(&ids);
        return None;
    }
    let message = pb::BatchMessage {
        kind: Some(pb::batch_message::Kind::Batch(batch.to_pb())),
    }
    .encode_to_vec();
    let own_ack = batch::acknowledge(&shared.key, me, &reference);
    let certificate = {
        let mut batches = shared.batches();
        batches.store.insert(batch);
        batches.acks.expect(reference);
        let ack = batch::Ack {
            reference,
            signer: me,
            signature: yuchain_proto::Signature::from_slice(&own_ack.signature).ok()?,
        };
        batches.acks.add(ack, shared.validators.weak_quorum())
    };
    shared.metrics.batch("made");
    shared.network.broadcast(Channel::Batches, message);
    if let Some(certificate) = certificate {
        certified(shared, reference, certificate);
    }
    Some(reference)
}

/// Sends own batches still without a certificate again; after
/// [`REBROADCASTS_MAX`] tries, gives the batch up and puts its
/// transactions back in the mempool for a new batch (if the old one is
/// certified and ordered after all, the copies fail harmlessly: their
/// sequences are used).
fn rebroadcast(shared: &Shared, uncertified: &mut VecDeque<(BatchRef, Instant, usize)>) {
    let mut given_up = Vec::new();
    {
        let batches = shared.batches();
        uncertified.retain(|(reference, since, times)| {
            if !batches.acks_pending(&reference.digest) {
                return false;
            }
            let Some(batch) = batches.store.get(&reference.digest) else {
                return false;
            };
            if since.elapsed() >= REBROADCAST_AFTER && *times >= REBROADCASTS_MAX {
                given_up.push((
                    reference.digest,
                    batch.verified.iter().map(|tx| tx.id).collect::<Vec<_>>(),
                ));
                return false;
            }
            true
        });
        for (reference, since, times) in uncertified.iter_mut() {
            if since.elapsed() < REBROADCAST_AFTER {
                continue;
            }
            let Some(batch) = batches.store.get(&reference.digest) else {
                continue;
            };
            let message = pb::BatchMessage {
                kind: Some(pb::batch_message::Kind::Batch(batch.to_pb())),
            }
            .encode_to_vec();
            shared.network.broadcast(Channel::Batches, message);
            *since = Instant::now();
            *times += 1;
        }
    }
    if !given_up.is_empty() {
        {
            let mut batches = shared.batches();
            for (digest, _) in &given_up {
                batches.acks.forget(digest);
            }
        }
        warn!(
            batches = given_up.len(),
            "own batches got no certificate; their transactions go into new batches"
        );
        let mut mempool = shared.mempool();
        for (_, ids) in given_up {
            mempool.requeue(&ids);
        }
    }
}

/// Handles one message on the batch lane.
async fn handle(
    shared: &Arc<Shared>,
    checks: &Checks,
    event: BatchEvent,
    uncertified: &mut VecDeque<(BatchRef, Instant, usize)>,
    awaiting: &mut Awaiting,
) {
    if !shared.peers.is_validator(&event.from) {
        debug!(peer = %event.from.to_hex(), "a batch message from a non-validator is ignored");
        return;
    }
    let Ok(message) = pb::BatchMessage::decode(event.bytes.as_slice()) else {
        warn!(peer = %event.from.to_hex(), "a batch message does not decode");
        return;
    };
    match message.kind {
        Some(pb::batch_message::Kind::Batch(batch)) => {
            let Some((author, digest)) = batch_digest(&batch) else {
                debug!(peer = %event.from.to_hex(), "a batch with a malformed author");
                return;
            };
            // A batch already held (sent again by its author, whose
            // acknowledgement got lost) is acknowledged again at once.
            if let Some(reference) = held_reference(shared, &digest) {
                acknowledge_held(shared, event.from, &reference);
                return;
            }
            if let (Some(me), Some(author)) = (shared.me, shared.validators.index_of(&author))
                && !batch::verifies_at_once(&shared.validators, author, me)
                && first_verifiers_connected(shared, author)
            {
                // Its certificate will attest its signatures; if it is
                // already here, so is that attestation.
                let certified = shared.batches().certified_reference(&digest);
                match certified {
                    Some(reference) => accept_certified(shared, batch, reference),
                    None => awaiting.insert(digest, batch, event.from),
                }
                return;
            }
            check_and_acknowledge(shared, checks, event.from, batch);
        }
        Some(pb::batch_message::Kind::Ack(ack)) => match batch::check_ack(&ack, &shared.validators)
        {
            Ok(ack) if ack.reference.author == shared.key.public_key() => {
                let certificate = shared
                    .batches()
                    .acks
                    .add(ack, shared.validators.weak_quorum());
                if let Some(certificate) = certificate {
                    uncertified
                        .retain(|(reference, _, _)| reference.digest != ack.reference.digest);
                    certified(shared, ack.reference, certificate);
                }
            }
            Ok(_) => debug!("an acknowledgement of someone else's batch is ignored"),
            Err(error) => {
                warn!(peer = %event.from.to_hex(), %error, "an acknowledgement is refused")
            }
        },
        Some(pb::batch_message::Kind::Certificate(certificate)) => {
            let shared = Arc::clone(shared);
            let checked = tokio::task::spawn_blocking(move || {
                let checked = batch::CheckedCertificates::check(
                    &shared.checked_certificates,
                    &certificate,
                    &shared.validators,
                );
                (shared, checked, certificate)
            })
            .await;
            let Ok((shared, checked, certificate)) = checked else {
                return;
            };
            match checked {
                Ok(checked) => {
                    if shared
                        .batches()
                        .add_certified(checked.reference, certificate)
                    {
                        shared.metrics.batch("certified_received");
                        shared.batch_ready.notify_one();
                    }
                    if let Some((message, _)) = awaiting.take(&checked.reference.digest) {
                        accept_certified(&shared, message, checked.reference);
                    }
                }
                Err(error) => warn!(%error, "a batch certificate is refused"),
            }
        }
        None => {}
    }
}

/// A batch message's author and digest, computed without verifying
/// anything (ids are hashes of the bytes).
fn batch_digest(message: &pb::Batch) -> Option<(yuchain_proto::PublicKey, yuchain_proto::Hash32)> {
    let author = yuchain_proto::PublicKey::from_slice(&message.author).ok()?;
    let ids: Vec<yuchain_proto::Hash32> = message
        .transactions
        .iter()
        .map(|signed| yuchain_proto::tx::tx_id(&signed.body, &signed.signature))
        .collect();
    let digest = batch::batch_digest(
        &author,
        yuchain_consensus::types::Epoch(message.epoch),
        message.sequence,
        &ids,
    );
    Some((author, digest))
}

/// Whether this node is connected to every validator that should verify
/// `author`'s batches at once (if one is not, its acknowledgement will not
/// come, and waiting for the certificate would only add latency).
fn first_verifiers_connected(
    shared: &Shared,
    author: yuchain_consensus::types::ValidatorId,
) -> bool {
    let connected = shared.network.connected_peers();
    batch::first_verifiers(&shared.validators, author)
        .into_iter()
        .filter(|validator| Some(*validator) != shared.me)
        .all(|validator| {
            shared
                .validators
                .key(validator)
                .is_ok_and(|key| connected.contains(&shared.peers.network_of(key)))
        })
}

/// The reference of a batch this node already holds.
fn held_reference(shared: &Shared, digest: &yuchain_proto::Hash32) -> Option<BatchRef> {
    shared
        .batches()
        .store
        .get(digest)
        .map(|batch| batch.reference)
}

/// Verifies a peer's batch (off the async runtime, a bounded number at
/// once), stores it durably and acknowledges it to its author.
fn check_and_acknowledge(shared: &Arc<Shared>, checks: &Checks, from: PeerKey, batch: pb::Batch) {
    // Verifying a batch takes all cores for a while: at most a few at
    // once, without holding up acknowledgements and certificates; past
    // what waits (bounded), batches are dropped (the author sends them
    // again).
    let Ok(permit) = Arc::clone(&checks.admitted).try_acquire_owned() else {
        shared.metrics.batch("check_queue_full");
        debug!(peer = %from.to_hex(), "too many batches being checked; one dropped");
        return;
    };
    let shared = Arc::clone(shared);
    let running = Arc::clone(&checks.running);
    tokio::spawn(async move {
        let _permit = permit;
        let Ok(running) = running.acquire().await else {
            return;
        };
        let checked = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || {
                Batch::check(batch, &shared.chain_id, &shared.validators)
            })
            .await
        };
        // Verification is done: let the next one use the cores while this
        // batch is written (writes in flight together share one fsync).
        drop(running);
        let stored = match checked {
            Ok(Ok(batch)) => {
                let shared = Arc::clone(&shared);
                tokio::task::spawn_blocking(move || {
                    // Durable before the acknowledgement leaves.
                    let record = batch::batch_record(&batch, crate::shared::now_ms());
                    shared
                        .store
                        .put_batch(&batch.reference.digest, &record)
                        .map(|()| batch)
                        .map_err(|error| {
                            batch::BatchError::Malformed(format!(
                                "not acknowledged: storing it failed: {error}"
                            ))
                        })
                })
                .await
            }
            Ok(Err(error)) => Ok(Err(error)),
            Err(error) => Err(error),
        };
        match stored {
            Ok(Ok(batch)) => acknowledge(&shared, from, batch),
            Ok(Err(error)) => {
                shared.metrics.batch("refused");
                warn!(peer = %from.to_hex(), %error, "a peer's batch is refused");
            }
            Err(_) => {}
        }
    });
}

/// Takes in a peer's batch whose certificate this node checked, without
/// verifying its signatures (the certificate attests them), and holds it in
/// memory for execution.
fn accept_certified(shared: &Arc<Shared>, message: pb::Batch, reference: BatchRef) {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        match Batch::check_certified(message, &shared.chain_id, &shared.validators, &reference) {
            Ok(batch) => {
                shared.metrics.batch("attested");
                shared.batches().store.insert(batch);
            }
            Err(error) => warn!(%error, "a certified batch does not match its certificate"),
        }
    });
}

/// Acknowledges again a batch this node holds (and stored before its first
/// acknowledgement).
fn acknowledge_held(shared: &Shared, from: PeerKey, reference: &BatchRef) {
    let Some(me) = shared.me else {
        return;
    };
    let author = shared.peers.network_of(&reference.author);
    if author != from {
        return;
    }
    let ack = pb::BatchMessage {
        kind: Some(pb::batch_message::Kind::Ack(batch::acknowledge(
            &shared.key,
            me,
            reference,
        ))),
    }
    .encode_to_vec();
    if let Err(error) = shared.network.send(author, Channel::Batches, ack) {
        debug!(%error, "an acknowledgement was not sent");
    }
}

/// Stores a checked peer batch and acknowledges it to its author.
fn acknowledge(shared: &Shared, from: PeerKey, batch: Batch) {
    let Some(me) = shared.me else {
        return;
    };
    let author = shared.peers.network_of(&batch.reference.author);
    if author != from {
        debug!("a batch relayed by someone other than its author");
    }
    let reference = batch.reference;
    shared.batches().store.insert(batch);
    let ack = pb::BatchMessage {
        kind: Some(pb::batch_message::Kind::Ack(batch::acknowledge(
            &shared.key,
            me,
            &reference,
        ))),
    }
    .encode_to_vec();
    shared.metrics.batch("acknowledged");
    if let Err(error) = shared.network.send(author, Channel::Batches, ack) {
        debug!(%error, "an acknowledgement was not sent");
    }
}

/// An own batch got its certificate: offer it to the next leaders.
fn certified(shared: &Shared, reference: BatchRef, certificate: pb::BatchCertificate) {
    let message = pb::BatchMessage {
        kind: Some(pb::batch_message::Kind::Certificate(certificate.clone())),
    }
    .encode_to_vec();
    if shared.batches().add_certified(reference, certificate) {
        shared.metrics.batch("certified");
        shared.batch_ready.notify_one();
    }
    shared.network.broadcast(Channel::Batches, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_proto::Hash32;

    fn message(size: usize) -> pb::Batch {
        pb::Batch {
            author: vec![1; 32],
            epoch: 0,
            sequence: 0,
            transactions: vec![pb::SignedTransaction {
                body: vec![7; size],
                signature: vec![0; 64],
            }],
        }
    }

    #[test]
    fn batches_waiting_for_certificates_are_bounded_and_fall_back_in_order() {
        let mut awaiting = Awaiting::default();
        let peer = PeerKey([2; 32]);
        awaiting.insert(Hash32([1; 32]), message(10), peer);
        awaiting.insert(Hash32([2; 32]), message(10), peer);
        awaiting.insert(Hash32([2; 32]), message(10), peer);
        assert_eq!(awaiting.batches.len(), 2);
        // A certificate takes its batch out; nothing is overdue yet.
        assert!(awaiting.take(&Hash32([1; 32])).is_some());
        assert!(awaiting.take(&Hash32([1; 32])).is_none());
        assert!(awaiting.take_overdue().is_empty());
        // Past the byte bound the oldest go first.
        let big = AWAITING_BYTES_MAX / 2;
        awaiting.insert(Hash32([3; 32]), message(big), peer);
        awaiting.insert(Hash32([4; 32]), message(big), peer);
        assert!(!awaiting.batches.contains_key(&Hash32([2; 32])));
        assert!(!awaiting.batches.contains_key(&Hash32([3; 32])));
        assert!(awaiting.batches.contains_key(&Hash32([4; 32])));
        assert!(awaiting.bytes <= AWAITING_BYTES_MAX);
        // Once the wait is over, what is left is verified by this node.
        for (digest, entry) in awaiting.batches.iter_mut() {
            assert_eq!(*digest, Hash32([4; 32]));
            entry.2 = Instant::now() - ATTESTATION_WAIT;
        }
        assert_eq!(awaiting.take_overdue().len(), 1);
        assert!(awaiting.batches.is_empty() && awaiting.bytes == 0);
    }
}
