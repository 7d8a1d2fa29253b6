//! Admission: what the gateway's `SubmitTransaction` does. A transaction is
//! decoded and checked without state at once (size, canonical body, chain
//! id), then queued for signature verification, which runs in batches
//! (everything queued, up to [`VERIFY_BATCH_MAX`]) on the blocking pool and
//! all cores, never on the consensus task; then it is checked against the
//! latest executed state (known sender, its current key, sequence not used,
//! not expired) and put in the mempool. A refused transaction gets its
//! reason and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use yuchain_gateway::{Backend, ErrorKind, HistoryPage, SubmitError, TxStatus};
use yuchain_proto::tx::{self, VerifiedTx};
use yuchain_proto::{Address, Hash32, pb};
use yuchain_storage::BlockStore as _;

use crate::mempool::MempoolError;
use crate::shared::Shared;

/// The most transactions verified in one batch.
pub const VERIFY_BATCH_MAX: usize = 1_024;
/// The most transactions waiting for verification.
pub const VERIFY_QUEUE: usize = 16_384;

type Reply = oneshot::Sender<Result<Hash32, SubmitError>>;

/// The gateway's backend.
pub struct Admission {
    shared: Arc<Shared>,
    queue: mpsc::Sender<(pb::SignedTransaction, Reply)>,
}

impl Admission {
    /// Waits until the certified height is at least `min_height`, at most
    /// `timeout`; UNAVAILABLE (CERTIFIED_HEIGHT_NOT_REACHED) if it is not.
    async fn wait_certified(&self, min_height: u64, timeout: Duration) -> Result<(), SubmitError> {
        let mut certified = self.shared.certified.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            certified
                .wait_for(|height| height.is_some_and(|height| height >= min_height))
                .await
                .map(|_| ())
        })
        .await;
        if !matches!(reached, Ok(Ok(()))) {
            let now = *self.shared.certified.borrow();
            let message = match now {
                None => "this node has no certified state yet (a committed block must first \
                         certify a height it executed since it started); retry in a second"
                    .to_string(),
                Some(height) => format!(
                    "the certified state is at height {height}, below min_height {min_height}, \
                     after waiting {} ms; retry later or ask with a lower min_height",
                    timeout.as_millis()
                ),
            };
            return Err(SubmitError::new(
                ErrorKind::Unavailable,
                "CERTIFIED_HEIGHT_NOT_REACHED",
                message,
            ));
        }
        Ok(())
    }

    /// Starts the verifier task and returns the backend.
    pub fn start(shared: Arc<Shared>) -> Arc<Admission> {
        let (queue, receiver) = mpsc::channel(VERIFY_QUEUE);
        tokio::spawn(verifier(Arc::clone(&shared), receiver));
        Arc::new(Admission { shared, queue })
    }

    /// The stored record of the committed block at `height`, read on the
    /// blocking pool.
    async fn record(&self, height: u64) -> Result<Option<pb::CommittedBlockRecord>, SubmitError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            crate::chain::read_record(shared.store.as_ref(), height)
        })
        .await
        .map_err(|_| internal("reading a block"))?
        .map_err(|error| internal(&format!("{error:#}")))
    }

    fn reject(&self, error: SubmitError) -> SubmitError {
        self.shared.metrics.reject(error.reason);
        error
    }
}

