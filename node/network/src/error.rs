//! The crate's errors: one enum per operation that can fail, each message
//! naming what was wrong and the values involved.

use crate::{Channel, PeerKey};

/// A `Result` whose error is [`NetworkError`].
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// Starting the network, or reading keys and addresses, failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address from the configuration.
        address: std::net::SocketAddr,
        /// What the operating system or libp2p said.
        reason: String,
    },
    /// A peer key is not a valid hex-encoded ed25519 public key.
    #[error("invalid peer key {key:?}: {reason}")]
    BadKey {
        /// The key as given (hex, or the hex of the 32 bytes).
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A dial address is not `host:port` or its host name does not resolve.
    #[error("invalid peer address {address:?} for peer {peer}: {reason}")]
    BadAddress {
        /// The peer the address belongs to (hex).
        peer: String,
        /// The address as given.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TCP, noise or yamux transport could not be built.
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
}

/// A message could not be queued by [`crate::NetworkHandle::send`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// There is no open connection to the peer.
    #[error("peer {} is not connected", .0.to_hex())]
    NotConnected(PeerKey),
    /// The peer's outbound queue for this channel is full; the message was dropped.
    #[error("outbound {channel:?} queue to peer {} is full ({capacity} messages); message dropped", .peer.to_hex())]
    Full {
        /// The peer.
        peer: PeerKey,
        /// The lane whose queue is full.
        channel: Channel,
        /// The queue's capacity in messages.
        capacity: usize,
    },
    /// The message is larger than `Limits::message_bytes_max`.
    #[error("message of {size_bytes} bytes is larger than the limit of {size_bytes_max} bytes")]
    TooBig {
        /// The message's size.
        size_bytes: usize,
        /// The configured limit.
        size_bytes_max: usize,
    },
}

/// A request made with [`crate::NetworkHandle::request`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// There is no open connection to the peer.
    #[error("peer {} is not connected", .0.to_hex())]
    NotConnected(PeerKey),
    /// The request is larger than `Limits::request_bytes_max`.
    #[error("request of {size_bytes} bytes is larger than the limit of {size_bytes_max} bytes")]
    TooBig {
        /// The request's size.
        size_bytes: usize,
        /// The configured limit.
        size_bytes_max: usize,
    },
    /// No response arrived within `Limits::request_timeout`.
    #[error("request to peer {} timed out after {timeout:?}", .peer.to_hex())]
    Timeout {
        /// The peer asked.
        peer: PeerKey,
        /// The configured timeout.
        timeout: std::time::Duration,
    },
    /// The peer refused or failed the request (it dropped the responder,
    /// was busy, closed the connection, or sent an oversized response).
    #[error("request to peer {} failed: {reason}", .peer.to_hex())]
    Failed {
        /// The peer asked.
        peer: PeerKey,
        /// What libp2p reported.
        reason: String,
    },
    /// The network task has stopped.
    #[error("the network has shut down")]
    Shutdown,
}
