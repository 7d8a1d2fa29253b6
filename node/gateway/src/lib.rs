//! yuchain's wallet gateway: the gRPC (tonic) service through which wallets,
//! merchants and the CLI submit transactions to a node and follow them.
//!
//! # The service
//!
//! `yuchain.v1.WalletGateway` (`proto/proto/yuchain/v1/gateway.proto`):
//!
//! - `SubmitTransaction`: hands a signed transaction to the node's
//!   [`Backend`] (decode, canonical-body and signature checks, state checks,
//!   mempool) and answers its id with status PENDING; with `wait_for_commit`
//!   it answers once the transaction is committed (COMMITTED, with its receipt
//!   and height), expired or forgotten, or when the wait times out (PENDING).
//! - `GetTransaction`: the status of a transaction id now; an id the node
//!   does not know is answered with status UNKNOWN, not an error.
//! - `GetChainInfo`: chain id, genesis hash, durable head, epoch and
//!   validators, money issued and redeemed, the chain's parameters.
//! - `GetBlock`: a committed block with its finality certificate.
//! - `GetAccount`: an account at the latest certified height (optionally
//!   waiting for a height), its Merkle proof and the committed block that
//!   certifies the root, for the wallet to check with the validators' keys.
//! - `GetPayment`: a merchant payment by its transaction id, proved the same
//!   way (for a merchant to check a payment, and its refunds, itself).
//! - `ListAccountHistory`: an account's transactions with their receipts,
//!   newest first, in pages of at most [`HISTORY_PAGE_MAX`] with a
//!   `height.index` page token.
//! - `StreamBlocks` and `StreamEvents`: every committed block (or
//!   transaction) from a height on, in order, each once, waiting at the
//!   head; resumable from the last one received. A slow client fills its
//!   own buffer of [`STREAM_BUFFER`] messages and its producer waits; at
//!   most `streams_max` (256) run at once (RESOURCE_EXHAUSTED,
//!   STREAMS_FULL), all of them together queue at most `stream_bytes_max`
//!   (256 MiB), a client that takes nothing for `stream_stall_timeout`
//!   (60 s) loses its stream (RESOURCE_EXHAUSTED, STREAM_STALLED); at
//!   shutdown each ends with UNAVAILABLE (SHUTTING_DOWN) and the height to
//!   resume from.
//!
//! Beside it the standard `grpc.health.v1.Health` service reports SERVING for
//! `""` and `yuchain.v1.WalletGateway` while the gateway serves, and
//! `grpc.reflection.v1` server reflection lets tools such as grpcurl list
//! and call the API without the .proto files.
//!
//! The handlers are thin: check the request's shape, call the [`Backend`],
//! translate the answer. Everything that knows what a valid transaction is
//! lives behind [`Backend`] in the node, so this crate depends only on
//! `yuchain-proto` and the tonic stack (never RocksDB, libp2p or the ledger)
//! and the CLI can link it for [`WalletGatewayClient`] cheaply.
//!
//! # Limits
//!
//! From [`GatewayConfig`]: a request message is at most `request_bytes_max`
//! (1 MiB) encoded, larger ones are refused by tonic with OUT_OF_RANGE
//! ("decoded message length too large") and the connection keeps serving; at
//! most `concurrency_per_connection` (64) requests run at once on one
//! connection; a commit wait lasts `wait_timeout_default` (10 s) when the
//! request asks for 0 ms, and never more than `wait_timeout_max` (60 s).
//!
//! # TLS
//!
//! Optional, with rustls: [`GatewayConfig::tls`] holds the server's
//! certificate chain and key and, for mutual TLS, the CA whose client
//! certificates are required ([`GatewayTls`]). A bad certificate or key is
//! refused by [`Gateway::bind`]; a client has [`TLS_HANDSHAKE_TIMEOUT`] to
//! finish its handshake, and handshakes run beside the accept loop, so a
//! slow one holds up no other client.
//!
//! # Errors
//!
//! A refused request is a [`SubmitError`]: an [`ErrorKind`] that sets the
//! status code (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,
//! RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL), a message that says what is
//! wrong and what to do, and a stable `reason` sent as a `google.rpc.ErrorInfo`
//! detail with domain `"yuchain"` (plus a `google.rpc.RetryInfo` of 1 s on
//! RESOURCE_EXHAUSTED). A malformed request (no transaction, a tx id that is
//! not 32 bytes) is INVALID_ARGUMENT too. No input makes a handler panic.
//!
//! ```no_run
//! # async fn example(
//! #     backend: std::sync::Arc<dyn yuchain_gateway::Backend>,
//! #     stop: tokio::sync::oneshot::Receiver<()>,
//! # ) -> Result<(), yuchain_gateway::GatewayError> {
//! use yuchain_gateway::{Gateway, GatewayConfig};
//!
//! let config = GatewayConfig {
//!     listen: "127.0.0.1:0".parse().expect("an address"),
//!     ..GatewayConfig::default()
//! };
//! let gateway = Gateway::bind(config, backend).await?;
//! println!("gateway on {}", gateway.local_addr());
//! gateway.serve(async { stop.await.ok(); }).await
//! # }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backend;
pub mod error;
mod server;
mod service;
mod stream;

/// The service code generated from `gateway.proto`: `wallet_gateway_server`
/// and `wallet_gateway_client`. The messages are `yuchain_proto::pb`'s.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/yuchain.v1.rs"));
}

/// The encoded `FileDescriptorSet` of `gateway.proto` and its imports, as
/// the reflection service serves it.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gateway_descriptor.bin"));

pub use backend::{Backend, HistoryPage, TxStatus};
pub use error::{
    ERROR_DOMAIN, ErrorKind, GatewayError, REASONS, RETRY_DELAY, SubmitError, is_registered,
};
pub use generated::wallet_gateway_client::WalletGatewayClient;
pub use generated::wallet_gateway_server::{WalletGateway, WalletGatewayServer};
pub use server::{Gateway, GatewayConfig, GatewayTls, SHUTDOWN_GRACE, TLS_HANDSHAKE_TIMEOUT};
pub use service::{
    GatewayService, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, STREAMS_MAX_DEFAULT, page_token,
    parse_page_token,
};
pub use stream::{Outgoing, STREAM_BUFFER, STREAM_BYTES_MAX_DEFAULT, STREAM_STALL_TIMEOUT_DEFAULT};
