//! The `WalletGateway` handlers: check the request's shape, call the backend,
//! translate the answer.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use yuchain_proto::pb;
use yuchain_proto::{Address, Hash32};

use crate::backend::Backend;
use crate::error::{ErrorKind, SubmitError};
use crate::generated::wallet_gateway_server::WalletGateway;
use crate::stream::{self, Streams};

/// How much longer than the granted wait the gateway lets a backend's
/// `wait_committed` run before it stops waiting and asks for the status
/// itself, so a backend that overshoots never holds a request open.
const WAIT_GRACE: Duration = Duration::from_secs(1);

/// The history page size when a request asks for 0.
pub const HISTORY_PAGE_DEFAULT: usize = 20;
/// The largest history page.
pub const HISTORY_PAGE_MAX: usize = 500;

/// Parses a 20-byte address field.
fn address_field(bytes: &[u8], field: &str) -> Result<Address, SubmitError> {
    Address::from_slice(bytes).map_err(|_| {
        SubmitError::new(
            ErrorKind::InvalidArgument,
            "INVALID_ADDRESS",
            format!(
                "{field} is {} bytes; an address is 20 bytes (the bech32m `yu1...` form decoded)",
                bytes.len()
            ),
        )
        .with_field("address")
    })
}

/// Waits for a backend answer that itself waits for the certified height
/// `min_height` (at most `timeout`); a backend that overruns its wait by
/// more than [`WAIT_GRACE`] is answered UNAVAILABLE, as a wait that ran out.
async fn certified_answer<T>(
    answer: impl std::future::Future<Output = Result<T, SubmitError>>,
    timeout: Duration,
    min_height: u64,
) -> Result<Response<T>, Status> {
    match tokio::time::timeout(timeout.saturating_add(WAIT_GRACE), answer).await {
        Ok(answer) => Ok(Response::new(answer?)),
        Err(_elapsed) => Err(SubmitError::new(
            ErrorKind::Unavailable,
            "CERTIFIED_HEIGHT_NOT_REACHED",
            format!(
                "the certified state did not reach height {min_height} in {} ms; retry, or ask \
                 with a lower min_height",
                timeout.as_millis()
            ),
        )
        .into()),
    }
}

/// A history position as a page token: `height.index`.
pub fn page_token(position: (u64, u32)) -> String {
    format!("{}.{}", position.0, position.1)
}

/// Parses a page token (`None` for the empty token: the newest page).
pub fn parse_page_token(token: &str) -> Result<Option<(u64, u32)>, SubmitError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        SubmitError::new(
            ErrorKind::InvalidArgument,
            "INVALID_PAGE_TOKEN",
            format!(
                "page_token {token:?} is not one this server gave; pass a previous response's \
                 next_page_token unchanged, or an empty token for the newest page"
            ),
        )
        .with_field("page_token")
    };
    let (height, index) = token.split_once('.').ok_or_else(invalid)?;
    let height = height.parse::<u64>().map_err(|_| invalid())?;
    let index = index.parse::<u32>().map_err(|_| invalid())?;
    Ok(Some((height, index)))
}

/// The `WalletGateway` implementation over a [`Backend`]. [`crate::Gateway`]
/// serves it; it is public so a node can mount it on a tonic server of its
/// own.
#[derive(Clone)]
pub struct GatewayService {
    backend: Arc<dyn Backend>,
    wait_timeout_default: Duration,
    wait_timeout_max: Duration,
    streams: Streams,
}

/// How many streams a service serves at once unless told otherwise.
pub const STREAMS_MAX_DEFAULT: usize = 256;

impl GatewayService {
    /// A service over `backend`. A commit wait of 0 ms gets
    /// `wait_timeout_default`, and no wait is longer than `wait_timeout_max`.
    pub fn new(
        backend: Arc<dyn Backend>,
        wait_timeout_default: Duration,
        wait_timeout_max: Duration,
    ) -> Self {
        GatewayService {
            backend,
            wait_timeout_default,
            wait_timeout_max,
            streams: Streams::new(
                STREAMS_MAX_DEFAULT,
                crate::stream::STREAM_BYTES_MAX_DEFAULT,
                crate::stream::STREAM_STALL_TIMEOUT_DEFAULT,
            ),
        }
    }

    /// Sets the stream limits: how many run at once, the bytes queued in
    /// all of them, and how long a client may take nothing.
    pub fn with_stream_limits(mut self, max: usize, bytes_max: usize, stall: Duration) -> Self {
        self.streams = Streams::new(max, bytes_max, stall);
        self
    }

    /// Ends every stream with UNAVAILABLE (SHUTTING_DOWN) and refuses new
    /// ones: call it when the server starts its graceful shutdown, which
    /// would otherwise wait for streams that never end.
    pub fn close_streams(&self) {
        self.streams.close();
    }

    /// The wait a request asking for `wait_timeout_ms` gets.
    fn wait_timeout(&self, wait_timeout_ms: u32) -> Duration {
        let asked = if wait_timeout_ms == 0 {
            self.wait_timeout_default
        } else {
            Duration::from_millis(u64::from(wait_timeout_ms))
        };
        asked.min(self.wait_timeout_max)
    }
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GatewayService")
            .field("wait_timeout_default", &self.wait_timeout_default)
            .field("wait_timeout_max", &self.wait_timeout_max)
            .finish_non_exhaustive()
    }
}

