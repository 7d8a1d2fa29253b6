//! The `WalletGateway` handlers: check the request's shape, call the backend,
//! translate the answer.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use yuchain_proto::Hash32;
use yuchain_proto::pb;

use crate::backend::Backend;
use crate::error::{ErrorKind, SubmitError};
use crate::generated::wallet_gateway_server::WalletGateway;

/// How much longer than the granted wait the gateway lets a backend's
/// `wait_committed` run before it stops waiting and asks for the status
/// itself, so a backend that overshoots never holds a request open.
const WAIT_GRACE: Duration = Duration::from_secs(1);

/// The `WalletGateway` implementation over a [`Backend`]. [`crate::Gateway`]
/// serves it; it is public so a node can mount it on a tonic server of its
/// own.
#[derive(Clone)]
pub struct GatewayService {
    backend: Arc<dyn Backend>,
    wait_timeout_default: Duration,
    wait_timeout_max: Duration,
}

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
        }
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
}
