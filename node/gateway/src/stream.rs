//! `StreamBlocks` and `StreamEvents`: one producer task per stream reads
//! committed blocks from the backend in height order and hands them to the
//! client through a channel of [`STREAM_BUFFER`] messages. A client that
//! reads slowly fills its channel (and its HTTP/2 window), and the producer
//! waits: a slow client holds at most that much of the node's memory, and
//! only its own stream slows down. At most `streams_max` streams run at once
//! (RESOURCE_EXHAUSTED, STREAMS_FULL, beyond). At the head, the producer
//! waits for the next durable block. When the gateway shuts down every
//! stream ends with UNAVAILABLE (SHUTTING_DOWN) and the height to resume
//! from, so graceful shutdown is never held up by a stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use yuchain_proto::pb;

use crate::backend::Backend;
use crate::error::{ErrorKind, SubmitError};

/// Messages buffered per stream, beyond what HTTP/2 flow control holds.
pub const STREAM_BUFFER: usize = 2;
/// How long a producer waits at the head before it looks again (and
/// notices a client that went away).
const HEAD_WAIT: Duration = Duration::from_secs(5);
/// How long a stream's last message (an error, or where to resume after a
/// shutdown) waits for room in a client's buffer before it is dropped.
const LAST_WORD_WAIT: Duration = Duration::from_secs(1);

/// The streams' shared limit and the shutdown signal.
#[derive(Clone, Debug)]
pub(crate) struct Streams {
    permits: Arc<Semaphore>,
    closing: Arc<watch::Sender<bool>>,
}

impl Streams {
    pub(crate) fn new(max: usize) -> Streams {
        Streams {
            permits: Arc::new(Semaphore::new(max)),
            closing: Arc::new(watch::Sender::new(false)),
        }
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

/// Runs a producer: for each height from `from`, `items(block)` gives the
/// messages to send. Ends when the client goes away, on a backend error, or
/// at shutdown.
fn produce<T, F>(
    backend: Arc<dyn Backend>,
    streams: &Streams,
    from: u64,
    items: F,
    resume: fn(u64) -> String,
) -> Result<ReceiverStream<Result<T, Status>>, Status>
where
    T: Send + 'static,
    F: Fn(pb::StreamBlocksResponse) -> Vec<T> + Send + 'static,
{
    let (permit, mut closing) = streams.admit()?;
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
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
                        tokio::select! {
                            sent = sender.send(Ok(item)) => if sent.is_err() { return },
                            () = closed(&mut closing) => { whole = false; break }
                        }
                    }
                    if whole {
                        let Some(next) = height.checked_add(1) else {
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
                        () = sender.closed() => return,
                    }
                }
                Err(error) => {
                    // Never wait long on a client that does not read.
                    let _ =
                        tokio::time::timeout(LAST_WORD_WAIT, sender.send(Err(error.into()))).await;
                    return;
                }
            }
        }
        // The gateway is closing: say where to resume, if the client takes
        // it soon (a client that stopped reading must not hold the shutdown
        // up).
        let last = Err(shutting_down(Some(resume(height))).into());
        let _ = tokio::time::timeout(LAST_WORD_WAIT, sender.send(last)).await;
    });
    Ok(ReceiverStream::new(receiver))
}

/// `StreamBlocks` from `from_height`.
pub(crate) fn blocks(
    backend: Arc<dyn Backend>,
    streams: &Streams,
    from_height: u64,
) -> Result<ReceiverStream<Result<pb::StreamBlocksResponse, Status>>, Status> {
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
) -> Result<ReceiverStream<Result<pb::StreamEventsResponse, Status>>, Status> {
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
