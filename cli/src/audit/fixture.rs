//! A certified chain built in-process, in the node's storage format, for
//! the tamper tests and the replay benchmark: four validators with fixture
//! keys sign batch certificates (f + 1 acknowledgements) and quorum
//! certificates (2f + 1 votes), blocks carry the executed state two below
//! them, and some blocks are final only through a later block's
//! certificate (as after a timeout), so replay's wait for finality is
//! exercised too. Never for a real chain: the validator keys derive from
//! public labels.

use prost::Message as _;
use yuchain_consensus::types::{Epoch, Height, Round, ValidatorId, Vote, VoteData};
use yuchain_consensus::{Block, CommittedBlock, QuorumCert};
use yuchain_ledger::ledger::consumes_sequence;
use yuchain_ledger::{AppliedBlock, Ledger};
use yuchain_proto::{Hash32, SigningKey, pb, tx};
use yuchain_storage::BlockCommit;

use super::batches::{CertifiedBatch, batch_digest};
use super::genesis::{AuditGenesis, Card, GenesisDocument};

/// How many validators the fixture chain has.
pub const FIXTURE_VALIDATORS: usize = 4;

/// The fixture validators' consensus keys.
pub fn validator_keys() -> Vec<SigningKey> {
    (0..FIXTURE_VALIDATORS)
        .map(|index| SigningKey::for_test(&format!("audit-validator-{index}")))
        .collect()
}

/// A genesis document for `ledger` validated by the fixture validators.
pub fn genesis_document(ledger: yuchain_ledger::Genesis) -> GenesisDocument {
    GenesisDocument {
        ledger,
        validators: validator_keys()
            .iter()
            .enumerate()
            .map(|(index, key)| Card {
                name: format!("validator-{index}"),
                consensus_public_key: hex::encode(key.public_key().0),
                network_public_key: hex::encode(
                    SigningKey::for_test(&format!("audit-network-{index}"))
                        .public_key()
                        .0,
                ),
                address: format!("127.0.0.1:{}", 7_100 + index),
            })
            .collect(),
    }
}

/// A block executed and signed, waiting for the certificate that commits it.
struct Pending {
    block: Block,
    ledger_block: pb::Block,
    applied: AppliedBlock,
    spans: Vec<pb::BatchSpan>,
    digests: Vec<Hash32>,
}

/// Builds the chain block by block; [`FixtureBuilder::take_ready`] hands
/// out the finished records (genesis first) to commit to a store.
pub struct FixtureBuilder {
    /// The genesis the chain starts from.
    pub genesis: AuditGenesis,
    validators: Vec<SigningKey>,
    /// The ledger, at the last block built.
    pub ledger: Ledger,
    executed: Vec<(Hash32, Hash32)>,
    parent: (Hash32, Round, Height, QuorumCert),
    next_sequence: Vec<u64>,
    time_ms: u64,
    pending: Vec<Pending>,
    ready: Vec<BlockCommit>,
    last_certificate: Option<pb::BatchCertificate>,
}

fn signers_of(height: u64) -> Vec<u16> {
    // Three of the four validators (a quorum), a different one left out
    // each block.
    let left_out = (height % FIXTURE_VALIDATORS as u64) as u16;
    (0..FIXTURE_VALIDATORS as u16)
        .filter(|index| *index != left_out)
        .collect()
}

impl FixtureBuilder {
    /// A chain of `ledger`'s genesis.
    pub fn new(ledger: yuchain_ledger::Genesis) -> FixtureBuilder {
        let genesis = AuditGenesis::from_document("fixture genesis", genesis_document(ledger))
            .expect("the fixture genesis is valid");
        let (ledger, applied) =
            Ledger::genesis(genesis.ledger()).expect("the fixture ledger genesis is valid");
        let record = pb::CommittedBlockRecord {
            ledger: Some(pb::BlockRecord {
                block: None,
                receipts: Vec::new(),
            }),
            certified: Vec::new(),
            batches: Vec::new(),
            state_root: applied.state_root.0.to_vec(),
        };
        let genesis_commit = commit_of(record.encode_to_vec(), &applied, Vec::new());
        let root = genesis.hash;
        FixtureBuilder {
            time_ms: genesis.ledger().genesis_time_ms,
            validators: validator_keys(),
            executed: vec![(applied.block_hash, applied.state_root)],
            parent: (
                root,
                Round(0),
                Height(0),
                QuorumCert::root(Epoch(0), root, Height(0)),
            ),
            next_sequence: vec![0; FIXTURE_VALIDATORS],
            pending: Vec::new(),
            ready: vec![genesis_commit],
            last_certificate: None,
            genesis,
            ledger,
        }
    }

