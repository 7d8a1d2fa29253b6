//! Batches ahead of consensus (Narwhal's and Aptos Quorum Store's idea):
//! each validator broadcasts the transactions it admitted in batches; a
//! validator that stored a batch and verified every signature in it signs an
//! acknowledgement; f + 1 acknowledgements form the batch's availability
//! certificate, so at least one honest validator holds it and it can always
//! be fetched. Blocks carry certificates, not transactions, so a block stays
//! small whatever the load.
//!
//! This module holds the pure parts: digests, what an acknowledgement
//! signs, certificate checks, block payloads, and the bounded store of
//! batches a node holds. The node's tasks move them around.

use std::collections::{BTreeMap, HashMap, VecDeque};

use prost::Message as _;
use yuchain_consensus::ValidatorSet;
use yuchain_consensus::types::{Epoch, ValidatorId};
use yuchain_proto::tx::{self, VerifiedTx};
use yuchain_proto::verify::{SignedMessage, verify_batch};
use yuchain_proto::{Domain, Hash32, PublicKey, Signature, SigningKey, pb};

/// The most transactions in one batch.
pub const BATCH_TRANSACTIONS_MAX: usize = 5_000;
/// The most bytes of transactions in one batch.
pub const BATCH_BYTES_MAX: usize = 4 << 20;
/// The most batches one block orders.
pub const BLOCK_BATCHES_MAX: usize = 200;

/// Why a batch, acknowledgement, certificate or payload is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Not decodable or a field of the wrong length.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Over a size bound.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Its epoch is not the current one.
    #[error("batch of epoch {got}, the current epoch is {current}")]
    WrongEpoch {
        /// The batch's.
        got: u64,
        /// This node's.
        current: u64,
    },
    /// Its author or a signer is not a validator of the epoch.
    #[error("{0} is not a validator of this epoch")]
    NotAValidator(String),
    /// A transaction in it is invalid (decoding or signature).
    #[error("transaction {index}: {reason}")]
    BadTransaction {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A signature does not verify, or signers repeat or are too few.
    #[error("certificate: {0}")]
    BadCertificate(String),
}

/// A batch's reference: its digest and shape, what acknowledgements sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchRef {
    /// The digest of its author, epoch, sequence and transaction ids.
    pub digest: Hash32,
    /// Its author's consensus key.
    pub author: PublicKey,
    /// Its epoch.
    pub epoch: Epoch,
    /// How many transactions.
    pub tx_count: u32,
    /// Their encoded bytes.
    pub byte_size: u64,
}

impl BatchRef {
    /// What a validator signs to acknowledge the batch.
    pub fn signing_digest(&self) -> Hash32 {
        Domain::Batch.hash_parts(&[
            b"batch ack",
            &self.digest.0,
            &self.author.0,
            &self.epoch.0.to_le_bytes(),
            &self.tx_count.to_le_bytes(),
            &self.byte_size.to_le_bytes(),
        ])
    }

    /// As a message.
    pub fn to_pb(&self) -> pb::BatchRef {
        pb::BatchRef {
            digest: self.digest.0.to_vec(),
            author: self.author.0.to_vec(),
            epoch: self.epoch.0,
            tx_count: self.tx_count,
            byte_size: self.byte_size,
        }
    }

    /// From a message.
    pub fn from_pb(message: &pb::BatchRef) -> Result<BatchRef, BatchError> {
        Ok(BatchRef {
            digest: Hash32::from_slice(&message.digest)
                .ok_or_else(|| BatchError::Malformed("digest is not 32 bytes".into()))?,
            author: PublicKey::from_slice(&message.author)
                .map_err(|error| BatchError::Malformed(format!("author: {error}")))?,
            epoch: Epoch(message.epoch),
            tx_count: message.tx_count,
            byte_size: message.byte_size,
        })
    }
}

