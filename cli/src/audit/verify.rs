//! Replay's first stage: everything about a block that needs no ledger
//! state, checked from the genesis file's validator keys alone.
//!
//! For each block, in height order: its consensus block decodes and is of
//! the next height, of epoch 0 (the only set the auditor has) and the child
//! of the block before (the first, of the genesis file's hash); its
//! finality certificate has a quorum of valid signatures and commits, by the
//! two-chain rule, this block or a later one that the chain then holds; each
//! batch certificate in its payload has f + 1 valid signatures; the ledger
//! block's transactions are exactly the certified batches' (counts, bytes,
//! digests over their ids, in order, batches ordered before skipped as the
//! node skips them), and every transaction decodes and has a valid
//! signature (verified again here, in one batch on all cores: no
//! certificate is trusted for them).
//!
//! A block whose certificate commits a later block is held until that block
//! arrives and has the hash the certificate names; only then does it go on
//! to execution. Blocks left waiting when the source ends are *unproven*,
//! and replay reports them instead of executing them.

use std::collections::{HashMap, VecDeque};

use prost::Message as _;
use rayon::prelude::*;
use yuchain_consensus::types::Height;
use yuchain_consensus::{CommittedBlock, ValidatorSet, VerifyMode};
use yuchain_proto::tx::{self, VerifiedTx};
use yuchain_proto::{Hash32, pb};

use super::batches::{CertifiedBatch, batch_digest, check_certificate};
use super::error::{AuditError, Discrepancy, Result};

/// The most batches one block orders (the node's bound).
pub const BLOCK_BATCHES_MAX: usize = 200;
/// Transactions decoded and verified together (a multiple of the 128
/// signatures of one batch equation).
const VERIFY_CHUNK_TRANSACTIONS: usize = 1_024;
/// The most blocks held waiting for the block their certificate commits.
pub const WAITING_BLOCKS_MAX: usize = 1_024;

/// A block whose signatures, certificates and batches checked out, ready to
/// be executed.
#[derive(Debug)]
pub struct VerifiedBlock {
    /// Its height.
    pub height: u64,
    /// The consensus block's hash.
    pub consensus_hash: Hash32,
    /// The consensus block's time, which the ledger header must carry.
    pub timestamp_ms: u64,
    /// The stored ledger header (compared with the one replay builds).
    pub header: Option<pb::BlockHeader>,
    /// The transactions, in order, every signature verified.
    pub transactions: Vec<VerifiedTx>,
    /// The stored receipts.
    pub receipts: Vec<pb::Receipt>,
    /// The stored state root after the block.
    pub state_root: Vec<u8>,
    /// The executed state the block's payload claims (certified by its
    /// quorum), checked against replay's own.
    pub claim: Option<pb::ExecutedState>,
    /// The digests of the batches it executed.
    pub digests: Vec<Hash32>,
}

/// What the verifier counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyCounts {
    /// Transaction signatures verified.
    pub transaction_signatures: u64,
    /// Batch certificates checked (each f + 1 signatures or more).
    pub batch_certificates: u64,
    /// Finality certificates checked (each a quorum of signatures).
    pub finality_certificates: u64,
    /// Batches ordered again by a later block, skipped as the node skips
    /// them.
    pub batches_skipped: u64,
}

/// Where the verifier starts.
#[derive(Clone, Debug)]
pub struct VerifierStart {
    /// The first height it will be given.
    pub height: u64,
    /// The consensus hash of the block below it (the genesis file's hash
    /// for height 1).
    pub parent: Hash32,
    /// The batches ordered below it, with the height that ordered each.
    pub ordered: HashMap<Hash32, u64>,
}

/// A verified block held until a later block proves it final.
struct Waiting {
    block: VerifiedBlock,
    /// The height and hash of the block its certificate commits.
    commits: (u64, Hash32),
}

/// The first stage of replay (see the module docs).
pub struct Verifier {
    chain_id: String,
    validators: ValidatorSet,
    next_height: u64,
    parent: Hash32,
    ordered: HashMap<Hash32, u64>,
    waiting: VecDeque<Waiting>,
    counts: VerifyCounts,
}

impl Verifier {
    /// A verifier for the chain `chain_id` validated by `validators`.
    pub fn new(chain_id: &str, validators: ValidatorSet, start: VerifierStart) -> Verifier {
        Verifier {
            chain_id: chain_id.to_string(),
            validators,
            next_height: start.height,
            parent: start.parent,
            ordered: start.ordered,
            waiting: VecDeque::new(),
            counts: VerifyCounts::default(),
        }
    }