    /// The finished records so far, in height order.
    pub fn take_ready(&mut self) -> Vec<BlockCommit> {
        std::mem::take(&mut self.ready)
    }

    fn certificate(
        &mut self,
        author: usize,
        transactions: &[pb::SignedTransaction],
    ) -> (pb::BatchCertificate, pb::BatchSpan, Hash32, u64) {
        let ids: Vec<Hash32> = transactions
            .iter()
            .map(|signed| tx::tx_id(&signed.body, &signed.signature))
            .collect();
        let sequence = self.next_sequence[author];
        self.next_sequence[author] += 1;
        let author_key = self.validators[author].public_key();
        let batch = CertifiedBatch {
            digest: batch_digest(&author_key, Epoch(0), sequence, &ids),
            author: author_key,
            epoch: Epoch(0),
            tx_count: u32::try_from(ids.len()).expect("a small batch"),
            byte_size: transactions.iter().map(|t| t.encoded_len() as u64).sum(),
        };
        let reference = pb::BatchRef {
            digest: batch.digest.0.to_vec(),
            author: author_key.0.to_vec(),
            epoch: 0,
            tx_count: batch.tx_count,
            byte_size: batch.byte_size,
        };
        // The author and the next validator acknowledge (f + 1 = 2).
        let mut signers = [author, (author + 1) % FIXTURE_VALIDATORS];
        signers.sort_unstable();
        let certificate = pb::BatchCertificate {
            batch: Some(reference.clone()),
            signatures: signers
                .iter()
                .map(|&signer| pb::BatchSignature {
                    signer: signer as u32,
                    signature: self.validators[signer]
                        .sign(&batch.signing_digest().0)
                        .0
                        .to_vec(),
                })
                .collect(),
        };
        let span = pb::BatchSpan {
            batch: Some(reference),
            sequence,
            first: 0,
            count: batch.tx_count,
        };
        (certificate, span, batch.digest, sequence)
    }

    /// Builds the next block from `batches` (each a list of signed
    /// transactions, authored by validators in turn). With
    /// `reorder_previous`, the payload also orders the previous block's
    /// first batch again (the chain skips it, as a node does). Returns the
    /// block's height.
    pub fn block(
        &mut self,
        batches: Vec<Vec<pb::SignedTransaction>>,
        reorder_previous: bool,
    ) -> u64 {
        let height = self.ledger.height() + 1;
        self.time_ms += 1_000;
        let mut certificates = Vec::new();
        let mut spans = Vec::new();
        let mut digests = Vec::new();
        let mut signed = Vec::new();
        for (index, transactions) in batches.into_iter().enumerate() {
            if transactions.is_empty() {
                continue;
            }
            let author = (height as usize + index) % FIXTURE_VALIDATORS;
            let (certificate, mut span, digest, _) = self.certificate(author, &transactions);
            span.first = u32::try_from(signed.len()).expect("a small block");
            certificates.push(certificate);
            spans.push(span);
            digests.push(digest);
            signed.extend(transactions);
        }
        let first_certificate = certificates.first().cloned();
        if reorder_previous && let Some(previous) = self.last_certificate.clone() {
            certificates.push(previous);
        }
        if first_certificate.is_some() {
            self.last_certificate = first_certificate;
        }
        let claim_height = height.saturating_sub(2);
        let (claim_hash, claim_root) = self.executed[claim_height as usize];
        let payload = pb::BlockPayload {
            batches: certificates,
            executed: Some(pb::ExecutedState {
                height: claim_height,
                block_hash: claim_hash.0.to_vec(),
                state_root: claim_root.0.to_vec(),
            }),
        };
        let (parent_hash, parent_round, _, justify) = self.parent.clone();
        let round = Round(parent_round.0 + 1);
        let block = Block {
            epoch: Epoch(0),
            round,
            height: Height(height),
            parent: parent_hash,
            justify,
            timestamp_ms: self.time_ms,
            proposer: ValidatorId((round.0 % FIXTURE_VALIDATORS as u64) as u16),
            payload: payload.encode_to_vec(),
            next_validators: None,
        };
        let verified: Vec<tx::VerifiedTx> = tx::decode_attested_all(
            &signed,
            self.ledger.chain_id(),
            tx::Attestation {
                reason: "the fixture signed these transactions itself",
            },
        )
        .into_iter()
        .map(|result| result.expect("fixture transactions decode"))
        .collect();
        let ids: Vec<Hash32> = verified.iter().map(|tx| tx.id).collect();
        let header = self.ledger.build_header(&ids, self.time_ms);
        let applied = self
            .ledger
            .apply_checked(&header, &verified)
            .expect("the fixture block applies");
        self.executed.push((applied.block_hash, applied.state_root));
        self.certify_parent(&block, false);
        self.pending.push(Pending {
            block,
            ledger_block: pb::Block {
                header: Some(header),
                transactions: signed,
            },
            applied,
            spans,
            digests,
        });
        height
    }