/// The digest of a batch's content.
pub fn batch_digest(author: &PublicKey, epoch: Epoch, sequence: u64, ids: &[Hash32]) -> Hash32 {
    let mut hasher = Domain::Batch.hasher();
    hasher.update(b"batch");
    hasher.update(&author.0);
    hasher.update(&epoch.0.to_le_bytes());
    hasher.update(&sequence.to_le_bytes());
    hasher.update(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        hasher.update(&id.0);
    }
    Hash32(*hasher.finalize().as_bytes())
}

/// A batch this node holds, every signature verified.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Its reference.
    pub reference: BatchRef,
    /// The author's counter.
    pub sequence: u64,
    /// The transactions as received (to serve fetches and build blocks).
    pub signed: Vec<pb::SignedTransaction>,
    /// The same, verified.
    pub verified: Vec<VerifiedTx>,
}

impl Batch {
    /// A batch of this node's own, from transactions it verified at
    /// admission.
    pub fn own(
        author: PublicKey,
        epoch: Epoch,
        sequence: u64,
        transactions: Vec<(pb::SignedTransaction, VerifiedTx)>,
    ) -> Batch {
        let ids: Vec<Hash32> = transactions.iter().map(|(_, tx)| tx.id).collect();
        let byte_size = transactions
            .iter()
            .map(|(signed, _)| signed.encoded_len() as u64)
            .sum();
        let (signed, verified): (Vec<_>, Vec<_>) = transactions.into_iter().unzip();
        Batch {
            reference: BatchRef {
                digest: batch_digest(&author, epoch, sequence, &ids),
                author,
                epoch,
                tx_count: u32::try_from(ids.len()).unwrap_or(u32::MAX),
                byte_size,
            },
            sequence,
            signed,
            verified,
        }
    }

    /// Checks a batch received from a peer: bounds, the author a validator
    /// of `epoch`, every transaction decoded and its signature verified (in
    /// one batch, on all cores: call it off the async runtime).
    pub fn check(
        message: pb::Batch,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Result<Batch, BatchError> {
        Batch::check_with(message, chain_id, validators, false)
    }

    /// Checks a batch like [`Batch::check`] but for its signatures, which
    /// `certificate` attests: f + 1 validators signed that they verified
    /// every one of exactly these transactions (see
    /// [`tx::decode_attested_all`] for why that suffices). `certified` is
    /// the reference of a certificate already checked; the batch must be
    /// the one it names.
    pub fn check_certified(
        message: pb::Batch,
        chain_id: &str,
        validators: &ValidatorSet,
        certified: &BatchRef,
    ) -> Result<Batch, BatchError> {
        let batch = Batch::check_with(message, chain_id, validators, true)?;
        if batch.reference != *certified {
            return Err(BatchError::BadCertificate(
                "the batch is not the one its certificate names".into(),
            ));
        }
        Ok(batch)
    }

    fn check_with(
        message: pb::Batch,
        chain_id: &str,
        validators: &ValidatorSet,
        attested: bool,
    ) -> Result<Batch, BatchError> {
        let author = PublicKey::from_slice(&message.author)
            .map_err(|error| BatchError::Malformed(format!("author: {error}")))?;
        if message.epoch != validators.epoch().0 {
            return Err(BatchError::WrongEpoch {
                got: message.epoch,
                current: validators.epoch().0,
            });
        }
        if validators.index_of(&author).is_none() {
            return Err(BatchError::NotAValidator(hex::encode(author.0)));
        }
        if message.transactions.is_empty() {
            return Err(BatchError::Malformed("an empty batch".into()));
        }
        if message.transactions.len() > BATCH_TRANSACTIONS_MAX {
            return Err(BatchError::TooLarge(format!(
                "{} transactions, at most {BATCH_TRANSACTIONS_MAX}",
                message.transactions.len()
            )));
        }
        let byte_size: u64 = message
            .transactions
            .iter()
            .map(|signed| signed.encoded_len() as u64)
            .sum();
        if byte_size > BATCH_BYTES_MAX as u64 {
            return Err(BatchError::TooLarge(format!(
                "{byte_size} bytes of transactions, at most {BATCH_BYTES_MAX}"
            )));
        }
        let mut verified = Vec::with_capacity(message.transactions.len());
        let results = if attested {
            tx::decode_attested_all(
                &message.transactions,
                chain_id,
                tx::Attestation {
                    reason: "a checked batch certificate: f + 1 validators attest that they \
                             verified every signature of the batch",
                },
            )
        } else {
            tx::decode_and_verify_all(&message.transactions, chain_id)
        };
        for (index, result) in results.into_iter().enumerate() {
            verified.push(result.map_err(|error| BatchError::BadTransaction {
                index,
                reason: error.to_string(),
            })?);
        }
        let ids: Vec<Hash32> = verified.iter().map(|tx| tx.id).collect();
        let epoch = Epoch(message.epoch);
        Ok(Batch {
            reference: BatchRef {
                digest: batch_digest(&author, epoch, message.sequence, &ids),
                author,
                epoch,
                tx_count: u32::try_from(ids.len()).unwrap_or(u32::MAX),
                byte_size,
            },
            sequence: message.sequence,
            signed: message.transactions,
            verified,
        })
    }

    /// As a message.
    pub fn to_pb(&self) -> pb::Batch {
        pb::Batch {
            author: self.reference.author.0.to_vec(),
            epoch: self.reference.epoch.0,
            sequence: self.sequence,
            transactions: self.signed.clone(),
        }
    }

    /// The bytes it holds in memory, roughly (for the store's bound): its
    /// transactions twice (as received and decoded) and a fixed overhead.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.reference.byte_size)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(1_024)
    }
}

