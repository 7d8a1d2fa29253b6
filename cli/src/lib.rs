//! The `yuchain` command line's library half: the pieces the binary and its
//! tests share. Wallet, merchant, operator, issuer, audit and devnet commands
//! talk to nodes over gRPC; nothing here reaches into a node's internals.
//!
//! - [`cluster`]: a local cluster of real `yuchain-node` processes (the
//!   devnet, and the node's multi-process tests);
//! - [`load`]: wallets funded through the gateways and a stream of payments;
//! - [`devnet`]: `yuchain devnet`;
//! - [`scenario`]: `yuchain scenario netns`, validators in network
//!   namespaces under delay, loss and partitions, with [`delay_proxy`];
//! - [`bench`]: `yuchain bench`, the load generator;
//! - [`proof`]: checking an account answer with the validators' keys alone;
//! - [`audit`]: `yuchain audit`, replay from genesis trusting no validator,
//!   exports, supply and offline proofs.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod audit;
pub mod bench;
pub mod client;
pub mod closed_loop;
pub mod cluster;
pub mod commands;
pub mod delay_proxy;
pub mod devnet;
pub mod load;
pub mod proof;
pub mod scenario;

/// Fetches `GET /metrics` from a node's metrics endpoint.
pub async fn metrics_text(address: &std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(address),
    )
    .await??;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        stream.take(16 << 20).read_to_end(&mut response),
    )
    .await??;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok(body)
}
