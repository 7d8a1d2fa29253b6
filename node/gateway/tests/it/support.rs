//! A fake in-memory backend and a gateway on a loopback port for each test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use yuchain_gateway::{
    Backend, Gateway, GatewayConfig, GatewayError, HistoryPage, SubmitError, TxStatus,
    WalletGatewayClient,
};
use yuchain_proto::pb;
use yuchain_proto::{Address, Hash32, tx};

/// The height at which `auto_commit` commits.
pub(crate) const AUTO_COMMIT_HEIGHT: u64 = 7;

/// Every test step is bounded by this, so a hang fails instead of stalling.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `future` under [`STEP_TIMEOUT`].
pub(crate) async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .expect("the step finished in time")
}

/// An in-memory node: it admits every transaction (unless told to refuse the
/// next), and commits one when the test says so or, with `auto_commit`,
/// shortly after admitting it.
pub(crate) struct FakeBackend {
    ledger: Arc<FakeLedger>,
    refusal: Mutex<Option<SubmitError>>,
    auto_commit: Mutex<Option<Duration>>,
    /// The streamed chain's head (blocks 0..=head exist).
    head: watch::Sender<u64>,
    /// How many times a block's contents were asked for.
    pub(crate) block_reads: std::sync::atomic::AtomicU64,
    /// Bytes of padding in each streamed block's transaction.
    pub(crate) block_padding: std::sync::atomic::AtomicUsize,
    /// History entries per page at most (0: no cap).
    pub(crate) history_cap: std::sync::atomic::AtomicUsize,
}

impl Default for FakeBackend {
    fn default() -> Self {
        FakeBackend {
            ledger: Arc::default(),
            refusal: Mutex::default(),
            auto_commit: Mutex::default(),
            head: watch::Sender::new(FAKE_HEIGHT),
            block_reads: std::sync::atomic::AtomicU64::new(0),
            block_padding: std::sync::atomic::AtomicUsize::new(0),
            history_cap: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The statuses, shared with the tasks that commit later.
#[derive(Default)]
struct FakeLedger {
    statuses: Mutex<HashMap<Hash32, TxStatus>>,
    /// Bumped on every status change, so waiters wake.
    changes: watch::Sender<u64>,
}

impl FakeLedger {
    fn set(&self, id: Hash32, status: TxStatus) {
        self.statuses.lock().expect("lock").insert(id, status);
        self.changes.send_modify(|version| *version += 1);
    }

    fn status(&self, id: Hash32) -> TxStatus {
        self.statuses
            .lock()
            .expect("lock")
            .get(&id)
            .cloned()
            .unwrap_or(TxStatus::Unknown)
    }
}

impl FakeBackend {
    pub(crate) fn new() -> Arc<FakeBackend> {
        Arc::new(FakeBackend::default())
    }

    /// The next submit is refused with `error`.
    pub(crate) fn refuse_next(&self, error: SubmitError) {
        *self.refusal.lock().expect("lock") = Some(error);
    }

    /// Every later admitted transaction commits at height 7, `after` its
    /// admission.
    pub(crate) fn auto_commit(&self, after: Duration) {
        *self.auto_commit.lock().expect("lock") = Some(after);
    }

    /// Commits blocks up to `height` (for streams).
    pub(crate) fn grow_to(&self, height: u64) {
        self.head.send_replace(height);
    }

    pub(crate) fn set(&self, id: Hash32, status: TxStatus) {
        self.ledger.set(id, status);
    }

    pub(crate) fn status_of(&self, id: Hash32) -> TxStatus {
        self.ledger.status(id)
    }

    /// Commits `id` at `height` with an OK receipt.
    pub(crate) fn commit(&self, id: Hash32, height: u64) {
        self.set(
            id,
            TxStatus::Committed {
                height,
                receipt: receipt(id, height),
            },
        );
    }
}

/// The fake chain never grows: a wait for a height above it runs out.
async fn wait_certified(min_height: u64, timeout: Duration) -> Result<(), SubmitError> {
    if min_height > FAKE_HEIGHT {
        tokio::time::sleep(timeout).await;
        return Err(SubmitError::new(
            yuchain_gateway::ErrorKind::Unavailable,
            "CERTIFIED_HEIGHT_NOT_REACHED",
            "the fake chain stays at height 3",
        ));
    }
    Ok(())
}

/// The receipt the fake writes for `id` committed at `height`.
pub(crate) fn receipt(id: Hash32, height: u64) -> pb::Receipt {
    pb::Receipt {
        tx_id: id.as_bytes().to_vec(),
        code: pb::ResultCode::Ok.into(),
        fee: 1,
        height,
        index: 0,
    }
}

#[tonic::async_trait]
impl Backend for FakeBackend {
    async fn submit(&self, transaction: pb::SignedTransaction) -> Result<Hash32, SubmitError> {
        if let Some(error) = self.refusal.lock().expect("lock").take() {
            return Err(error);
        }
        let id = tx::tx_id(&transaction.body, &transaction.signature);
        self.ledger.set(id, TxStatus::Pending);
        let auto_commit = *self.auto_commit.lock().expect("lock");
        if let Some(after) = auto_commit {
            let ledger = Arc::clone(&self.ledger);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                ledger.set(
                    id,
                    TxStatus::Committed {
                        height: AUTO_COMMIT_HEIGHT,
                        receipt: receipt(id, AUTO_COMMIT_HEIGHT),
                    },
                );
            });
        }
        Ok(id)
    }

    async fn transaction(&self, id: Hash32) -> TxStatus {
        self.ledger.status(id)
    }

    async fn wait_committed(&self, id: Hash32, timeout: Duration) -> TxStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.ledger.changes.subscribe();
        loop {
            let status = self.ledger.status(id);
            if status != TxStatus::Pending {
                return status;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.ledger.status(id),
            }
        }
    }