/// Whether validator `me` verifies a batch by `author` as soon as it
/// arrives: the author and the f validators after it in the set's order
/// (f + 1 in all, exactly what a certificate needs) do. The others wait for
/// the certificate, which attests that at least one honest validator
/// verified it ([`Batch::check_certified`]), and verify it themselves only
/// if none comes in time.
pub fn verifies_at_once(validators: &ValidatorSet, author: ValidatorId, me: ValidatorId) -> bool {
    first_verifiers(validators, author).contains(&me)
}

/// The f + 1 validators that verify a batch by `author` as soon as it
/// arrives: the author, then the f after it in the set's order.
pub fn first_verifiers(validators: &ValidatorSet, author: ValidatorId) -> Vec<ValidatorId> {
    let n = validators.len();
    // Empty when n is 0, so the closure never divides by it.
    (0..validators.weak_quorum().min(n))
        .filter_map(|step| {
            let index = (usize::from(author.0) % n + step) % n;
            u16::try_from(index).ok().map(ValidatorId)
        })
        .collect()
}

/// How long a batch record is kept in the store without being executed
/// (a certified batch is normally ordered within seconds).
pub const BATCH_RETENTION_MS: u64 = 24 * 60 * 60 * 1_000;

/// The store's record of a batch: when it was stored (ms since the Unix
/// epoch, big-endian) and the batch message.
pub fn batch_record(batch: &Batch, stored_at_ms: u64) -> Vec<u8> {
    let mut record = stored_at_ms.to_be_bytes().to_vec();
    record.extend_from_slice(&batch.to_pb().encode_to_vec());
    record
}

/// Reads a batch record: when it was stored, and the message.
pub fn read_batch_record(record: &[u8]) -> Option<(u64, pb::Batch)> {
    let time: [u8; 8] = record.get(..8)?.try_into().ok()?;
    let message = pb::Batch::decode(record.get(8..)?).ok()?;
    Some((u64::from_be_bytes(time), message))
}

/// Signs an acknowledgement of `reference` as validator `signer`.
pub fn acknowledge(key: &SigningKey, signer: ValidatorId, reference: &BatchRef) -> pb::BatchAck {
    pb::BatchAck {
        batch: Some(reference.to_pb()),
        signer: u32::from(signer.0),
        signature: key.sign(&reference.signing_digest().0).0.to_vec(),
    }
}

