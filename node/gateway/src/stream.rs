//! `StreamBlocks` and `StreamEvents`: one producer task per stream reads
//! committed blocks from the backend in height order and hands them to the
//! client through a channel of [`STREAM_BUFFER`] messages. A client that
//! reads slowly fills its channel (and its HTTP/2 window), and the producer
//! waits: a slow client holds at most that much of the node's memory, and
//! only its own stream slows down. At most `streams_max` streams run at once
//! (RESOURCE_EXHAUSTED, STREAMS_FULL, beyond).
//!
//! Memory is bounded in bytes too: a message waiting in any stream's
//! channel holds its encoded size of one budget shared by all streams
//! (`stream_bytes_max`, 256 MiB), released when the message leaves for the
//! connection; a producer waits for room before it queues. A client that
//! takes nothing for `stream_stall_timeout` (60 s) while its stream has
//! something to send loses the stream (RESOURCE_EXHAUSTED, STREAM_STALLED,
//! with the height to resume from), so stalled clients cannot keep the
//! budget or the slots.
//!
//! At the head, the producer waits for the next durable block. When the
//! gateway shuts down every stream ends with UNAVAILABLE (SHUTTING_DOWN)
//! and the height to resume from, so graceful shutdown is never held up by
//! a stream. A stream's last word (an error, or where to resume) follows
//! whatever it had queued and never waits for room.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_stream::Stream;
use tonic::Status;
use yuchain_proto::pb;

use crate::backend::Backend;
use crate::error::{ErrorKind, SubmitError};

/// Messages buffered per stream, beyond what HTTP/2 flow control holds.
pub const STREAM_BUFFER: usize = 2;
/// How long a producer waits at the head before it looks again (and
/// notices a client that went away).
const HEAD_WAIT: Duration = Duration::from_secs(5);
/// The default budget of bytes queued in all streams' channels.
pub const STREAM_BYTES_MAX_DEFAULT: usize = 256 << 20;
/// The default time a client may take nothing while its stream has
/// something to send.
pub const STREAM_STALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// The budget's unit: a message holds its size rounded up to KiB.
const BUDGET_UNIT: usize = 1024;

/// The streams' shared limits and the shutdown signal.
#[derive(Clone, Debug)]
pub(crate) struct Streams {
    permits: Arc<Semaphore>,
    /// The byte budget, in [`BUDGET_UNIT`]s.
    bytes: Arc<Semaphore>,
    bytes_units: u32,
    stall_timeout: Duration,
    closing: Arc<watch::Sender<bool>>,
}

impl Streams {
    pub(crate) fn new(max: usize, bytes_max: usize, stall_timeout: Duration) -> Streams {
        let units = u32::try_from(bytes_max.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX);
        Streams {
            permits: Arc::new(Semaphore::new(max)),
            bytes: Arc::new(Semaphore::new(units as usize)),
            bytes_units: units,
            stall_timeout,
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Takes room for a message of `bytes` (a message larger than the whole
    /// budget takes all of it); `None` once the budget is closed.
    async fn room(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1))
            .unwrap_or(u32::MAX)
            .min(self.bytes_units);
        Arc::clone(&self.bytes).acquire_many_owned(units).await.ok()
    }

    /// Ends every stream (and refuses new ones).
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn admit(&self) -> Result<(OwnedSemaphorePermit, watch::Receiver<bool>), Status> {
        let closing = self.closing.subscribe();
        if *closing.borrow() {
            return Err(shutting_down(None).into());
        }
        let permit = Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            Status::from(SubmitError::new(
                ErrorKind::ResourceExhausted,
                "STREAMS_FULL",
                "this node serves as many streams as it allows; retry later or stream from \
                 another node",
            ))
        })?;
        Ok((permit, closing))
    }
}

fn stalled(resume: String, timeout: Duration) -> SubmitError {
    SubmitError::new(
        ErrorKind::ResourceExhausted,
        "STREAM_STALLED",
        format!(
            "this stream took nothing for {} ms while it had data to send, and was ended so it \
             holds no memory; reconnect and resume {resume}",
            timeout.as_millis()
        ),
    )
}

