//! The pool of admitted transactions not yet committed: per-sender order by
//! sequence, one entry per id, expiry by height, bounds in count and bytes
//! (overall and per sender), and batches taken fairly across senders (one
//! transaction per sender per pass), so a busy sender cannot crowd out the
//! others.
//!
//! An entry is *queued* until a batch takes it, then *batched* until the
//! block that orders it is executed (or it expires). Batched entries still
//! count against the bounds and still block duplicates.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use prost::Message as _;
use yuchain_proto::tx::VerifiedTx;
use yuchain_proto::{Address, Hash32, pb};

use crate::config::MempoolSection;

/// Why the pool refused a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The same transaction is already pending.
    #[error("transaction {0} is already pending")]
    Duplicate(Hash32),
    /// The sequence was used already.
    #[error("sequence {got} was already used; the account's next sequence is {next}")]
    StaleSequence {
        /// The transaction's.
        got: u64,
        /// The account's.
        next: u64,
    },
    /// The sequence is too far ahead.
    #[error("sequence {got} is more than {window} ahead of the account's next sequence {next}")]
    SequenceTooFar {
        /// The transaction's.
        got: u64,
        /// The account's.
        next: u64,
        /// The allowed distance.
        window: u64,
    },
    /// Another pending transaction of the sender has this sequence.
    #[error("another pending transaction of this sender has sequence {0}")]
    SequenceTaken(u64),
    /// The sender has too many pending transactions.
    #[error("the sender has {0} pending transactions, the most this node holds per sender")]
    SenderFull(usize),
    /// The pool is full.
    #[error("the mempool is full ({count} transactions, {bytes} bytes); retry shortly")]
    Full {
        /// Transactions held.
        count: usize,
        /// Bytes held.
        bytes: usize,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    signed: pb::SignedTransaction,
    verified: VerifiedTx,
    bytes: usize,
    batched: bool,
}

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolSection,
    senders: BTreeMap<Address, BTreeMap<u64, Entry>>,
    ids: HashMap<Hash32, (Address, u64)>,
    /// (expiry height, id) of every entry.
    expiries: BTreeSet<(u64, Hash32)>,
    /// Senders that may be served (queued entries and none in a batch not
    /// yet executed), in the order they are served.
    ready: VecDeque<Address>,
    /// The senders in `ready`.
    ready_set: HashSet<Address>,
    queued: usize,
    count: usize,
    bytes: usize,
}

impl Mempool {
    /// An empty pool with these bounds.
    pub fn new(limits: MempoolSection) -> Mempool {
        Mempool {
            limits,
            senders: BTreeMap::new(),
            ids: HashMap::new(),
            expiries: BTreeSet::new(),
            ready: VecDeque::new(),
            ready_set: HashSet::new(),
            queued: 0,
            count: 0,
            bytes: 0,
        }
    }

    /// Adds a verified transaction whose sender's next sequence (in the
    /// latest executed state) is `next_sequence`.
    pub fn insert(
        &mut self,
        signed: pb::SignedTransaction,
        verified: VerifiedTx,
        next_sequence: u64,
    ) -> Result<(), MempoolError> {
        let id = verified.id;
        if self.ids.contains_key(&id) {
            return Err(MempoolError::Duplicate(id));
        }
        let sequence = verified.sequence;
        if sequence < next_sequence {
            return Err(MempoolError::StaleSequence {
                got: sequence,
                next: next_sequence,
            });
        }
        if sequence - next_sequence > self.limits.sequence_window {
            return Err(MempoolError::SequenceTooFar {
                got: sequence,
                next: next_sequence,
                window: self.limits.sequence_window,
            });
        }
        let bytes = signed.encoded_len();
        if self.count >= self.limits.transactions_max
            || self.bytes.saturating_add(bytes) > self.limits.bytes_max
        {
            return Err(MempoolError::Full {
                count: self.count,
                bytes: self.bytes,
            });
        }
        let sender = verified.sender;
        let entries = self.senders.entry(sender).or_default();
        if entries.contains_key(&sequence) {
            return Err(MempoolError::SequenceTaken(sequence));
        }
        if entries.len() >= self.limits.per_sender_max {
            return Err(MempoolError::SenderFull(entries.len()));
        }
        self.expiries.insert((verified.expiry_height, id));
        entries.insert(
            sequence,
            Entry {
                signed,
                verified,
                bytes,
                batched: false,
            },
        );
        self.ids.insert(id, (sender, sequence));
        self.count += 1;
        self.queued += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        self.refresh(sender);
        Ok(())
    }