/// A checked acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// What it acknowledges.
    pub reference: BatchRef,
    /// Who.
    pub signer: ValidatorId,
    /// The signature.
    pub signature: Signature,
}

/// Checks an acknowledgement's signer and signature.
pub fn check_ack(ack: &pb::BatchAck, validators: &ValidatorSet) -> Result<Ack, BatchError> {
    let reference = BatchRef::from_pb(
        ack.batch
            .as_ref()
            .ok_or_else(|| BatchError::Malformed("acknowledgement without a batch".into()))?,
    )?;
    let signer = ValidatorId(
        u16::try_from(ack.signer)
            .map_err(|_| BatchError::NotAValidator(format!("signer {}", ack.signer)))?,
    );
    let key = validators
        .key(signer)
        .map_err(|_| BatchError::NotAValidator(format!("signer {}", ack.signer)))?;
    let signature = Signature::from_slice(&ack.signature)
        .map_err(|error| BatchError::Malformed(format!("signature: {error}")))?;
    yuchain_proto::verify::verify_one(key, &reference.signing_digest().0, &signature)
        .map_err(|_| BatchError::BadCertificate("acknowledgement signature invalid".into()))?;
    Ok(Ack {
        reference,
        signer,
        signature,
    })
}

/// Collects acknowledgements of this node's batches until f + 1 form a
/// certificate.
#[derive(Debug, Default)]
pub struct AckCollector {
    pending: HashMap<Hash32, (BatchRef, BTreeMap<ValidatorId, Signature>)>,
    order: VecDeque<Hash32>,
}

/// The most own batches waiting for acknowledgements.
pub const PENDING_CERTIFICATES_MAX: usize = 4_096;

impl AckCollector {
    /// Starts waiting for acknowledgements of `reference`.
    pub fn expect(&mut self, reference: BatchRef) {
        if self.pending.contains_key(&reference.digest) {
            return;
        }
        while self.order.len() >= PENDING_CERTIFICATES_MAX {
            if let Some(old) = self.order.pop_front() {
                self.pending.remove(&old);
            }
        }
        self.order.push_back(reference.digest);
        self.pending
            .insert(reference.digest, (reference, BTreeMap::new()));
    }

    /// Adds a checked acknowledgement; returns the certificate once it has
    /// `needed` signatures (and forgets the batch).
    pub fn add(&mut self, ack: Ack, needed: usize) -> Option<pb::BatchCertificate> {
        let (reference, signatures) = self.pending.get_mut(&ack.reference.digest)?;
        if *reference != ack.reference {
            return None;
        }
        signatures.insert(ack.signer, ack.signature);
        if signatures.len() < needed {
            return None;
        }
        let (reference, signatures) = self.pending.remove(&ack.reference.digest)?;
        self.order.retain(|digest| *digest != reference.digest);
        Some(pb::BatchCertificate {
            batch: Some(reference.to_pb()),
            signatures: signatures
                .into_iter()
                .map(|(signer, signature)| pb::BatchSignature {
                    signer: u32::from(signer.0),
                    signature: signature.0.to_vec(),
                })
                .collect(),
        })
    }

    /// How many batches wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Stops waiting for the batch with `digest` (given up): a late
    /// acknowledgement can no longer certify it.
    pub fn forget(&mut self, digest: &Hash32) {
        if self.pending.remove(digest).is_some() {
            self.order.retain(|other| other != digest);
        }
    }