fn shutting_down(resume: Option<String>) -> SubmitError {
    SubmitError::new(
        ErrorKind::Unavailable,
        "SHUTTING_DOWN",
        match resume {
            Some(resume) => format!(
                "the node is shutting down; reconnect (to it or another node) and resume {resume}"
            ),
            None => "the node is shutting down; stream from another node".to_string(),
        },
    )
}

/// Resolves once the gateway closes, or is gone.
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Whether the gateway closed (or is gone).
fn is_closed(closing: &watch::Receiver<bool>) -> bool {
    *closing.borrow() || closing.has_changed().is_err()
}

/// A stream's message with its share of the byte budget and its block's
/// height.
type Queued<T> = (T, OwnedSemaphorePermit, u64);

/// One stream's queue, shared by its producer and its [`Outgoing`] end.
/// Unlike a channel, the producer can empty it: a stalled stream's queued
/// messages (and their budget) are dropped at once, not when the client
/// reads or hangs up.
struct Queue<T> {
    state: Mutex<QueueState<T>>,
    /// Signalled when the client takes a message or goes away.
    space: Notify,
}

struct QueueState<T> {
    items: VecDeque<Queued<T>>,
    /// The consumer's waker, while it waits for a message.
    waker: Option<Waker>,
    /// Set when the producer is done: what the client gets after `items`.
    last_word: Option<Status>,
    done: bool,
    /// The client dropped its end.
    gone: bool,
    /// When the client last took a message (or the stream began).
    taken: Instant,
}

impl<T> Queue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the stream: `status` follows what is queued, or, with `drop`,
    /// replaces it.
    fn finish(&self, status: Option<Status>, drop_queued: bool) {
        let mut state = self.lock();
        if drop_queued {
            state.items.clear();
        }
        state.last_word = status;
        state.done = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

/// What a client receives: the producer's queued messages, then its last
/// word if it left one. A message's budget is released as it leaves.
pub struct Outgoing<T> {
    queue: Arc<Queue<T>>,
}

impl<T> Stream for Outgoing<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.queue.lock();
        if let Some((item, _room, _height)) = state.items.pop_front() {
            state.taken = Instant::now();
            drop(state);
            self.queue.space.notify_one();
            return Poll::Ready(Some(Ok(item)));
        }
        if state.done {
            return Poll::Ready(state.last_word.take().map(Err));
        }
        state.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for Outgoing<T> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.gone = true;
        state.items.clear();
        drop(state);
        self.queue.space.notify_one();
    }
}

impl<T> std::fmt::Debug for Outgoing<T> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Outgoing").finish_non_exhaustive()
    }
}

/// How one message's delivery ended.
enum Delivery {
    Queued,
    ClientGone,
    Closing,
    Stalled,
}

/// Runs a producer: for each height from `from`, `items(block)` gives the
/// messages to send. Ends when the client goes away, on a backend error, on
/// a stall, or at shutdown.
fn produce<T, F>(
    backend: Arc<dyn Backend>,
    streams: &Streams,
    from: u64,
    items: F,
    resume: fn(u64) -> String,
) -> Result<Outgoing<T>, Status>
where
    T: prost::Message + Send + 'static,
    F: Fn(pb::StreamBlocksResponse) -> Vec<T> + Send + 'static,
{
    let (permit, mut closing) = streams.admit()?;
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState {
            items: VecDeque::with_capacity(STREAM_BUFFER),
            waker: None,
            last_word: None,
            done: false,
            gone: false,
            taken: Instant::now(),
        }),
        space: Notify::new(),
    });
    let outgoing = Outgoing {
        queue: Arc::clone(&queue),
    };
    let streams = streams.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut height = from;
        loop {
            let block = tokio::select! {
                block = backend.block_contents(height) => block,
                () = closed(&mut closing) => break,
            };
            match block {
                Ok(Some(block)) => {
                    let mut whole = true;
                    for item in items(block) {
                        match deliver(&streams, &queue, &mut closing, item, height).await {
                            Delivery::Queued => {}
                            Delivery::ClientGone => return,
                            Delivery::Closing => {
                                whole = false;
                                break;
                            }
                            Delivery::Stalled => {
                                // The queued messages are dropped: resume
                                // from the first of them.
                                let first = queue.lock().items.front().map(|queued| queued.2);
                                let from = first.unwrap_or(height);
                                let status = stalled(resume(from), streams.stall_timeout);
                                queue.finish(Some(status.into()), true);
                                return;
                            }
                        }
                    }
                    if whole {
                        let Some(next) = height.checked_add(1) else {
                            queue.finish(None, false);
                            return;
                        };
                        height = next;
                    }
                    if is_closed(&closing) {
                        break;
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = backend.wait_durable(height, HEAD_WAIT) => {}
                        () = closed(&mut closing) => break,
                        () = queue.space.notified() => {}
                    }
                    if queue.lock().gone {
                        return;
                    }
                }
                Err(error) => {
                    queue.finish(Some(error.into()), false);
                    return;
                }
            }
        }
        // The gateway is closing: say where to resume, after what is queued.
        queue.finish(Some(shutting_down(Some(resume(height))).into()), false);
    });
    Ok(outgoing)
}