#[tonic::async_trait]
impl Backend for Admission {
    async fn submit(&self, transaction: pb::SignedTransaction) -> Result<Hash32, SubmitError> {
        if self.shared.me.is_none() {
            return Err(self.reject(
                SubmitError::new(
                    ErrorKind::FailedPrecondition,
                    "NOT_A_VALIDATOR",
                    "this node is an observer and does not accept transactions; submit to a \
                 validator's gateway",
                )
                .with_field("node"),
            ));
        }
        let decoded = tx::decode(&transaction, &self.shared.chain_id)
            .map_err(|error| self.reject(SubmitError::from_tx_error(&error)))?;
        // A retry of a transaction already pending or committed gets its id
        // (and, waiting, its status), not a refusal of its used sequence.
        if self.shared.mempool().contains(&decoded.id)
            || committed_status(&self.shared, &decoded.id).is_some()
        {
            return Ok(decoded.id);
        }
        let (reply, answer) = oneshot::channel();
        self.queue.try_send((transaction, reply)).map_err(|_| {
            self.reject(SubmitError::new(
                ErrorKind::ResourceExhausted,
                "VERIFY_QUEUE_FULL",
                "the node is verifying as many transactions as it can; retry in a second",
            ))
        })?;
        answer.await.unwrap_or_else(|_| {
            Err(SubmitError::new(
                ErrorKind::Unavailable,
                "NOT_READY",
                "the node is shutting down; submit to another validator",
            ))
        })
    }

    async fn transaction(&self, id: Hash32) -> TxStatus {
        status(&self.shared, &id)
    }

    async fn chain_info(&self) -> Result<pb::GetChainInfoResponse, SubmitError> {
        let shared = Arc::clone(&self.shared);
        let (head, chain) = tokio::task::spawn_blocking(move || {
            let head = shared.store.head()?;
            let chain = shared
                .store
                .state(&yuchain_ledger::StateKey::Chain.to_bytes())?;
            anyhow::Ok((head, chain))
        })
        .await
        .map_err(|_| internal("reading the head"))?
        .map_err(|error| internal(&error.to_string()))?;
        let head = head.ok_or_else(|| internal("the store has no genesis"))?;
        // The chain totals as of the last durable block (a block written
        // between the two reads makes them one block newer, never older).
        let totals = chain
            .as_deref()
            .map(<pb::ChainState as prost::Message>::decode)
            .transpose()
            .map_err(|_| internal("decoding the chain state"))?
            .unwrap_or_default();
        Ok(pb::GetChainInfoResponse {
            chain_id: self.shared.chain_id.clone(),
            genesis_hash: self.shared.genesis_hash.0.to_vec(),
            height: head.height,
            block_hash: head.block_hash.0.to_vec(),
            state_root: head.state_root.0.to_vec(),
            validator_count: u32::try_from(self.shared.validators.len()).unwrap_or(u32::MAX),
            mempool_transactions: self.shared.mempool().len() as u64,
            epoch: self.shared.validators.epoch().0,
            validators: self
                .shared
                .validators
                .keys()
                .iter()
                .map(|key| key.0.to_vec())
                .collect(),
            issued: totals.issued,
            redeemed: totals.redeemed,
            parameters: Some(chain_parameters(&self.shared.params)),
        })
    }

    async fn block(&self, height: u64) -> Result<Option<pb::GetBlockResponse>, SubmitError> {
        let record = self.record(height).await?;
        Ok(record.map(|record| {
            let block = record.ledger.and_then(|ledger| ledger.block);
            let tx_count = block.as_ref().map_or(0, |block| {
                u32::try_from(block.transactions.len()).unwrap_or(u32::MAX)
            });
            pb::GetBlockResponse {
                height,
                header: block.and_then(|block| block.header),
                state_root: record.state_root,
                tx_count,
                certified: record.certified,
            }
        }))
    }