    /// Whether the batch with `digest` still waits.
    pub fn is_pending(&self, digest: &Hash32) -> bool {
        self.pending.contains_key(digest)
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A checked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// The batch.
    pub reference: BatchRef,
    /// The signers (f + 1 or more, distinct validators of the epoch).
    pub signers: Vec<ValidatorId>,
}

/// Checks a certificate: at least f + 1 distinct validators of the epoch, by
/// strictly increasing index, each signature valid (verified in one batch).
pub fn check_certificate(
    certificate: &pb::BatchCertificate,
    validators: &ValidatorSet,
) -> Result<Certificate, BatchError> {
    let reference = BatchRef::from_pb(
        certificate
            .batch
            .as_ref()
            .ok_or_else(|| BatchError::Malformed("certificate without a batch".into()))?,
    )?;
    if reference.epoch != validators.epoch() {
        return Err(BatchError::WrongEpoch {
            got: reference.epoch.0,
            current: validators.epoch().0,
        });
    }
    if validators.index_of(&reference.author).is_none() {
        return Err(BatchError::NotAValidator(hex::encode(reference.author.0)));
    }
    if certificate.signatures.len() < validators.weak_quorum()
        || certificate.signatures.len() > validators.len()
    {
        return Err(BatchError::BadCertificate(format!(
            "{} signatures, needs between {} and {}",
            certificate.signatures.len(),
            validators.weak_quorum(),
            validators.len()
        )));
    }
    let digest = reference.signing_digest();
    let mut signers = Vec::with_capacity(certificate.signatures.len());
    let mut items = Vec::with_capacity(certificate.signatures.len());
    for entry in &certificate.signatures {
        let signer = ValidatorId(
            u16::try_from(entry.signer)
                .map_err(|_| BatchError::NotAValidator(format!("signer {}", entry.signer)))?,
        );
        if signers.last().is_some_and(|last| *last >= signer) {
            return Err(BatchError::BadCertificate(
                "signers not strictly increasing".into(),
            ));
        }
        let key = *validators
            .key(signer)
            .map_err(|_| BatchError::NotAValidator(format!("signer {}", entry.signer)))?;
        let signature = Signature::from_slice(&entry.signature)
            .map_err(|error| BatchError::Malformed(format!("signature: {error}")))?;
        signers.push(signer);
        items.push((key, signature));
    }
    let messages: Vec<SignedMessage<'_>> = items
        .iter()
        .map(|(public_key, signature)| SignedMessage {
            public_key: *public_key,
            signature: *signature,
            message: &digest.0,
        })
        .collect();
    if !verify_batch(&messages).is_empty() {
        return Err(BatchError::BadCertificate("a signature is invalid".into()));
    }
    Ok(Certificate { reference, signers })
}

/// The most certificates remembered as checked.
pub const CHECKED_CERTIFICATES_MAX: usize = 16_384;

/// Certificates this node has checked, by the hash of their exact bytes and
/// the epoch: a certificate arrives on its own, then again in each proposal
/// that orders it (and in every re-proposal), and its f + 1 signatures need
/// checking once. Bounded; the oldest are forgotten first.
#[derive(Debug, Default)]
pub struct CheckedCertificates {
    checked: HashMap<Hash32, Certificate>,
    order: VecDeque<Hash32>,
}

impl CheckedCertificates {
    fn key(certificate: &pb::BatchCertificate, validators: &ValidatorSet) -> Hash32 {
        Domain::Batch.hash_parts(&[
            b"checked certificate",
            &validators.epoch().0.to_le_bytes(),
            &certificate.encode_to_vec(),
        ])
    }