    /// Takes up to `count` queued transactions (and at most `bytes` bytes)
    /// for a batch: one per sender per pass, each sender's in sequence
    /// order. They stay in the pool, batched, until executed or expired.
    ///
    /// A sender with transactions in an earlier batch not yet executed is
    /// skipped until that batch is: batches may be certified and ordered in
    /// any order, and a later sequence executed before an earlier one would
    /// be refused (its sequence is not next). So one sender's transactions
    /// are never in two unexecuted batches at once.
    pub fn take_batch(
        &mut self,
        count: usize,
        bytes: usize,
    ) -> Vec<(pb::SignedTransaction, VerifiedTx)> {
        let mut out = Vec::new();
        let mut taken_bytes = 0usize;
        let mut in_this_batch: HashSet<Address> = HashSet::new();
        while out.len() < count {
            let Some(sender) = self.ready.pop_front() else {
                break;
            };
            self.ready_set.remove(&sender);
            let Some(entries) = self.senders.get_mut(&sender) else {
                continue;
            };
            let busy = entries.values().any(|entry| entry.batched);
            if busy && !in_this_batch.contains(&sender) {
                continue;
            }
            let Some(entry) = entries.values_mut().find(|entry| !entry.batched) else {
                continue;
            };
            if taken_bytes.saturating_add(entry.bytes) > bytes && !out.is_empty() {
                self.ready.push_front(sender);
                self.ready_set.insert(sender);
                break;
            }
            entry.batched = true;
            taken_bytes = taken_bytes.saturating_add(entry.bytes);
            out.push((entry.signed.clone(), entry.verified.clone()));
            self.queued -= 1;
            in_this_batch.insert(sender);
            if entries.values().any(|entry| !entry.batched) {
                self.ready.push_back(sender);
                self.ready_set.insert(sender);
            }
        }
        // Senders served in this batch wait for it to be executed.
        for sender in in_this_batch {
            if self.ready_set.remove(&sender) {
                self.ready.retain(|other| *other != sender);
            }
        }
        out
    }

    /// Puts `sender` in the serving order if it may be served.
    fn refresh(&mut self, sender: Address) {
        if self.ready_set.contains(&sender) {
            return;
        }
        let Some(entries) = self.senders.get(&sender) else {
            return;
        };
        let queued = entries.values().any(|entry| !entry.batched);
        let busy = entries.values().any(|entry| entry.batched);
        if queued && !busy {
            self.ready.push_back(sender);
            self.ready_set.insert(sender);
        }
    }

    /// Removes what a committed block executed: the transactions with these
    /// ids, and every entry of these senders below their new next sequence.
    /// Then drops everything that expires before `next_height`.
    pub fn committed(
        &mut self,
        ids: &[Hash32],
        senders: &[(Address, u64)],
        next_height: u64,
    ) -> Vec<Hash32> {
        for id in ids {
            if let Some((sender, sequence)) = self.ids.get(id).copied() {
                self.remove(sender, sequence);
            }
        }
        for (sender, next_sequence) in senders {
            let stale: Vec<u64> = self
                .senders
                .get(sender)
                .map(|entries| entries.range(..next_sequence).map(|(s, _)| *s).collect())
                .unwrap_or_default();
            for sequence in stale {
                self.remove(*sender, sequence);
            }
        }
        let mut expired = Vec::new();
        while let Some(&(expiry, id)) = self.expiries.first() {
            if expiry >= next_height {
                break;
            }
            if let Some((sender, sequence)) = self.ids.get(&id).copied() {
                self.remove(sender, sequence);
                expired.push(id);
            } else {
                self.expiries.remove(&(expiry, id));
            }
        }
        expired
    }

    /// Puts batched entries back in the queue (their batch was lost: never
    /// certified, or its epoch ended).
    pub fn requeue(&mut self, ids: &[Hash32]) {
        for id in ids {
            let Some((sender, sequence)) = self.ids.get(id).copied() else {
                continue;
            };
            let Some(entries) = self.senders.get_mut(&sender) else {
                continue;
            };
            if let Some(entry) = entries.get_mut(&sequence)
                && entry.batched
            {
                entry.batched = false;
                self.queued += 1;
            }
            self.refresh(sender);
        }
    }

    fn remove(&mut self, sender: Address, sequence: u64) {
        let Some(entries) = self.senders.get_mut(&sender) else {
            return;
        };
        let Some(entry) = entries.remove(&sequence) else {
            return;
        };
        if entries.is_empty() {
            self.senders.remove(&sender);
        }
        self.refresh(sender);
        self.ids.remove(&entry.verified.id);
        self.expiries
            .remove(&(entry.verified.expiry_height, entry.verified.id));
        self.count -= 1;
        if !entry.batched {
            self.queued -= 1;
        }
        self.bytes = self.bytes.saturating_sub(entry.bytes);
    }

    /// Whether `id` is pending.
    pub fn contains(&self, id: &Hash32) -> bool {
        self.ids.contains_key(id)
    }

    /// Transactions held (queued and batched).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Transactions waiting for a batch.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_ledger::testkit::{TestChain, address_of, transfer};
    use yuchain_proto::SigningKey;
    use yuchain_proto::tx;

