//! What the node provides behind the gateway.

use std::time::Duration;

use yuchain_proto::pb;
use yuchain_proto::{Address, Hash32};

use crate::error::SubmitError;

/// The node behind the gateway: admission and transaction status.
///
/// Object-safe (`Arc<dyn Backend>`), so the node, the devnet and tests each
/// plug in their own.
#[tonic::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Admits a signed transaction: decode, canonical-body and signature
    /// checks, state checks, mempool. Returns its id.
    async fn submit(&self, transaction: pb::SignedTransaction) -> Result<Hash32, SubmitError>;
    /// The transaction's status now.
    async fn transaction(&self, id: Hash32) -> TxStatus;
    /// Waits until the transaction is committed (or expired/unknown), at most
    /// `timeout`; returns the status then.
    async fn wait_committed(&self, id: Hash32, timeout: Duration) -> TxStatus;
    /// The chain's identity and the node's durable head.
    async fn chain_info(&self) -> Result<pb::GetChainInfoResponse, SubmitError>;
    /// The committed block at `height`, or `None` above the durable head.
    async fn block(&self, height: u64) -> Result<Option<pb::GetBlockResponse>, SubmitError>;
    /// The account at the latest certified height, once that height is at
    /// least `min_height` (waiting at most `timeout` for it), with its proof
    /// and the committed block that certifies the root.
    async fn account(
        &self,
        address: Address,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetAccountResponse, SubmitError>;
    /// The merchant payment `id` at the latest certified height, as
    /// [`Backend::account`]: once that height is at least `min_height`
    /// (waiting at most `timeout`), with its proof and the committed block
    /// that certifies the root.
    async fn payment(
        &self,
        id: Hash32,
        min_height: u64,
        timeout: Duration,
    ) -> Result<pb::GetPaymentResponse, SubmitError>;
    /// Up to `limit` history entries of `address`, newest first, strictly
    /// older than the `(height, index)` position `before` if given. The
    /// backend may stop early (to bound what one page reads) and says so
    /// in [`HistoryPage::more`].
    async fn history(
        &self,
        address: Address,
        before: Option<(u64, u32)>,
        limit: usize,
    ) -> Result<HistoryPage, SubmitError>;
    /// The committed block at `height` in full (transactions, receipts,
    /// state root, certificate), or `None` above the durable head.
    async fn block_contents(
        &self,
        height: u64,
    ) -> Result<Option<pb::StreamBlocksResponse>, SubmitError>;
    /// Returns once the durable height is at least `height`, or after
    /// `timeout`.
    async fn wait_durable(&self, height: u64, timeout: Duration);
}

/// A page of an account's history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPage {
    /// Newest first.
    pub entries: Vec<pb::AccountHistoryEntry>,
    /// The backend stopped before `limit` entries although older ones may
    /// exist (it bounds what one page reads).
    pub more: bool,
}

/// Where a transaction is, as the node knows it.
#[derive(Clone, Debug, PartialEq)]
pub enum TxStatus {
    /// Admitted, not yet committed.
    Pending,
    /// Included in the committed block at `height`, with its receipt.
    Committed {
        /// The block's height.
        height: u64,
        /// The transaction's receipt in that block.
        receipt: pb::Receipt,
    },
    /// Never seen, or forgotten before it was committed.
    Unknown,
    /// Its expiry height passed before it was committed.
    Expired,
}

impl TxStatus {
    /// The wire form: status, receipt (when committed) and height (0 unless
    /// committed).
    pub(crate) fn into_wire(self) -> (pb::TransactionStatus, Option<pb::Receipt>, u64) {
        match self {
            TxStatus::Pending => (pb::TransactionStatus::Pending, None, 0),
            TxStatus::Committed { height, receipt } => {
                (pb::TransactionStatus::Committed, Some(receipt), height)
            }
            TxStatus::Unknown => (pb::TransactionStatus::Unknown, None, 0),
            TxStatus::Expired => (pb::TransactionStatus::Expired, None, 0),
        }
    }
}
