//! The batch task of a validator: cuts admitted transactions into batches
//! and broadcasts them; checks and acknowledges the batches of others;
//! gathers acknowledgements of its own into availability certificates and
//! broadcasts those, so any leader can order them.

use std::collections::VecDeque;
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
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checks = Checks {
        admitted: Arc::new(Semaphore::new(CHECKS_IN_FLIGHT)),
        running: Arc::new(Semaphore::new(CHECKS_RUNNING)),
    };
    let mut uncertified: VecDeque<(BatchRef, Instant, usize)> = VecDeque::new();
    let mut last_rebroadcast = Instant::now();
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
                handle(&shared, &checks, event, &mut uncertified).await;
            }
            _ = ticker.tick() => {
                while let Some(reference) = cut(&shared, me) {
                    uncertified.push_back((reference, Instant::now(), 0));
                    if uncertified.len() > UNCERTIFIED_MAX {
                        uncertified.pop_front();
                    }
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
            // Verifying a batch takes all cores for a while: at most a few at
            // once; the rest wait in the inbox (bounded).
            // A batch already held (sent again by its author, whose
            // acknowledgement got lost) is acknowledged again at once.
            if let Some(reference) = held_reference(shared, &batch) {
                acknowledge_held(shared, event.from, &reference);
                return;
            }
            // Verifying a batch takes all cores for a while: at most a few at
            // once, without holding up acknowledgements and certificates;
            // past what waits (bounded), batches are dropped (the author
            // sends them again).
            let Ok(permit) = Arc::clone(&checks.admitted).try_acquire_owned() else {
                shared.metrics.batch("check_queue_full");
                debug!(peer = %event.from.to_hex(), "too many batches being checked; one dropped");
                return;
            };
            let shared = Arc::clone(shared);
            let from = event.from;
            let running = Arc::clone(&checks.running);
            tokio::spawn(async move {
                let _permit = permit;
                let Ok(_running) = running.acquire().await else {
                    return;
                };
                let checked = {
                    let shared = Arc::clone(&shared);
                    tokio::task::spawn_blocking(move || {
                        let batch = Batch::check(batch, &shared.chain_id, &shared.validators)?;
                        // Durable before the acknowledgement leaves.
                        let record = batch::batch_record(&batch, crate::shared::now_ms());
                        shared
                            .store
                            .put_batch(&batch.reference.digest, &record)
                            .map_err(|error| {
                                batch::BatchError::Malformed(format!(
                                    "not acknowledged: storing it failed: {error}"
                                ))
                            })?;
                        Ok::<Batch, batch::BatchError>(batch)
                    })
                    .await
                };
                match checked {
                    Ok(Ok(batch)) => acknowledge(&shared, from, batch),
                    Ok(Err(error)) => {
                        shared.metrics.batch("refused");
                        warn!(peer = %from.to_hex(), %error, "a peer's batch is refused");
                    }
                    Err(_) => {}
                }
            });
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
                let checked = batch::check_certificate(&certificate, &shared.validators);
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
                }
                Err(error) => warn!(%error, "a batch certificate is refused"),
            }
        }
        None => {}
    }
}

/// The reference of a batch this node already holds, computed from the
/// message without verifying anything (ids are hashes of the bytes).
fn held_reference(shared: &Shared, message: &pb::Batch) -> Option<BatchRef> {
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
    shared
        .batches()
        .store
        .get(&digest)
        .map(|batch| batch.reference)
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
