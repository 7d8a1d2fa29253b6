//! yuchain's network adapter: libp2p over TCP with noise and yamux, on tokio.
//!
//! It moves bytes between a permissioned set of peers and knows nothing of
//! payments or consensus. It depends on no other workspace crate (and never
//! on RocksDB or tonic), so it builds and tests on its own.
//!
//! # Use
//!
//! [`spawn`] starts the swarm task on the current tokio runtime and returns
//! a cheap-to-clone [`NetworkHandle`] and a bounded receiver of
//! [`NetworkEvent`]s. Messages go out with [`NetworkHandle::send`] and
//! [`NetworkHandle::broadcast`] (never blocking: a full queue is an error),
//! fetches with [`NetworkHandle::request`]; inbound requests arrive as
//! [`NetworkEvent::Request`] with a [`Responder`].
//!
//! ```
//! # async fn demo() -> Result<(), yuchain_network::NetworkError> {
//! use yuchain_network::{Channel, Limits, NetworkConfig, NetworkKey, spawn};
//!
//! let config = NetworkConfig {
//!     key: NetworkKey::from_seed([7; 32]),
//!     listen: "127.0.0.1:0".parse().expect("a socket address"),
//!     dial: Vec::new(),
//!     allowed: Vec::new(),
//!     limits: Limits::default(),
//! };
//! let (network, mut events) = spawn(config).await?;
//! let sent = network.broadcast(Channel::Consensus, b"vote".to_vec());
//! assert_eq!(sent, 0, "no peer is connected yet");
//! network.shutdown().await;
//! # drop(events.try_recv());
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()
//! #     .expect("a runtime").block_on(demo()).expect("the demo runs");
//! ```
//!
//! # Identity and the permission check
//!
//! A peer is its ed25519 network public key ([`PeerKey`]); its libp2p
//! `PeerId` is derived from it, and the noise handshake proves the remote
//! holds the matching secret. The allow-list is the configured `allowed`
//! keys plus the `dial` list, replaced at an epoch change with
//! [`NetworkHandle::set_allowed`] (which disconnects peers no longer on
//! it). A first behaviour in the swarm, the gate, checks every connection
//! in `handle_established_inbound_connection` and
//! `handle_established_outbound_connection`, that is right after noise has
//! authenticated the key and before any protocol handler exists, so no
//! stream can be opened and no application byte read on a refused
//! connection. A refusal is logged (`warn`, with the `PeerId`) and counted
//! in [`NetworkStats::refused_connections`]; the remote sees the connection
//! close. Reader tasks check the allow-list again before each message, so
//! nothing from a peer removed by `set_allowed` surfaces while its
//! connection is being closed.
//!
//! # Protocols and framing
//!
//! * `/yuchain/msg/1`, one-way messages (libp2p-stream). Per connected peer
//!   and per [`Channel`] there is one long-lived yamux stream. The opener
//!   sends one byte naming the lane (0 Consensus, 1 Batches); the receiver
//!   echoes it once its reader has taken the stream, and only then are
//!   frames sent: a 4-byte big-endian length and that many bytes. The echo
//!   matters: libp2p-stream hands inbound streams over through a single
//!   slot and drops a stream that arrives while the slot is taken, so
//!   without it a writer could write into a stream nobody reads. An
//!   unknown tag closes the stream and is counted in `protocol_errors`; a
//!   writer whose tag is not echoed within 5 s retries with backoff.
//! * `/yuchain/fetch/1`, request-response (libp2p `request_response`), one
//!   frame of the same format each way on a fresh stream, with a timeout.
//!
//! Why streams rather than `request_response` with an empty ack for
//! messages: a message then costs one frame on an open stream instead of a
//! stream negotiation and an acknowledgement round trip; order within a
//! lane is kept; and yamux's per-stream flow control gives backpressure
//! from a slow receiver instead of unbounded stream churn. If a stream
//! fails, its writer reopens one (the messages in the failed write are
//! counted as `dropped_send_failed`), so a duplicate connection closing
//! under a stream is survived.
//!
//! Delivery is best effort, as on any network: messages queued for a peer
//! that disconnects, or written to a stream that fails, are lost (the
//! latter counted as `dropped_send_failed`); within one lane and one
//! stream, order is kept. A peer's first messages can reach the events
//! channel before its [`NetworkEvent::PeerConnected`], since readers and
//! the swarm task deliver independently.
//!
//! # Lanes and priority
//!
//! Consensus and Batches each have their own bounded outbound queue per
//! peer, their own writer task and their own stream, so a vote never waits
//! behind a queued batch or behind a half-written 4 MiB frame: yamux
//! interleaves the two streams' data frames on the connection. Inbound,
//! each lane has its own reader task and message-rate bucket.
//!
//! # Limits (see [`Limits`]; every queue is bounded)
//!
//! * Sizes: a frame's length is checked before its buffer is allocated.
//!   An outbound message over `message_bytes_max` is refused
//!   ([`SendError::TooBig`]); an inbound one is read through a small
//!   buffer, discarded and counted (`dropped_too_big`), and the stream
//!   stays in sync. Requests and responses over their limits fail the
//!   request.
//! * Outbound queues: `outbound_queue` messages per peer per lane; when
//!   full, `send` returns [`SendError::Full`] and the message is dropped.
//! * Inbound rate: token buckets per peer, messages per second per lane and
//!   bytes per second over both lanes, each with one second of burst.
//!   Excess is dropped and counted (`dropped_rate_limited`), so a flooding
//!   peer costs others nothing but its share of the events channel.
//! * Events: the receiver holds `inbound_queue` events. Message readers
//!   wait for room (backpressure through yamux onto the sender); the swarm
//!   task never waits: connection and request events wait in a side queue
//!   of the same bound, beyond which they are dropped and counted.
//! * Requests: `request_timeout` on both sides (an inbound request the
//!   application has not answered in time is answered with an error), at
//!   most `concurrent_requests_per_peer` inbound requests served at once per
//!   peer (more are refused with an error and counted).
//! * Connections: at most two per peer (both sides may dial at once; both
//!   links are kept and used), at most 64 unauthenticated handshakes.
//!
//! # Connections
//!
//! Dial-list peers are dialed at start and redialed whenever no connection
//! is open, with exponential backoff from 100 ms to 5 s, forever; a link
//! that stayed up 5 s resets the backoff. Connections never time out for
//! idleness (the idle timeout is a year). [`NetworkEvent::PeerConnected`]
//! fires with a peer's first connection, [`NetworkEvent::PeerDisconnected`]
//! when its last closes.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod error;
mod framing;
mod gate;
mod key;
mod lanes;
mod network;
mod rate;
mod stats;

pub use config::{Channel, Limits, NetworkConfig, PeerAddress};
pub use error::{NetworkError, RequestError, Result, SendError};
pub use framing::{FETCH_PROTOCOL, MESSAGE_PROTOCOL};
pub use key::{NetworkKey, PeerKey};
pub use network::{NetworkEvent, NetworkHandle, Responder, spawn};
pub use stats::{ChannelStats, NetworkStats};