/// Queues one message: waits for room in the byte budget, then in the
/// stream's queue. The stream is stalled when it has messages queued that
/// the client has not taken for the stall timeout (waiting for room while
/// the client has taken everything is not the client's doing, and is not a
/// stall).
async fn deliver<T: prost::Message>(
    streams: &Streams,
    queue: &Queue<T>,
    closing: &mut watch::Receiver<bool>,
    item: T,
    height: u64,
) -> Delivery {
    let stalled = || {
        let state = queue.lock();
        !state.items.is_empty() && state.taken.elapsed() >= streams.stall_timeout
    };
    let check = (streams.stall_timeout / 4).max(Duration::from_millis(10));
    let bytes = item.encoded_len();
    let room = streams.room(bytes);
    tokio::pin!(room);
    let room = loop {
        tokio::select! {
            room = &mut room => match room {
                Some(room) => break room,
                None => return Delivery::Closing,
            },
            () = closed(closing) => return Delivery::Closing,
            () = tokio::time::sleep(check) => {
                if queue.lock().gone {
                    return Delivery::ClientGone;
                }
                if stalled() {
                    return Delivery::Stalled;
                }
            }
        }
    };
    let mut item = Some((item, room, height));
    loop {
        {
            let mut state = queue.lock();
            if state.gone {
                return Delivery::ClientGone;
            }
            if state.items.len() < STREAM_BUFFER {
                if let Some(item) = item.take() {
                    state.items.push_back(item);
                }
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
                return Delivery::Queued;
            }
        }
        tokio::select! {
            () = queue.space.notified() => {}
            () = closed(closing) => return Delivery::Closing,
            () = tokio::time::sleep(check) => {
                if stalled() {
                    return Delivery::Stalled;
                }
            }
        }
    }
}

/// `StreamBlocks` from `from_height`.
pub(crate) fn blocks(
    backend: Arc<dyn Backend>,
    streams: &Streams,
    from_height: u64,
) -> Result<Outgoing<pb::StreamBlocksResponse>, Status> {
    produce(
        backend,
        streams,
        from_height,
        |block| vec![block],
        |height| format!("from_height {height}"),
    )
}

/// `StreamEvents` from (`from_height`, `from_index`).
pub(crate) fn events(
    backend: Arc<dyn Backend>,
    streams: &Streams,
    from_height: u64,
    from_index: u32,
) -> Result<Outgoing<pb::StreamEventsResponse>, Status> {
    produce(
        backend,
        streams,
        from_height,
        move |block| {
            let skip = if block.height == from_height {
                from_index as usize
            } else {
                0
            };
            let (timestamp_ms, transactions) = match block.block {
                Some(ledger) => (
                    ledger.header.map_or(0, |header| header.timestamp_ms),
                    ledger.transactions,
                ),
                None => (0, Vec::new()),
            };
            transactions
                .into_iter()
                .zip(block.receipts)
                .enumerate()
                .skip(skip)
                .map(|(index, (transaction, receipt))| pb::StreamEventsResponse {
                    height: block.height,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    tx_id: receipt.tx_id.clone(),
                    transaction: Some(transaction),
                    receipt: Some(receipt),
                    timestamp_ms,
                })
                .collect()
        },
        |height| format!("from_height {height}, from_index 0 (skip what you already have)"),
    )
}
