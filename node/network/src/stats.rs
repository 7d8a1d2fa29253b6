//! Counters for metrics, kept as atomics shared by the swarm task, the
//! stream tasks and the handles.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Channel;

/// Counters of one lane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Messages received and delivered as events.
    pub messages_in: u64,
    /// Bytes of the messages delivered.
    pub bytes_in: u64,
    /// Messages written to peers.
    pub messages_out: u64,
    /// Bytes of the messages written.
    pub bytes_out: u64,
    /// Outbound messages dropped because the peer's queue was full.
    pub dropped_full: u64,
    /// Messages dropped for exceeding `message_bytes_max` (in or out).
    pub dropped_too_big: u64,
    /// Inbound messages dropped by the per-peer rate limits.
    pub dropped_rate_limited: u64,
    /// Queued outbound messages lost because their stream failed.
    pub dropped_send_failed: u64,
}

/// A snapshot of every counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// The Consensus lane.
    pub consensus: ChannelStats,
    /// The Batches lane.
    pub batches: ChannelStats,
    /// Connections refused because the peer is not allowed.
    pub refused_connections: u64,
    /// Requests sent.
    pub requests_out: u64,
    /// Requests received and handed to the application.
    pub requests_in: u64,
    /// Inbound requests refused (over the per-peer concurrency limit, or
    /// the events channel was full).
    pub requests_refused: u64,
    /// Connection events dropped because the events channel was full.
    pub events_dropped: u64,
    /// Inbound streams closed for a protocol violation (bad lane tag).
    pub protocol_errors: u64,
}

impl NetworkStats {
    /// The counters of one lane.
    pub fn channel(&self, channel: Channel) -> &ChannelStats {
        match channel {
            Channel::Consensus => &self.consensus,
            Channel::Batches => &self.batches,
        }
    }
}

#[derive(Default)]
pub(crate) struct LaneCounters {
    pub(crate) messages_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) dropped_too_big: AtomicU64,
    pub(crate) dropped_rate_limited: AtomicU64,
    pub(crate) dropped_send_failed: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) lanes: [LaneCounters; 2],
    pub(crate) refused_connections: AtomicU64,
    pub(crate) requests_out: AtomicU64,
    pub(crate) requests_in: AtomicU64,
    pub(crate) requests_refused: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
}

/// Adds one to a counter. Relaxed ordering: counters order nothing.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, amount: usize) {
    counter.fetch_add(amount as u64, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn lane(&self, channel: Channel) -> &LaneCounters {
        &self.lanes[channel.index()]
    }

    pub(crate) fn snapshot(&self) -> NetworkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lane = |l: &LaneCounters| ChannelStats {
            messages_in: get(&l.messages_in),
            bytes_in: get(&l.bytes_in),
            messages_out: get(&l.messages_out),
            bytes_out: get(&l.bytes_out),
            dropped_full: get(&l.dropped_full),
            dropped_too_big: get(&l.dropped_too_big),
            dropped_rate_limited: get(&l.dropped_rate_limited),
            dropped_send_failed: get(&l.dropped_send_failed),
        };
        NetworkStats {
            consensus: lane(self.lane(Channel::Consensus)),
            batches: lane(self.lane(Channel::Batches)),
            refused_connections: get(&self.refused_connections),
            requests_out: get(&self.requests_out),
            requests_in: get(&self.requests_in),
            requests_refused: get(&self.requests_refused),
            events_dropped: get(&self.events_dropped),
            protocol_errors: get(&self.protocol_errors),
        }
    }
}