    /// What it counted so far.
    pub fn counts(&self) -> VerifyCounts {
        self.counts
    }

    /// The batches ordered so far (for a checkpoint).
    pub fn ordered(&self) -> &HashMap<Hash32, u64> {
        &self.ordered
    }

    /// Heights verified but not yet proven final (a later block must
    /// arrive first).
    pub fn unproven(&self) -> Option<(u64, u64)> {
        let first = self.waiting.front()?.block.height;
        let last = self.waiting.back()?.block.height;
        Some((first, last))
    }

    /// Whether blocks wait for a later one.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The next height it expects.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Checks the next block (height ≥ 1) and returns the blocks now proven
    /// final, in height order.
    pub fn push(&mut self, source: super::SourceBlock) -> Result<Vec<VerifiedBlock>> {
        let height = source.height;
        if height != self.next_height {
            return Err(Discrepancy::at(
                self.next_height,
                "the next block's height",
                self.next_height.to_string(),
                height.to_string(),
            )
            .into());
        }
        let committed = CommittedBlock::decode(&source.certified).map_err(|error| {
            Discrepancy::at(
                height,
                "consensus block and finality certificate",
                "a decodable record",
                format!("bytes that do not decode ({error})"),
            )
        })?;
        let block = &committed.block;
        if block.height != Height(height) {
            return Err(Discrepancy::at(
                height,
                "the consensus block's height",
                height.to_string(),
                block.height.0.to_string(),
            )
            .into());
        }
        self.check_epoch(height, &committed)?;
        let hash = block.hash();
        // The certificate first: with a wrong validator set (a swapped key
        // in the genesis file) its signatures are what fails.
        let commits = self.check_finality(height, hash, &committed)?;
        if block.parent != self.parent {
            let expected = if height == 1 {
                format!("{} (the genesis file's hash)", self.parent)
            } else {
                self.parent.to_string()
            };
            return Err(Discrepancy::at(
                height,
                "the consensus block's parent",
                expected,
                block.parent.to_string(),
            )
            .into());
        }
        let payload = pb::BlockPayload::decode(block.payload.as_slice()).map_err(|error| {
            Discrepancy::at(
                height,
                "the block's payload",
                "a BlockPayload",
                format!("bytes that do not decode ({error})"),
            )
        })?;
        let executed = self.check_batches(height, &payload, &source)?;
        let verified = self.check_transactions(height, &source, &executed)?;
        for batch in &executed {
            self.ordered.insert(batch.digest, height);
        }
        let verified_block = VerifiedBlock {
            height,
            consensus_hash: hash,
            timestamp_ms: block.timestamp_ms,
            header: source.block.and_then(|block| block.header),
            transactions: verified,
            receipts: source.receipts,
            state_root: source.state_root,
            claim: payload.executed,
            digests: executed.iter().map(|batch| batch.digest).collect(),
        };
        self.parent = hash;
        self.next_height = height.saturating_add(1);
        if self.waiting.len() >= WAITING_BLOCKS_MAX {
            let first = self.waiting.front().map_or(height, |w| w.block.height);
            return Err(Discrepancy::at(
                first,
                "finality",
                format!("a certificate committing a block within {WAITING_BLOCKS_MAX} blocks"),
                "none yet".to_string(),
            )
            .into());
        }
        self.waiting.push_back(Waiting {
            block: verified_block,
            commits,
        });
        // Blocks whose certificate commits this one: it must be the block
        // the certificate names.
        for waiting in &self.waiting {
            if waiting.commits.0 == height && waiting.commits.1 != hash {
                return Err(Discrepancy::at(
                    waiting.block.height,
                    format!("the block at height {height} that its finality certificate commits"),
                    waiting.commits.1.to_string(),
                    hash.to_string(),
                )
                .into());
            }
        }
        let mut released = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|waiting| waiting.commits.0 <= height)
        {
            if let Some(waiting) = self.waiting.pop_front() {
                released.push(waiting.block);
            }
        }
        Ok(released)
    }

    /// Only epoch 0's set is known. A block that ends the epoch (names a
    /// next validator set) cannot be followed; a block of another epoch
    /// with no block ending epoch 0 before it is simply wrong.
    fn check_epoch(&self, height: u64, committed: &CommittedBlock) -> Result<()> {
        let epoch = self.validators.epoch();
        let block = &committed.block;
        if block.next_validators.is_some() || committed.epoch_end.is_some() {
            return Err(AuditError::UnknownEpoch {
                height,
                reason: format!("ends epoch {} and names a new validator set", epoch.0),
            });
        }
        for (what, got) in [
            ("the consensus block's epoch", block.epoch),
            (
                "the finality certificate's epoch",
                committed.commit_qc.vote.epoch,
            ),
        ] {
            if got != epoch {
                return Err(Discrepancy::at(
                    height,
                    what,
                    format!("{} (no block ended it)", epoch.0),
                    got.0.to_string(),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Checks the finality certificate's signatures and returns the height
    /// and hash of the block it commits (this one or a later one).
    fn check_finality(
        &mut self,
        height: u64,
        hash: Hash32,
        committed: &CommittedBlock,
    ) -> Result<(u64, Hash32)> {
        let qc = &committed.commit_qc;
        if let Err(error) = self.validators.verify_qc(qc, VerifyMode::Batched, true) {
            // Name the signer at fault, when it is one signature.
            let digest = qc.vote.signing_digest(self.validators.chain());
            let bad = qc.signatures.iter().find(|(signer, signature)| {
                self.validators
                    .verify_signature(*signer, &digest.0, signature, "vote")
                    .is_err()
            });
            let actual = match bad {
                Some((signer, _)) => format!("validator {}'s signature is invalid", signer.0),
                None => error.to_string(),
            };
            return Err(Discrepancy::at(
                height,
                "the finality certificate",
                format!(
                    "valid signatures of at least {} of the {} validators",
                    self.validators.quorum(),
                    self.validators.len()
                ),
                actual,
            )
            .into());
        }
        self.counts.finality_certificates += 1;
        let committed_hash = qc.vote.commits().ok_or_else(|| {
            Discrepancy::at(
                height,
                "the finality certificate",
                "a two-chain commit (a vote for a child in the next round)",
                format!(
                    "a vote in round {} on a parent of round {}",
                    qc.vote.round.0, qc.vote.parent_round.0
                ),
            )
        })?;
        let committed_height = qc.vote.height.0.saturating_sub(1);
        if committed_height < height || (committed_height == height && committed_hash != hash) {
            return Err(Discrepancy::at(
                height,
                "the block the finality certificate commits",
                format!("this block ({hash}) or a later one"),
                format!("block {committed_hash} at height {committed_height}"),
            )
            .into());
        }
        Ok((committed_height, committed_hash))
    }

    /// Checks the payload's certificates and returns the batches the block
    /// executes, in order (those ordered before, here or earlier, skipped).
    fn check_batches(
        &mut self,
        height: u64,
        payload: &pb::BlockPayload,
        source: &super::SourceBlock,
    ) -> Result<Vec<CertifiedBatch>> {
        if payload.batches.len() > BLOCK_BATCHES_MAX {
            return Err(Discrepancy::at(
                height,
                "batches in the block",
                format!("at most {BLOCK_BATCHES_MAX}"),
                payload.batches.len().to_string(),
            )
            .into());
        }
        let mut executed: Vec<CertifiedBatch> = Vec::with_capacity(payload.batches.len());
        for (index, certificate) in payload.batches.iter().enumerate() {
            let batch = check_certificate(certificate, &self.validators).map_err(|reason| {
                Discrepancy::at(
                    height,
                    format!("batch certificate {index}"),
                    "a valid certificate",
                    reason,
                )
            })?;
            self.counts.batch_certificates += 1;
            let again = executed.iter().any(|seen| seen.digest == batch.digest)
                || self.ordered.contains_key(&batch.digest);
            if again {
                self.counts.batches_skipped += 1;
                continue;
            }
            executed.push(batch);
        }
        let transactions: u64 = executed.iter().map(|batch| u64::from(batch.tx_count)).sum();
        if transactions > yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX as u64 {
            return Err(Discrepancy::at(
                height,
                "transactions the certificates order",
                format!("at most {}", yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX),
                transactions.to_string(),
            )
            .into());
        }
        if source.batch_sequences.len() != executed.len() {
            return Err(Discrepancy::at(
                height,
                "batches executed (their sequence numbers)",
                executed.len().to_string(),
                source.batch_sequences.len().to_string(),
            )
            .into());
        }
        Ok(executed)
    }

    /// Checks that the block's transactions are exactly the certified
    /// batches' and verifies every signature.
    fn check_transactions(
        &mut self,
        height: u64,
        source: &super::SourceBlock,
        executed: &[CertifiedBatch],
    ) -> Result<Vec<VerifiedTx>> {
        let empty = Vec::new();
        let signed = source
            .block
            .as_ref()
            .map_or(&empty, |block| &block.transactions);
        if source
            .block
            .as_ref()
            .and_then(|b| b.header.as_ref())
            .is_none()
        {
            return Err(Discrepancy::at(
                height,
                "the ledger block",
                "a block with a header",
                "none",
            )
            .into());
        }
        let certified: u64 = executed.iter().map(|batch| u64::from(batch.tx_count)).sum();
        if certified != signed.len() as u64 {
            return Err(Discrepancy::at(
                height,
                "transactions in the block",
                format!("{certified} (the certified batches')"),
                signed.len().to_string(),
            )
            .into());
        }
        // Decoding is per transaction and would run on one core; chunks of
        // whole equation groups (1,024 = 8 × 128) are decoded and verified
        // in parallel, and give exactly the equations of one call.
        let chain_id = self.chain_id.as_str();
        let results: Vec<_> = signed
            .par_chunks(VERIFY_CHUNK_TRANSACTIONS)
            .flat_map_iter(|chunk| tx::decode_and_verify_all(chunk, chain_id))
            .collect();
        self.counts.transaction_signatures += results.len() as u64;
        let mut verified = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(tx) => verified.push(tx),
                Err(error) => {
                    let id = signed
                        .get(index)
                        .map(|signed| tx::tx_id(&signed.body, &signed.signature));
                    return Err(Discrepancy::at(
                        height,
                        "the transaction",
                        "a valid, correctly signed transaction",
                        error.to_string(),
                    )
                    .in_tx(index, id)
                    .into());
                }
            }
        }
        let mut first = 0usize;
        for (index, batch) in executed.iter().enumerate() {
            let count = usize::try_from(batch.tx_count).unwrap_or(usize::MAX);
            let end = first.saturating_add(count);
            let (Some(transactions), Some(signed)) =
                (verified.get(first..end), signed.get(first..end))
            else {
                return Err(Discrepancy::at(
                    height,
                    "transactions in the block",
                    certified.to_string(),
                    signed.len().to_string(),
                )
                .into());
            };
            let sequence = source
                .batch_sequences
                .get(index)
                .copied()
                .unwrap_or_default();
            let ids: Vec<Hash32> = transactions.iter().map(|tx| tx.id).collect();
            let digest = batch_digest(&batch.author, batch.epoch, sequence, &ids);
            let what = || {
                format!(
                    "batch {index} (transactions {first}..{end}, author {}, sequence {sequence})",
                    &hex::encode(batch.author.0)[..16]
                )
            };
            if digest != batch.digest {
                return Err(Discrepancy::at(
                    height,
                    format!("{}: the digest of its transactions", what()),
                    format!("{} (certified)", batch.digest),
                    digest.to_string(),
                )
                .into());
            }
            let bytes: u64 = signed.iter().map(|tx| tx.encoded_len() as u64).sum();
            if bytes != batch.byte_size {
                return Err(Discrepancy::at(
                    height,
                    format!("{}: bytes of its transactions", what()),
                    format!("{} (certified)", batch.byte_size),
                    bytes.to_string(),
                )
                .into());
            }
            if let Some(spans) = &source.spans {
                let span = spans.get(index);
                let certified = batch.to_pb();
                let agrees = span.is_some_and(|span| {
                    span.batch.as_ref() == Some(&certified)
                        && span.first as usize == first
                        && span.count as usize == count
                });
                if !agrees {
                    return Err(Discrepancy::at(
                        height,
                        format!("the stored span of {}", what()),
                        format!("digest {digest}, first {first}, count {count}"),
                        span.map_or("none".to_string(), |span| {
                            format!(
                                "digest {}, first {}, count {}",
                                hex::encode(span.batch.as_ref().map_or(&[][..], |b| &b.digest)),
                                span.first,
                                span.count
                            )
                        }),
                    )
                    .into());
                }
            }
            first = end;
        }
        Ok(verified)
    }
}
