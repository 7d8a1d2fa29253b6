//! What `spawn` is given: the key, the listening address, the peers to keep
//! connected, the allow-list and the limits.

use std::time::Duration;

use crate::{NetworkKey, PeerKey};

/// One message lane; each has its own bounded queues so batch traffic never
/// delays consensus.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Channel {
    /// Consensus messages (proposals, votes, timeouts): small and urgent.
    Consensus,
    /// Transaction batches and their acknowledgements: large and bulky.
    Batches,
}

impl Channel {
    /// Both lanes, in priority order.
    pub const ALL: [Channel; 2] = [Channel::Consensus, Channel::Batches];

    /// The byte that opens a message stream and names its lane.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Channel::Consensus => 0,
            Channel::Batches => 1,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Channel> {
        match tag {
            0 => Some(Channel::Consensus),
            1 => Some(Channel::Batches),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self.tag() as usize
    }
}

/// A peer to keep connected, and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    /// The peer's network public key.
    pub key: PeerKey,
    /// `"host:port"`, e.g. `"127.0.0.1:7101"`. An IP address is used as is;
    /// a host name is resolved once, by `spawn`.
    pub address: String,
}

/// Everything `spawn` needs.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// This node's network secret key.
    pub key: NetworkKey,
    /// Where to listen; port 0 picks a free port (then read
    /// `NetworkHandle::listen_address`).
    pub listen: std::net::SocketAddr,
    /// Peers this node keeps connected: dialed at start and redialed with
    /// exponential backoff (100 ms .. 5 s, forever) whenever the link drops.
    pub dial: Vec<PeerAddress>,
    /// Everyone allowed to connect (validators and observers); the dial
    /// list is allowed too.
    pub allowed: Vec<PeerKey>,
    /// Sizes, queues, rates and timeouts.
    pub limits: Limits,
}

/// Every bound the network enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in and out. Bigger outbound messages are an error;
    /// bigger inbound ones are skipped without being buffered, and counted.
    pub message_bytes_max: usize,
    /// Largest request, in and out.
    pub request_bytes_max: usize,
    /// Largest response, in and out.
    pub response_bytes_max: usize,
    /// Outbound queue per peer per channel, in messages; when full, `send`
    /// returns `SendError::Full` and drops the message.
    pub outbound_queue: usize,
    /// Capacity of the events channel returned by `spawn`.
    pub inbound_queue: usize,
    /// Token bucket per peer for the Consensus lane, in messages per second
    /// (bursts up to one second's worth); excess is dropped and counted.
    pub inbound_messages_per_sec: u32,
    /// Token bucket per peer for the Batches lane, in messages per second.
    /// An addition to the agreed API: batches arrive far less often than
    /// votes, so they get a bucket of their own.
    pub inbound_batch_messages_per_sec: u32,
    /// Token bucket per peer over both lanes, in bytes per second (bursts up
    /// to one second's worth, and at least one largest message).
    pub inbound_bytes_per_sec: u64,
    /// How long `request` waits for a response, and how long an inbound
    /// request waits for the application's `Responder`.
    pub request_timeout: Duration,
    /// Inbound requests served at once per peer; beyond that a request is
    /// refused (the peer gets an error) and counted.
    pub concurrent_requests_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            message_bytes_max: 4 * 1024 * 1024,
            request_bytes_max: 64 * 1024,
            response_bytes_max: 16 * 1024 * 1024,
            outbound_queue: 1024,
            inbound_queue: 4096,
            inbound_messages_per_sec: 10_000,
            inbound_batch_messages_per_sec: 10_000,
            inbound_bytes_per_sec: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            concurrent_requests_per_peer: 16,
        }
    }
}
