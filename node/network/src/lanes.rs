//! The message lanes: per peer and per channel, a writer task that drains
//! the outbound queue onto a stream of its own, and per inbound stream a
//! reader task that checks sizes and rate limits and forwards messages.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    Channel, NetworkEvent, PeerKey,
    framing::{MESSAGE_PROTOCOL, read_body, read_length, skip_body, write_frame},
    network::{BACKOFF_MAX, BACKOFF_MIN, Shared, lock},
    rate::PeerBuckets,
    stats::{add, bump},
};

/// How long a writer waits for the receiver to acknowledge a new lane stream.
const LANE_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a lane on a fresh stream: sends the lane tag and waits for the
/// receiver to echo it, so no frame is written into a stream that the
/// receiver dropped (libp2p-stream drops inbound streams it cannot hand
/// over at once).
async fn open_lane(mut stream: Stream, channel: Channel) -> std::io::Result<Stream> {
    stream.write_all(&[channel.tag()]).await?;
    stream.flush().await?;
    let mut echo = [0u8; 1];
    tokio::time::timeout(LANE_OPEN_TIMEOUT, stream.read_exact(&mut echo))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    if echo[0] != channel.tag() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("lane tag {} echoed as {}", channel.tag(), echo[0]),
        ));
    }
    Ok(stream)
}

/// Drains one peer's outbound queue for one lane onto a stream of its own,
/// reopening the stream if it fails, until the peer disconnects.
pub(crate) async fn write_lane(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    key: PeerKey,
    channel: Channel,
    mut queue: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let counters = shared.counters.lane(channel);
    let size_bytes_max = shared.limits.message_bytes_max;
    let mut retry = BACKOFF_MIN;
    loop {
        let opened = match control.open_stream(peer, MESSAGE_PROTOCOL).await {
            Ok(stream) => open_lane(stream, channel).await,
            Err(error) => Err(std::io::Error::other(error)),
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                if queue.is_closed() {
                    return;
                }
                tracing::debug!(%key, ?channel, %error, "cannot open a message stream; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        retry = BACKOFF_MIN;
        loop {
            let Some(bytes) = queue.recv().await else {
                // The peer disconnected or the network stopped.
                let _ = stream.close().await;
                return;
            };
            match write_frame(&mut stream, &bytes, size_bytes_max).await {
                Ok(()) => {
                    bump(&counters.messages_out);
                    add(&counters.bytes_out, bytes.len());
                }
                Err(error) => {
                    bump(&counters.dropped_send_failed);
                    tracing::debug!(%key, ?channel, %error, "message stream failed; reopening");
                    break;
                }
            }
        }
    }
}

/// Takes every inbound message stream and starts its reader. A stream can
/// arrive before the swarm task has seen its connection established, so it
/// is judged by the allow-list alone.
pub(crate) async fn accept_streams(
    mut incoming: libp2p_stream::IncomingStreams,
    shared: Arc<Shared>,
    events: mpsc::Sender<NetworkEvent>,
) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = incoming.next() => {
                let Some((peer, stream)) = accepted else {
                    return;
                };
                let Some(key) = PeerKey::from_peer_id(&peer).filter(|_| shared.is_allowed(&peer))
                else {
                    continue;
                };
                let limits = shared.limits;
                let buckets = lock(&shared.buckets)
                    .entry(peer)
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(PeerBuckets::new(&limits, Instant::now())))
                    })
                    .clone();
                readers.spawn(read_lane(stream, peer, key, buckets, shared.clone(), events.clone()));
            }
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

/// Reads one inbound message stream: a lane tag, then frames. Oversized
/// frames are skipped unbuffered, frames over the rate limits dropped, and
/// the rest delivered. Awaiting room in the events channel pushes back on
/// the sender through yamux flow control instead of dropping.
async fn read_lane(
    mut stream: Stream,
    peer: PeerId,
    key: PeerKey,
    buckets: Arc<Mutex<PeerBuckets>>,
    shared: Arc<Shared>,
    events: mpsc::Sender<NetworkEvent>,
) {
    let mut tag = [0u8; 1];
    if stream.read_exact(&mut tag).await.is_err() {
        return;
    }
    let Some(channel) = Channel::from_tag(tag[0]) else {
        bump(&shared.counters.protocol_errors);
        tracing::warn!(%key, tag = tag[0], "message stream with an unknown lane tag; closed");
        return;
    };
    // Echo the tag: it tells the writer this stream is being read.
    if stream.write_all(&tag).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let counters = shared.counters.lane(channel);
    let size_bytes_max = shared.limits.message_bytes_max;
    loop {
        let length = match read_length(&mut stream).await {
            Ok(Some(length)) => length,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%key, ?channel, %error, "message stream closed");
                return;
            }
        };
        if length > size_bytes_max {
            bump(&counters.dropped_too_big);
            tracing::debug!(%key, ?channel, length, size_bytes_max, "dropped an oversized message");
            if skip_body(&mut stream, length).await.is_err() {
                return;
            }
            continue;
        }
        let Ok(bytes) = read_body(&mut stream, length).await else {
            return;
        };
        if !shared.is_allowed(&peer) {
            // Removed from the allow-list; the swarm task disconnects it.
            return;
        }
        if !lock(&buckets).admit(channel, length, Instant::now()) {
            bump(&counters.dropped_rate_limited);
            continue;
        }
        bump(&counters.messages_in);
        add(&counters.bytes_in, length);
        let event = NetworkEvent::Message {
            from: key,
            channel,
            bytes,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}