    async fn account(
        &self,
        address: Address,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetAccountResponse, SubmitError> {
        self.wait_certified(min_height, timeout).await?;
        let (certified, proof) = self
            .shared
            .proofs()
            .prove(&address)
            .ok_or_else(no_certified_state)?;
        let account = proof
            .value
            .as_deref()
            .map(<pb::Account as prost::Message>::decode)
            .transpose()
            .map_err(|_| internal("decoding an account record"))?;
        let (latest, latest_height) = {
            let ledger = self.shared.ledger();
            (
                ledger
                    .account(&address)
                    .map(yuchain_ledger::Account::to_proto),
                ledger.height(),
            )
        };
        Ok(pb::GetAccountResponse {
            account,
            height: certified.height,
            proof: Some(proof),
            certified: certified.certified.as_ref().clone(),
            latest,
            latest_height,
        })
    }

    async fn payment(
        &self,
        id: Hash32,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetPaymentResponse, SubmitError> {
        self.wait_certified(min_height, timeout).await?;
        let (certified, proof) = self
            .shared
            .proofs()
            .prove_payment(&id)
            .ok_or_else(no_certified_state)?;
        let payment = proof
            .value
            .as_deref()
            .map(<pb::PaymentRecord as prost::Message>::decode)
            .transpose()
            .map_err(|_| internal("decoding a payment record"))?;
        Ok(pb::GetPaymentResponse {
            payment,
            height: certified.height,
            proof: Some(proof),
            certified: certified.certified.as_ref().clone(),
        })
    }

    async fn history(
        &self,
        address: Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<HistoryPage, SubmitError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || history(&shared, &address, before, limit))
            .await
            .map_err(|_| internal("reading an account's history"))?
            .map_err(|error| internal(&format!("reading an account's history: {error:#}")))
    }

    async fn block_contents(
        &self,
        height: u64,
    ) -> Result<Option<pb::StreamBlocksResponse>, SubmitError> {
        let record = self.record(height).await?;
        Ok(record.map(|record| {
            let (block, receipts) = record
                .ledger
                .map(|ledger| (ledger.block, ledger.receipts))
                .unwrap_or_default();
            pb::StreamBlocksResponse {
                height,
                block,
                receipts,
                state_root: record.state_root,
                certified: record.certified,
                batch_sequences: record.batches.iter().map(|span| span.sequence).collect(),
            }
        }))
    }

    async fn wait_durable(&self, height: u64, timeout: Duration) {
        let mut durable = self.shared.durable.subscribe();
        let reached = async {
            let _ = durable.wait_for(|durable| *durable >= height).await;
        };
        let _ = tokio::time::timeout(timeout, reached).await;
    }

    async fn wait_committed(&self, id: Hash32, timeout: Duration) -> TxStatus {
        // Woken once, when the block holding it (or its expiry) is durable,
        // not at every height.
        let notify = self.shared.waiter(id);
        let now = {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut now = status(&self.shared, &id);
            if now == TxStatus::Pending && tokio::time::timeout(timeout, notified).await.is_ok() {
                now = status(&self.shared, &id);
            }
            now
        };
        self.shared.release_waiter(id, notify);
        now
    }
}

/// An account's history page with each transaction and receipt, read from
/// the committed blocks (each block once).
/// The most bytes of block records one history page reads: an entry needs
/// its whole block record, so a page of an account with one transaction in
/// each of many large blocks stops early (with a token for the rest).
pub const HISTORY_READ_BYTES_MAX: usize = 32 << 20;

fn history(
    shared: &Shared,
    address: &Address,
    before: Option<(u64, u32)>,
    limit: usize,
) -> anyhow::Result<HistoryPage> {
    let entries = shared.store.history(address, before, limit)?;
    let mut out = Vec::with_capacity(entries.len());
    let mut block: Option<(u64, pb::BlockRecord)> = None;
    let mut read = 0usize;
    for entry in entries {
        if block
            .as_ref()
            .is_none_or(|(height, _)| *height != entry.height)
        {
            if read >= HISTORY_READ_BYTES_MAX && !out.is_empty() {
                return Ok(HistoryPage {
                    entries: out,
                    more: true,
                });
            }
            let bytes = shared.store.block(entry.height)?.ok_or_else(|| {
                anyhow::anyhow!("history names block {} the store lacks", entry.height)
            })?;
            read = read.saturating_add(bytes.len());
            let record = <pb::CommittedBlockRecord as prost::Message>::decode(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("decoding the stored block {}", entry.height))?
                .ledger
                .ok_or_else(|| {
                    anyhow::anyhow!("the stored block {} has no ledger block", entry.height)
                })?;
            block = Some((entry.height, record));
        }
        let Some((_, record)) = block.as_ref() else {
            continue;
        };
        let index = entry.index as usize;
        let transaction = record
            .block
            .as_ref()
            .and_then(|block| block.transactions.get(index))
            .cloned();
        let receipt = record.receipts.get(index).cloned();
        anyhow::ensure!(
            transaction.is_some() && receipt.is_some(),
            "history names transaction {} of block {}, which it lacks",
            entry.index,
            entry.height
        );
        out.push(pb::AccountHistoryEntry {
            height: entry.height,
            index: entry.index,
            tx_id: entry.tx_id.0.to_vec(),
            transaction,
            receipt,
        });
    }
    Ok(HistoryPage {
        entries: out,
        more: false,
    })
}

fn internal(what: &str) -> SubmitError {
    SubmitError::new(
        ErrorKind::Internal,
        "INTERNAL",
        format!("the node failed {what}; see its log"),
    )
}

/// A transaction's status now: committed (durable, with its receipt),
/// pending (in the mempool, or executed but not yet durable), expired
/// (dropped unexecuted), or unknown.
///
/// The mempool is asked first: an entry leaves it only after its block is
/// durable, so a transaction missing from it and then from the store is
/// truly not committed (asked the other way round, a block made durable
/// between the two reads would show its transactions as unknown).
pub fn status(shared: &Shared, id: &Hash32) -> TxStatus {
    let pending = shared.mempool().contains(id);
    if let Some(committed) = committed_status(shared, id) {
        return committed;
    }
    if pending {
        return TxStatus::Pending;
    }
    if shared.expired().contains(id) {
        return TxStatus::Expired;
    }
    TxStatus::Unknown
}

/// The committed status of `id`, if its receipt is stored.
fn committed_status(shared: &Shared, id: &Hash32) -> Option<TxStatus> {
    let bytes = shared.store.receipt(id).ok()??;
    let receipt = <pb::Receipt as prost::Message>::decode(bytes.as_slice()).ok()?;
    Some(TxStatus::Committed {
        height: receipt.height,
        receipt,
    })
}

/// Verifies queued transactions in batches and admits the valid ones.
async fn verifier(
    shared: Arc<Shared>,
    mut receiver: mpsc::Receiver<(pb::SignedTransaction, Reply)>,
) {
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < VERIFY_BATCH_MAX {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (signed, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let chain_id = shared.chain_id.clone();
        let verified = tokio::task::spawn_blocking(move || {
            let results = tx::decode_and_verify_all(&signed, &chain_id);
            (signed, results)
        })
        .await;
        let Ok((signed, results)) = verified else {
            for reply in replies {
                let _ = reply.send(Err(SubmitError::new(
                    ErrorKind::Internal,
                    "INTERNAL",
                    "signature verification failed unexpectedly; retry",
                )));
            }
            continue;
        };
        for ((signed, result), reply) in signed.into_iter().zip(results).zip(replies) {
            let outcome = match result {
                Ok(verified) => admit(&shared, signed, verified),
                Err(error) => Err(SubmitError::from_tx_error(&error)),
            };
            match &outcome {
                Ok(_) => {
                    shared.metrics.admitted.inc();
                }
                Err(error) => shared.metrics.reject(error.reason),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// Checks a verified transaction against the executed state and puts it in
/// the mempool.
fn admit(
    shared: &Shared,
    signed: pb::SignedTransaction,
    verified: VerifiedTx,
) -> Result<Hash32, SubmitError> {
    let id = verified.id;
    let (next_sequence, height) = {
        let ledger = shared.ledger();
        let height = ledger.height();
        let Some(account) = ledger.account(&verified.sender) else {
            return Err(SubmitError::new(
                ErrorKind::FailedPrecondition,
                "UNKNOWN_SENDER",
                format!(
                    "no account {} on this chain yet; a bank must register the wallet first",
                    verified.sender
                ),
            )
            .with_field("sender"));
        };
        if account.auth_key != verified.public_key {
            return Err(SubmitError::new(
                ErrorKind::FailedPrecondition,
                "WRONG_KEY",
                "the transaction is signed with a key that is not the account's current key \
                 (was it rotated?)",
            )
            .with_field("sender"));
        }
        if account.status == pb::AccountStatus::Closed {
            return Err(SubmitError::new(
                ErrorKind::FailedPrecondition,
                "SENDER_CLOSED",
                "the sender's account is closed",
            )
            .with_field("sender"));
        }
        (account.next_sequence, height)
    };
    if verified.expiry_height <= height {
        return Err(SubmitError::new(
            ErrorKind::FailedPrecondition,
            "EXPIRED",
            format!(
                "the transaction expires at height {} and the chain is at {height}; sign it \
                 again with a later expiry_height",
                verified.expiry_height
            ),
        )
        .with_field("expiry_height"));
    }
    let mut mempool = shared.mempool();
    let result = mempool.insert(signed, verified, next_sequence);
    shared.update_mempool_metrics(&mempool);
    drop(mempool);
    match result {
        Ok(()) => Ok(id),
        Err(MempoolError::Duplicate(_)) => Ok(id),
        Err(error) => Err(mempool_error(&error)),
    }
}

/// A mempool refusal as a gateway error.
fn mempool_error(error: &MempoolError) -> SubmitError {
    let (kind, reason) = match error {
        MempoolError::Duplicate(_) => (ErrorKind::AlreadyExists, "DUPLICATE"),
        MempoolError::StaleSequence { .. } => (ErrorKind::FailedPrecondition, "STALE_SEQUENCE"),
        MempoolError::SequenceTooFar { .. } => (ErrorKind::FailedPrecondition, "SEQUENCE_TOO_FAR"),
        MempoolError::SequenceTaken(_) => (ErrorKind::AlreadyExists, "SEQUENCE_TAKEN"),
        MempoolError::SenderFull(_) => (ErrorKind::ResourceExhausted, "SENDER_FULL"),
        MempoolError::Full { .. } => (ErrorKind::ResourceExhausted, "MEMPOOL_FULL"),
    };
    let refusal = SubmitError::new(kind, reason, error.to_string());
    match error {
        MempoolError::StaleSequence { .. }
        | MempoolError::SequenceTooFar { .. }
        | MempoolError::SequenceTaken(_) => refusal.with_field("sequence"),
        _ => refusal,
    }
}

/// The chain's parameters as GetChainInfo answers them.
fn chain_parameters(params: &yuchain_ledger::ChainParams) -> pb::ChainParameters {
    use yuchain_ledger::params::{FeeRule, TierLimits};
    let tier = |tier: pb::KycTier, limits: &TierLimits| pb::TierLimits {
        tier: tier.into(),
        balance_max: limits.balance_max,
        per_payment_max: limits.per_payment_max,
        daily_max: limits.daily_max,
        annual_max: limits.annual_max,
    };
    let fee = |rule: &FeeRule| pb::FeeRule {
        flat: rule.flat,
        basis_points: rule.basis_points,
        max: rule.max,
    };
    pb::ChainParameters {
        tiers: vec![
            tier(pb::KycTier::Class1, &params.class_1),
            tier(pb::KycTier::Class2, &params.class_2),
            tier(pb::KycTier::Class3, &params.class_3),
            tier(pb::KycTier::Class4, &params.class_4),
        ],
        fees: Some(pb::FeeSchedule {
            transfer: Some(fee(&params.fees.transfer)),
            merchant_payment: Some(fee(&params.fees.merchant_payment)),
            refund: Some(fee(&params.fees.refund)),
            administrative: Some(fee(&params.fees.administrative)),
        }),
        transaction_bytes_max: u32::try_from(yuchain_proto::tx::TX_SIZE_BYTES_MAX)
            .unwrap_or(u32::MAX),
        block_transactions_max: u32::try_from(yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX)
            .unwrap_or(u32::MAX),
    }
}

/// The certified state went away between the wait and the proof (the view
/// moved on uncertified).
fn no_certified_state() -> SubmitError {
    SubmitError::new(
        ErrorKind::Unavailable,
        "CERTIFIED_HEIGHT_NOT_REACHED",
        "this node has no certified state just now; retry in a second",
    )
}
