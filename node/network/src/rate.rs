//! Token buckets for the per-peer inbound rate limits.

use std::time::Instant;

use crate::{Channel, Limits};

/// A bucket that refills at `rate` tokens per second up to `capacity`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate_per_sec: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: f64, capacity: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity,
            rate_per_sec,
            tokens: capacity,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.capacity);
        self.refilled_at = now;
    }

    fn has(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= amount
    }

    fn take(&mut self, amount: f64) {
        self.tokens -= amount;
    }
}

/// One peer's buckets: messages per lane, and bytes over both lanes.
#[derive(Debug)]
pub(crate) struct PeerBuckets {
    messages: [TokenBucket; 2],
    bytes: TokenBucket,
}

impl PeerBuckets {
    pub(crate) fn new(limits: &Limits, now: Instant) -> PeerBuckets {
        let messages = |rate: u32| TokenBucket::new(f64::from(rate), f64::from(rate), now);
        // A burst of one second's worth, but never less than one largest
        // message, or a legal maximum-size message could never pass.
        let bytes_rate = limits.inbound_bytes_per_sec as f64;
        let bytes_capacity = bytes_rate.max(limits.message_bytes_max as f64);
        PeerBuckets {
            messages: [
                messages(limits.inbound_messages_per_sec),
                messages(limits.inbound_batch_messages_per_sec),
            ],
            bytes: TokenBucket::new(bytes_rate, bytes_capacity, now),
        }
    }

    /// Takes one message of `size_bytes` from the buckets if both have room;
    /// takes nothing and returns false otherwise.
    pub(crate) fn admit(&mut self, channel: Channel, size_bytes: usize, now: Instant) -> bool {
        let size = size_bytes as f64;
        let lane = &mut self.messages[channel.index()];
        if !lane.has(1.0, now) || !self.bytes.has(size, now) {
            return false;
        }
        lane.take(1.0);
        self.bytes.take(size);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_admits_a_burst_then_refills_at_its_rate() {
        let start = Instant::now();
        let limits = Limits {
            inbound_messages_per_sec: 10,
            ..Limits::default()
        };
        let mut buckets = PeerBuckets::new(&limits, start);
        let admitted = (0..100)
            .filter(|_| buckets.admit(Channel::Consensus, 1, start))
            .count();
        assert_eq!(admitted, 10, "the burst is one second's worth");
        assert!(
            buckets.admit(Channel::Batches, 1, start),
            "lanes have separate buckets"
        );
        let later = start + Duration::from_millis(500);
        let refilled = (0..100)
            .filter(|_| buckets.admit(Channel::Consensus, 1, later))
            .count();
        assert_eq!(refilled, 5, "half a second refills half the rate");
    }

    #[test]
    fn byte_bucket_refuses_a_message_larger_than_what_is_left() {
        let start = Instant::now();
        let limits = Limits {
            inbound_bytes_per_sec: 1000,
            message_bytes_max: 1000,
            ..Limits::default()
        };
        let mut buckets = PeerBuckets::new(&limits, start);
        assert!(buckets.admit(Channel::Batches, 900, start));
        assert!(!buckets.admit(Channel::Batches, 200, start));
        assert!(buckets.admit(Channel::Batches, 100, start));
    }
}