    async fn chain_info(&self) -> Result<pb::GetChainInfoResponse, SubmitError> {
        Ok(pb::GetChainInfoResponse {
            chain_id: FAKE_CHAIN_ID.into(),
            height: FAKE_HEIGHT,
            state_root: vec![5; 32],
            ..pb::GetChainInfoResponse::default()
        })
    }

    async fn block(&self, height: u64) -> Result<Option<pb::GetBlockResponse>, SubmitError> {
        Ok((height <= FAKE_HEIGHT).then(|| pb::GetBlockResponse {
            height,
            state_root: vec![u8::try_from(height).unwrap_or(0); 32],
            ..pb::GetBlockResponse::default()
        }))
    }

    async fn account(
        &self,
        address: Address,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetAccountResponse, SubmitError> {
        wait_certified(min_height, timeout).await?;
        Ok(pb::GetAccountResponse {
            account: (address == fake_account()).then(|| pb::Account {
                address: address.0.to_vec(),
                balance: 1_234,
                ..pb::Account::default()
            }),
            height: FAKE_HEIGHT,
            ..pb::GetAccountResponse::default()
        })
    }

    async fn payment(
        &self,
        id: Hash32,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetPaymentResponse, SubmitError> {
        wait_certified(min_height, timeout).await?;
        Ok(pb::GetPaymentResponse {
            payment: (id == fake_payment()).then(|| pb::PaymentRecord {
                payer: fake_account().0.to_vec(),
                amount: 2_500,
                refunded: 1_000,
                ..pb::PaymentRecord::default()
            }),
            height: FAKE_HEIGHT,
            ..pb::GetPaymentResponse::default()
        })
    }

    async fn history(
        &self,
        address: Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<HistoryPage, SubmitError> {
        if address != fake_account() {
            return Ok(HistoryPage::default());
        }
        // FAKE_HISTORY entries, one per height 1..=FAKE_HISTORY, index 0;
        // with a read cap, at most that many per page (as a node bounding
        // what one page reads).
        let cap = self.history_cap.load(std::sync::atomic::Ordering::Relaxed);
        let wanted = if cap == 0 { limit } else { limit.min(cap) };
        let entries: Vec<_> = (1..=FAKE_HISTORY)
            .rev()
            .map(|height| (height, 0u32))
            .filter(|position| before.is_none_or(|before| *position < before))
            .take(wanted)
            .map(|(height, index)| pb::AccountHistoryEntry {
                height,
                index,
                tx_id: vec![u8::try_from(height % 256).unwrap_or(0); 32],
                ..pb::AccountHistoryEntry::default()
            })
            .collect();
        let more = wanted < limit && entries.last().is_some_and(|last| last.height > 1);
        Ok(HistoryPage { entries, more })
    }

    async fn block_contents(
        &self,
        height: u64,
    ) -> Result<Option<pb::StreamBlocksResponse>, SubmitError> {
        use std::sync::atomic::Ordering;
        self.block_reads.fetch_add(1, Ordering::Relaxed);
        let padding = self.block_padding.load(Ordering::Relaxed);
        Ok((height <= *self.head.borrow()).then(|| fake_block(height, padding)))
    }

    async fn wait_durable(&self, height: u64, timeout: Duration) {
        let mut head = self.head.subscribe();
        let reached = async {
            let _ = head.wait_for(|head| *head >= height).await;
        };
        let _ = tokio::time::timeout(timeout, reached).await;
    }
}

/// The fake block at `height`: one transaction, whose receipt's id is the
/// height's bytes.
pub(crate) fn fake_block(height: u64, padding: usize) -> pb::StreamBlocksResponse {
    let mut body = height.to_le_bytes().to_vec();
    body.resize(8 + padding, 0);
    pb::StreamBlocksResponse {
        height,
        block: Some(pb::Block {
            header: Some(pb::BlockHeader {
                height,
                timestamp_ms: 1_000 + height,
                ..pb::BlockHeader::default()
            }),
            transactions: vec![pb::SignedTransaction {
                body,
                signature: vec![1; 64],
            }],
        }),
        receipts: vec![pb::Receipt {
            tx_id: height.to_le_bytes().to_vec(),
            height,
            ..pb::Receipt::default()
        }],
        state_root: vec![2; 32],
        certified: Vec::new(),
        batch_sequences: Vec::new(),
    }
}

/// The one account the fake chain has.
pub(crate) fn fake_payment() -> Hash32 {
    Hash32([0x5A; 32])
}

pub(crate) fn fake_account() -> Address {
    Address([9; 20])
}

/// How many history entries the fake account has.
pub(crate) const FAKE_HISTORY: u64 = 45;

/// The fake chain's id.
pub(crate) const FAKE_CHAIN_ID: &str = "fake-chain";
/// The fake chain's height.
pub(crate) const FAKE_HEIGHT: u64 = 3;

/// A gateway serving `backend` on a loopback port, stopped when dropped.
pub(crate) struct TestGateway {
    pub(crate) address: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<Result<(), GatewayError>>>,
}

impl TestGateway {
    pub(crate) async fn start(backend: Arc<FakeBackend>) -> TestGateway {
        TestGateway::start_with(test_config(), backend).await
    }

    pub(crate) async fn start_with(
        config: GatewayConfig,
        backend: Arc<FakeBackend>,
    ) -> TestGateway {
        let gateway = bounded(Gateway::bind(config, backend))
            .await
            .expect("the gateway binds a loopback port");
        let address = gateway.local_addr();
        assert_ne!(address.port(), 0, "bind reports the port the OS chose");
        let (shutdown, stop) = oneshot::channel();
        let serving = tokio::spawn(gateway.serve(async move {
            let _ = stop.await;
        }));
        TestGateway {
            address,
            shutdown: Some(shutdown),
            serving: Some(serving),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) async fn client(&self) -> WalletGatewayClient<Channel> {
        bounded(WalletGatewayClient::connect(self.endpoint()))
            .await
            .expect("the client connects")
    }

    /// Resolves the shutdown future and returns what `serve` returned.
    pub(crate) async fn stop(mut self) -> Result<(), GatewayError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let serving = self.serving.take().expect("still serving");
        bounded(serving).await.expect("serve did not panic")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

/// Loopback, port 0, short waits so timeouts are quick to test.
pub(crate) fn test_config() -> GatewayConfig {
    GatewayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        wait_timeout_default: Duration::from_millis(300),
        wait_timeout_max: Duration::from_secs(2),
        ..GatewayConfig::default()
    }
}

/// A signed transaction as far as the gateway is concerned: the fake backend
/// checks nothing, and its id is `tx::tx_id` of these bytes.
pub(crate) fn transaction(seed: u8) -> pb::SignedTransaction {
    pb::SignedTransaction {
        body: vec![seed; 40],
        signature: vec![seed.wrapping_add(1); 64],
    }
}

pub(crate) fn id_of(transaction: &pb::SignedTransaction) -> Hash32 {
    tx::tx_id(&transaction.body, &transaction.signature)
}

pub(crate) fn submit_request(
    transaction: pb::SignedTransaction,
    wait_for_commit: bool,
    wait_timeout_ms: u32,
) -> pb::SubmitTransactionRequest {
    pb::SubmitTransactionRequest {
        transaction: Some(transaction),
        wait_for_commit,
        wait_timeout_ms,
    }
}