#[tonic::async_trait]
impl WalletGateway for GatewayService {
    type StreamBlocksStream = stream::Outgoing<pb::StreamBlocksResponse>;
    type StreamEventsStream = stream::Outgoing<pb::StreamEventsResponse>;

    async fn stream_blocks(
        &self,
        request: Request<pb::StreamBlocksRequest>,
    ) -> Result<Response<Self::StreamBlocksStream>, Status> {
        let from = request.into_inner().from_height;
        stream::blocks(Arc::clone(&self.backend), &self.streams, from).map(Response::new)
    }

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let request = request.into_inner();
        stream::events(
            Arc::clone(&self.backend),
            &self.streams,
            request.from_height,
            request.from_index,
        )
        .map(Response::new)
    }

    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::SubmitTransactionResponse>, Status> {
        let request = request.into_inner();
        let Some(transaction) = request.transaction else {
            return Err(SubmitError::new(
                ErrorKind::InvalidArgument,
                "MISSING_TRANSACTION",
                "SubmitTransactionRequest.transaction is not set; send the signed transaction in it",
            )
            .with_field("transaction")
            .into());
        };
        let id = self.backend.submit(transaction).await?;
        let status = if request.wait_for_commit {
            let timeout = self.wait_timeout(request.wait_timeout_ms);
            let wait = self.backend.wait_committed(id, timeout);
            match tokio::time::timeout(timeout.saturating_add(WAIT_GRACE), wait).await {
                Ok(status) => status,
                Err(_elapsed) => self.backend.transaction(id).await,
            }
        } else {
            crate::TxStatus::Pending
        };
        let (status, receipt, height) = status.into_wire();
        Ok(Response::new(pb::SubmitTransactionResponse {
            tx_id: id.as_bytes().to_vec(),
            status: status.into(),
            receipt,
            height,
        }))
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Result<Response<pb::GetTransactionResponse>, Status> {
        let request = request.into_inner();
        let Some(id) = Hash32::from_slice(&request.tx_id) else {
            return Err(SubmitError::new(
                ErrorKind::InvalidArgument,
                "INVALID_TX_ID",
                format!(
                    "GetTransactionRequest.tx_id is {} bytes; a transaction id is 32 bytes",
                    request.tx_id.len()
                ),
            )
            .with_field("tx_id")
            .into());
        };
        let (status, receipt, height) = self.backend.transaction(id).await.into_wire();
        Ok(Response::new(pb::GetTransactionResponse {
            tx_id: request.tx_id,
            status: status.into(),
            receipt,
            height,
        }))
    }

    async fn get_chain_info(
        &self,
        _request: Request<pb::GetChainInfoRequest>,
    ) -> Result<Response<pb::GetChainInfoResponse>, Status> {
        Ok(Response::new(self.backend.chain_info().await?))
    }

    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::GetBlockResponse>, Status> {
        let height = request.into_inner().height;
        match self.backend.block(height).await? {
            Some(block) => Ok(Response::new(block)),
            None => Err(SubmitError::new(
                ErrorKind::NotFound,
                "BLOCK_NOT_FOUND",
                format!("no committed block at height {height} on this node yet; GetChainInfo gives its height"),
            )
            .into()),
        }
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let request = request.into_inner();
        let address = address_field(&request.address, "GetAccountRequest.address")?;
        let timeout = self.wait_timeout(request.wait_timeout_ms);
        let answer = self.backend.account(address, request.min_height, timeout);
        certified_answer(answer, timeout, request.min_height).await
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let request = request.into_inner();
        let Some(id) = Hash32::from_slice(&request.payment_id) else {
            return Err(SubmitError::new(
                ErrorKind::InvalidArgument,
                "INVALID_TX_ID",
                format!(
                    "GetPaymentRequest.payment_id is {} bytes; a payment's id is its \
                     transaction's id, 32 bytes",
                    request.payment_id.len()
                ),
            )
            .with_field("payment_id")
            .into());
        };
        let timeout = self.wait_timeout(request.wait_timeout_ms);
        let answer = self.backend.payment(id, request.min_height, timeout);
        certified_answer(answer, timeout, request.min_height).await
    }

    async fn list_account_history(
        &self,
        request: Request<pb::ListAccountHistoryRequest>,
    ) -> Result<Response<pb::ListAccountHistoryResponse>, Status> {
        let request = request.into_inner();
        let address = address_field(&request.address, "ListAccountHistoryRequest.address")?;
        let before = parse_page_token(&request.page_token)?;
        let size = match usize::try_from(request.page_size) {
            Ok(0) => HISTORY_PAGE_DEFAULT,
            Ok(size) => size.min(HISTORY_PAGE_MAX),
            Err(_) => HISTORY_PAGE_MAX,
        };
        // One more than the page, to know whether another page follows.
        let page = self.backend.history(address, before, size + 1).await?;
        let mut entries = page.entries;
        let next_page_token = if entries.len() > size || page.more {
            entries.truncate(size);
            entries
                .last()
                .map(|entry| page_token((entry.height, entry.index)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAccountHistoryResponse {
            entries,
            next_page_token,
        }))
    }
}