    /// `child` certifies its parent: a quorum votes for it, and that
    /// certificate commits the parent (consecutive rounds). Every fifth
    /// block is left to be committed with its child by the next
    /// certificate, as after a timeout (unless `now`).
    fn certify_parent(&mut self, child: &Block, now: bool) {
        let vote = VoteData {
            epoch: Epoch(0),
            round: child.round,
            block: child.hash(),
            height: child.height,
            parent: child.parent,
            parent_round: self.parent.1,
        };
        let qc = QuorumCert {
            vote,
            signatures: signers_of(child.height.0)
                .into_iter()
                .map(|signer| {
                    let signed = Vote::sign(
                        &self.validators[usize::from(signer)],
                        &yuchain_consensus::ChainTag::of(self.ledger.chain_id()),
                        vote,
                        ValidatorId(signer),
                    );
                    (ValidatorId(signer), signed.signature)
                })
                .collect(),
        };
        self.parent = (child.hash(), child.round, child.height, qc.clone());
        let deferred = !now
            && self
                .pending
                .last()
                .is_some_and(|last| last.block.height.0 % 5 == 3);
        if self.pending.is_empty() || deferred {
            return;
        }
        for pending in std::mem::take(&mut self.pending) {
            let record = pb::CommittedBlockRecord {
                ledger: Some(pb::BlockRecord {
                    block: Some(pending.ledger_block),
                    receipts: pending.applied.receipts.clone(),
                }),
                certified: CommittedBlock {
                    block: pending.block,
                    commit_qc: qc.clone(),
                    epoch_end: None,
                }
                .encode(),
                batches: pending.spans,
                state_root: pending.applied.state_root.0.to_vec(),
            };
            self.ready.push(commit_of(
                record.encode_to_vec(),
                &pending.applied,
                pending.digests,
            ));
        }
    }

    /// Certifies the last blocks with an empty child (not stored) and
    /// returns the remaining records.
    pub fn finish(mut self) -> (AuditGenesis, Vec<BlockCommit>) {
        if !self.pending.is_empty() {
            let (parent_hash, parent_round, parent_height, justify) = self.parent.clone();
            let child = Block {
                epoch: Epoch(0),
                round: Round(parent_round.0 + 1),
                height: Height(parent_height.0 + 1),
                parent: parent_hash,
                justify,
                timestamp_ms: self.time_ms + 1_000,
                proposer: ValidatorId(0),
                payload: Vec::new(),
                next_validators: None,
            };
            self.certify_parent(&child, true);
        }
        let ready = self.take_ready();
        (self.genesis, ready)
    }
}

/// The store commit of a block record, as the node writes it: the record,
/// receipts and locations of the transactions that used their sequence,
/// the state changes, history and the batches ordered.
fn commit_of(record: Vec<u8>, applied: &AppliedBlock, ordered_batches: Vec<Hash32>) -> BlockCommit {
    let mut transactions = Vec::new();
    let mut receipts = Vec::new();
    for receipt in &applied.receipts {
        let code = pb::ResultCode::try_from(receipt.code).unwrap_or(pb::ResultCode::Unspecified);
        let Some(id) = Hash32::from_slice(&receipt.tx_id) else {
            continue;
        };
        if consumes_sequence(code) {
            let location = pb::TxLocation {
                height: receipt.height,
                index: receipt.index,
            };
            transactions.push((id, location.encode_to_vec()));
            receipts.push((id, receipt.encode_to_vec()));
        }
    }
    BlockCommit {
        height: applied.height,
        block_hash: applied.block_hash,
        state_root: applied.state_root,
        block: record,
        transactions,
        receipts,
        state: applied.state_changes.clone(),
        tree_nodes: applied.tree_diff.nodes.clone(),
        history: applied.history.clone(),
        ordered_batches,
    }
}