    fn limits() -> MempoolSection {
        MempoolSection {
            transactions_max: 100,
            bytes_max: 1 << 20,
            per_sender_max: 10,
            sequence_window: 50,
        }
    }

    fn make(chain: &mut TestChain, key: &SigningKey) -> (pb::SignedTransaction, VerifiedTx) {
        let to = address_of(&chain.operators[1]);
        let signed = chain.tx(key, transfer(to, 1, ""));
        let verified = tx::decode_and_verify(&signed, chain.ledger.chain_id()).expect("valid");
        (signed, verified)
    }

    #[test]
    fn batches_are_fair_across_senders_and_in_sequence_order() {
        let mut chain = TestChain::new(3);
        let busy = chain.operators[0].clone();
        let quiet = chain.operators[2].clone();
        let mut pool = Mempool::new(limits());
        for _ in 0..5 {
            let (signed, verified) = make(&mut chain, &busy);
            pool.insert(signed, verified, 0).expect("admitted");
        }
        let (signed, verified) = make(&mut chain, &quiet);
        pool.insert(signed, verified, 0).expect("admitted");
        let batch = pool.take_batch(2, usize::MAX);
        let senders: Vec<Address> = batch.iter().map(|(_, tx)| tx.sender).collect();
        assert_eq!(senders, vec![address_of(&busy), address_of(&quiet)]);
        // Both senders now have a batch in flight: nothing more of theirs
        // goes into another batch until it is executed.
        assert!(pool.take_batch(10, usize::MAX).is_empty());
        pool.committed(&[batch[0].1.id], &[], 0);
        let rest = pool.take_batch(10, usize::MAX);
        let sequences: Vec<u64> = rest.iter().map(|(_, tx)| tx.sequence).collect();
        assert_eq!(sequences, vec![1, 2, 3, 4], "in order, in one batch");
        assert_eq!(pool.queued(), 0);
        assert_eq!(pool.len(), 5);
    }

    #[test]
    fn duplicates_stale_and_far_sequences_and_full_pools_are_refused() {
        let mut chain = TestChain::new(2);
        let key = chain.operators[0].clone();
        let mut pool = Mempool::new(limits());
        let (signed, verified) = make(&mut chain, &key);
        pool.insert(signed.clone(), verified.clone(), 0)
            .expect("admitted");
        assert!(matches!(
            pool.insert(signed.clone(), verified.clone(), 0),
            Err(MempoolError::Duplicate(_))
        ));
        let (signed, verified) = make(&mut chain, &key);
        assert!(matches!(
            pool.insert(signed.clone(), verified.clone(), 2),
            Err(MempoolError::StaleSequence { got: 1, next: 2 })
        ));
        assert!(matches!(
            pool.insert(signed, verified, 0).map(|_| ()),
            Ok(())
        ));
        let mut tight = Mempool::new(MempoolSection {
            per_sender_max: 1,
            ..limits()
        });
        let (a, va) = make(&mut chain, &key);
        let (b, vb) = make(&mut chain, &key);
        tight.insert(a, va, 0).expect("first");
        assert!(matches!(
            tight.insert(b, vb, 0),
            Err(MempoolError::SenderFull(1))
        ));
        let mut far = Mempool::new(MempoolSection {
            sequence_window: 1,
            ..limits()
        });
        let (c, vc) = make(&mut chain, &key);
        assert!(matches!(
            far.insert(c, vc, 0),
            Err(MempoolError::SequenceTooFar { .. })
        ));
        let mut full = Mempool::new(MempoolSection {
            transactions_max: 1,
            ..limits()
        });
        let other = chain.operators[1].clone();
        let (d, vd) = make(&mut chain, &other);
        full.insert(d, vd, 0).expect("first");
        let (e, ve) = make(&mut chain, &key);
        assert!(matches!(
            full.insert(e, ve, 0),
            Err(MempoolError::Full { .. })
        ));
    }

    #[test]
    fn committed_and_expired_entries_leave_and_requeued_ones_return() {
        let mut chain = TestChain::new(2);
        let key = chain.operators[0].clone();
        let mut pool = Mempool::new(limits());
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (signed, verified) = make(&mut chain, &key);
            ids.push(verified.id);
            pool.insert(signed, verified, 0).expect("admitted");
        }
        let batch = pool.take_batch(3, usize::MAX);
        assert_eq!(batch.len(), 3);
        pool.requeue(&ids[2..]);
        assert_eq!(pool.queued(), 1);
        pool.committed(&ids[..1], &[(address_of(&key), 2)], 1);
        assert_eq!(pool.len(), 1, "the executed one and the stale one left");
        assert!(pool.contains(&ids[2]));
        let expiry = batch[2].1.expiry_height;
        let expired = pool.committed(&[], &[], expiry + 1);
        assert_eq!(expired, vec![ids[2]]);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
        assert_eq!(pool.queued(), 0);
    }
}