    /// Checks `certificate` ([`check_certificate`]) unless these exact
    /// bytes were checked before in this epoch.
    pub fn check(
        cache: &std::sync::Mutex<CheckedCertificates>,
        certificate: &pb::BatchCertificate,
        validators: &ValidatorSet,
    ) -> Result<Certificate, BatchError> {
        let key = CheckedCertificates::key(certificate, validators);
        let lock = || {
            cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(known) = lock().checked.get(&key) {
            return Ok(known.clone());
        }
        let checked = check_certificate(certificate, validators)?;
        let mut cache = lock();
        if cache.checked.insert(key, checked.clone()).is_none() {
            cache.order.push_back(key);
            while cache.order.len() > CHECKED_CERTIFICATES_MAX {
                if let Some(old) = cache.order.pop_front() {
                    cache.checked.remove(&old);
                }
            }
        }
        Ok(checked)
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.checked.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.checked.is_empty()
    }
}

/// Decodes a block's payload and checks every certificate in it (each
/// once: see [`CheckedCertificates`]), the bounds on batches and
/// transactions, and that no batch repeats.
pub fn check_payload(
    payload: &[u8],
    validators: &ValidatorSet,
    cache: &std::sync::Mutex<CheckedCertificates>,
) -> Result<Vec<Certificate>, BatchError> {
    let payload = pb::BlockPayload::decode(payload)
        .map_err(|error| BatchError::Malformed(format!("block payload: {error}")))?;
    if payload.batches.len() > BLOCK_BATCHES_MAX {
        return Err(BatchError::TooLarge(format!(
            "{} batches in a block, at most {BLOCK_BATCHES_MAX}",
            payload.batches.len()
        )));
    }
    let mut out: Vec<Certificate> = Vec::with_capacity(payload.batches.len());
    let mut transactions: u64 = 0;
    for certificate in &payload.batches {
        let checked = CheckedCertificates::check(cache, certificate, validators)?;
        if out
            .iter()
            .any(|seen| seen.reference.digest == checked.reference.digest)
        {
            return Err(BatchError::Malformed("a batch is ordered twice".into()));
        }
        transactions = transactions.saturating_add(u64::from(checked.reference.tx_count));
        out.push(checked);
    }
    if transactions > yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX as u64 {
        return Err(BatchError::TooLarge(format!(
            "{transactions} transactions in a block, at most {}",
            yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX
        )));
    }
    Ok(out)
}

/// The references a payload orders, without checking signatures (for a
/// payload already in a committed or certified block).
pub fn payload_references(payload: &[u8]) -> Result<Vec<BatchRef>, BatchError> {
    let payload = pb::BlockPayload::decode(payload)
        .map_err(|error| BatchError::Malformed(format!("block payload: {error}")))?;
    payload
        .batches
        .iter()
        .map(|certificate| {
            BatchRef::from_pb(
                certificate
                    .batch
                    .as_ref()
                    .ok_or_else(|| BatchError::Malformed("certificate without a batch".into()))?,
            )
        })
        .collect()
}

/// Batches this node holds, by digest, bounded in bytes: its own and those
/// it acknowledged, until they are executed. The oldest are dropped past
/// the bound (a certified batch dropped here is fetched again from a
/// signer when it is executed).
#[derive(Debug)]
pub struct BatchStore {
    batches: HashMap<Hash32, Batch>,
    order: VecDeque<Hash32>,
    bytes: usize,
    bytes_max: usize,
}

impl BatchStore {
    /// An empty store holding at most `bytes_max` bytes.
    pub fn new(bytes_max: usize) -> BatchStore {
        BatchStore {
            batches: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Adds a batch (again: no effect).
    pub fn insert(&mut self, batch: Batch) {
        let digest = batch.reference.digest;
        if self.batches.contains_key(&digest) {
            return;
        }
        self.bytes = self.bytes.saturating_add(batch.memory_bytes());
        self.batches.insert(digest, batch);
        self.order.push_back(digest);
        while self.bytes > self.bytes_max && self.order.len() > 1 {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(batch) = self.batches.remove(&old) {
                self.bytes = self.bytes.saturating_sub(batch.memory_bytes());
            }
        }
    }

    /// The batch with `digest`.
    pub fn get(&self, digest: &Hash32) -> Option<&Batch> {
        self.batches.get(digest)
    }

    /// Forgets a batch (executed).
    pub fn remove(&mut self, digest: &Hash32) -> Option<Batch> {
        let batch = self.batches.remove(digest)?;
        self.bytes = self.bytes.saturating_sub(batch.memory_bytes());
        self.order.retain(|other| other != digest);
        Some(batch)
    }

    /// How many batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_ledger::testkit::{TestChain, transfer};

    fn validators(n: usize) -> (Vec<SigningKey>, ValidatorSet) {
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::for_test(&format!("v{i}")))
            .collect();
        let set = ValidatorSet::new(
            yuchain_consensus::ChainTag::for_test(),
            Epoch(0),
            keys.iter().map(SigningKey::public_key).collect(),
        )
        .expect("set");
        (keys, set)
    }

    fn signed_batch(chain: &mut TestChain, author: &SigningKey) -> pb::Batch {
        let operator = chain.operators[0].clone();
        let to = yuchain_ledger::testkit::address_of(&chain.operators[1]);
        let transactions = (0..3)
            .map(|i| chain.tx(&operator, transfer(to, 100 + i, "")))
            .collect();
        pb::Batch {
            author: author.public_key().0.to_vec(),
            epoch: 0,
            sequence: 7,
            transactions,
        }
    }

    #[test]
    fn a_batch_is_checked_and_certified_by_f_plus_one_acknowledgements() {
        let (keys, set) = validators(4);
        let mut chain = TestChain::new(2);
        let message = signed_batch(&mut chain, &keys[0]);
        let batch = Batch::check(message, chain.ledger.chain_id(), &set).expect("valid batch");
        assert_eq!(batch.reference.tx_count, 3);
        let mut collector = AckCollector::default();
        collector.expect(batch.reference);
        let ack = |i: usize| {
            check_ack(
                &acknowledge(&keys[i], ValidatorId(i as u16), &batch.reference),
                &set,
            )
            .expect("valid ack")
        };
        assert!(collector.add(ack(2), set.weak_quorum()).is_none());
        let certificate = collector
            .add(ack(1), set.weak_quorum())
            .expect("f + 1 = 2 acknowledgements");
        let checked = check_certificate(&certificate, &set).expect("valid certificate");
        assert_eq!(checked.signers, vec![ValidatorId(1), ValidatorId(2)]);
        let payload = pb::BlockPayload {
            batches: vec![certificate.clone()],
            executed: None,
        }
        .encode_to_vec();
        let cache = std::sync::Mutex::new(CheckedCertificates::default());
        assert_eq!(
            check_payload(&payload, &set, &cache)
                .expect("payload")
                .len(),
            1
        );
        assert_eq!(cache.lock().expect("cache").len(), 1);
        // Checked once: the same bytes again hit the cache, other bytes
        // (a forged signature) do not.
        assert!(check_payload(&payload, &set, &cache).is_ok());
        assert_eq!(cache.lock().expect("cache").len(), 1);
        let mut forged = certificate.clone();
        forged.signatures[0].signature[5] ^= 1;
        let forged_payload = pb::BlockPayload {
            batches: vec![forged],
            executed: None,
        }
        .encode_to_vec();
        assert!(check_payload(&forged_payload, &set, &cache).is_err());
        let twice = pb::BlockPayload {
            batches: vec![certificate.clone(), certificate],
            executed: None,
        }
        .encode_to_vec();
        assert!(check_payload(&twice, &set, &cache).is_err());
    }

    #[test]
    fn the_author_and_the_f_after_it_verify_a_batch_at_once() {
        let (_, set) = validators(4);
        let ids = |list: &[u16]| list.iter().map(|&i| ValidatorId(i)).collect::<Vec<_>>();
        assert_eq!(first_verifiers(&set, ValidatorId(0)), ids(&[0, 1]));
        assert_eq!(first_verifiers(&set, ValidatorId(3)), ids(&[3, 0]));
        assert!(verifies_at_once(&set, ValidatorId(3), ValidatorId(0)));
        assert!(!verifies_at_once(&set, ValidatorId(3), ValidatorId(1)));
        let (_, seven) = validators(7);
        assert_eq!(first_verifiers(&seven, ValidatorId(5)), ids(&[5, 6, 0]));
        let (_, one) = validators(1);
        assert_eq!(first_verifiers(&one, ValidatorId(0)), ids(&[0]));
    }

    #[test]
    fn a_certified_batch_skips_signatures_but_nothing_else() {
        let (keys, set) = validators(4);
        let mut chain = TestChain::new(2);
        let chain_id = chain.ledger.chain_id().to_string();
        let message = signed_batch(&mut chain, &keys[0]);
        let reference = Batch::check(message.clone(), &chain_id, &set)
            .expect("valid")
            .reference;
        let batch = Batch::check_certified(message.clone(), &chain_id, &set, &reference)
            .expect("certified");
        assert_eq!(batch.reference, reference);
        assert_eq!(batch.verified.len(), 3);
        // Another batch than the certificate names is refused, even one
        // whose only change is a signature (the digest covers it).
        let mut other = message.clone();
        other.transactions[1].signature[0] ^= 1;
        assert!(matches!(
            Batch::check_certified(other, &chain_id, &set, &reference),
            Err(BatchError::BadCertificate(_))
        ));
        // Stateless checks still run: the wrong chain is refused.
        assert!(matches!(
            Batch::check_certified(message, "another-chain", &set, &reference),
            Err(BatchError::BadTransaction { .. })
        ));
    }

    #[test]
    fn forged_or_short_certificates_are_refused() {
        let (keys, set) = validators(4);
        let reference = BatchRef {
            digest: Hash32([3; 32]),
            author: keys[0].public_key(),
            epoch: Epoch(0),
            tx_count: 1,
            byte_size: 100,
        };
        let signature = |i: usize, r: &BatchRef| pb::BatchSignature {
            signer: i as u32,
            signature: keys[i].sign(&r.signing_digest().0).0.to_vec(),
        };
        let good = pb::BatchCertificate {
            batch: Some(reference.to_pb()),
            signatures: vec![signature(0, &reference), signature(3, &reference)],
        };
        assert!(check_certificate(&good, &set).is_ok());
        let mut short = good.clone();
        short.signatures.pop();
        assert!(matches!(
            check_certificate(&short, &set),
            Err(BatchError::BadCertificate(_))
        ));
        let mut repeated = good.clone();
        repeated.signatures[1] = signature(0, &reference);
        assert!(check_certificate(&repeated, &set).is_err());
        let mut inflated = good.clone();
        let mut bigger = reference;
        bigger.tx_count = 10_000;
        inflated.batch = Some(bigger.to_pb());
        assert!(matches!(
            check_certificate(&inflated, &set),
            Err(BatchError::BadCertificate(_))
        ));
        let mut outsider = good;
        outsider.signatures[1].signer = 9;
        assert!(check_certificate(&outsider, &set).is_err());
    }

    #[test]
    fn a_batch_with_a_bad_signature_or_from_an_outsider_is_refused() {
        let (keys, set) = validators(4);
        let mut chain = TestChain::new(2);
        let mut message = signed_batch(&mut chain, &keys[0]);
        message.transactions[1].signature[0] ^= 1;
        assert!(matches!(
            Batch::check(message, chain.ledger.chain_id(), &set),
            Err(BatchError::BadTransaction { index: 1, .. })
        ));
        let outsider = SigningKey::for_test("outsider");
        let message = signed_batch(&mut chain, &outsider);
        assert!(matches!(
            Batch::check(message, chain.ledger.chain_id(), &set),
            Err(BatchError::NotAValidator(_))
        ));
    }

    #[test]
    fn the_store_drops_the_oldest_past_its_bound() {
        let (keys, _) = validators(1);
        let mut chain = TestChain::new(2);
        let operator = chain.operators[0].clone();
        let to = yuchain_ledger::testkit::address_of(&chain.operators[1]);
        let mut store = BatchStore::new(5_000);
        let mut digests = Vec::new();
        for sequence in 0..10 {
            let signed = chain.tx(&operator, transfer(to, 1, ""));
            let verified = tx::decode_and_verify(&signed, chain.ledger.chain_id()).expect("ok");
            let batch = Batch::own(
                keys[0].public_key(),
                Epoch(0),
                sequence,
                vec![(signed, verified)],
            );
            digests.push(batch.reference.digest);
            store.insert(batch);
        }
        assert!(store.bytes() <= 5_000);
        assert!(store.get(&digests[0]).is_none());
        assert!(store.get(&digests[9]).is_some());
    }
}
