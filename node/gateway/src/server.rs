//! Binding and serving: the gateway service and gRPC health on one listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::backend::Backend;
use crate::error::{GatewayError, Result, error_chain};
use crate::generated::wallet_gateway_server::WalletGatewayServer;
use crate::service::GatewayService;

/// How long a graceful shutdown waits for requests in flight before it
/// drops the connections left.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long a client has to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS for the gateway (rustls, through tonic): the server's certificate
/// chain and private key, and optionally the CA whose client certificates
/// it requires (mutual TLS, for a bank's back office). All PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayTls {
    /// The server's certificate chain, leaf first (PEM).
    pub certificate_pem: Vec<u8>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: Vec<u8>,
    /// When set, only clients presenting a certificate issued by this CA
    /// (PEM, one or more certificates) may connect.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for GatewayTls {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayTls")
            .field(
                "certificate_pem",
                &format_args!("{} bytes", self.certificate_pem.len()),
            )
            .field("private_key_pem", &format_args!("<redacted>"))
            .field("client_ca_pem", &self.client_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

impl GatewayTls {
    /// tonic's server TLS settings. Building them parses the certificate
    /// and the key, so [`Gateway::bind`] reports a bad file before serving.
    fn server_config(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.certificate_pem,
                &self.private_key_pem,
            ))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        config
    }
}

/// The gateway's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Where to listen; port 0 lets the OS choose (see
    /// [`Gateway::local_addr`]).
    pub listen: SocketAddr,
    /// The largest request message accepted, encoded (tonic's
    /// `max_decoding_message_size`).
    pub request_bytes_max: usize,
    /// How many requests run at once on one connection.
    pub concurrency_per_connection: usize,
    /// The commit wait of a request that asks for 0 ms.
    pub wait_timeout_default: Duration,
    /// The longest commit wait any request gets.
    pub wait_timeout_max: Duration,
    /// How many StreamBlocks and StreamEvents streams run at once.
    pub streams_max: usize,
    /// The most bytes queued in all streams' buffers together.
    pub stream_bytes_max: usize,
    /// How long a client may take nothing while its stream has something
    /// to send, before the stream ends (STREAM_STALLED).
    pub stream_stall_timeout: Duration,
    /// TLS; `None` serves plaintext HTTP/2 (the devnet, or behind a proxy
    /// that terminates TLS).
    pub tls: Option<GatewayTls>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            request_bytes_max: 1024 * 1024,
            concurrency_per_connection: 64,
            wait_timeout_default: Duration::from_secs(10),
            wait_timeout_max: Duration::from_secs(60),
            streams_max: crate::service::STREAMS_MAX_DEFAULT,
            stream_bytes_max: crate::stream::STREAM_BYTES_MAX_DEFAULT,
            stream_stall_timeout: crate::stream::STREAM_STALL_TIMEOUT_DEFAULT,
            tls: None,
        }
    }
}

impl GatewayConfig {
    /// Refuses limits of zero, which would refuse every request or let none
    /// run.
    fn check(&self) -> Result<()> {
        if self.request_bytes_max == 0 {
            return Err(GatewayError::Config(
                "request_bytes_max is 0: no request would fit".into(),
            ));
        }
        if self.stream_bytes_max == 0 || self.stream_stall_timeout.is_zero() {
            return Err(GatewayError::Config(
                "stream_bytes_max and stream_stall_timeout must be above 0".into(),
            ));
        }
        if self.streams_max == 0 {
            return Err(GatewayError::Config(
                "streams_max is 0: no stream would run".into(),
            ));
        }
        if self.concurrency_per_connection == 0 {
            return Err(GatewayError::Config(
                "concurrency_per_connection is 0: no request would run".into(),
            ));
        }
        if self.wait_timeout_default > self.wait_timeout_max {
            return Err(GatewayError::Config(format!(
                "wait_timeout_default ({:?}) is above wait_timeout_max ({:?})",
                self.wait_timeout_default, self.wait_timeout_max
            )));
        }
        if let Some(tls) = &self.tls {
            Server::builder()
                .tls_config(tls.server_config())
                .map_err(|error| {
                    GatewayError::Config(format!(
                        "the TLS certificate, key or client CA is not usable: {}",
                        error_chain(&error)
                    ))
                })?;
        }
        Ok(())
    }
}

/// A bound gateway. Binding comes first, so the caller learns the port and
/// any bind error before it spawns [`Gateway::serve`].
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: GatewayConfig,
    service: GatewayService,
}

impl Gateway {
    /// Checks the config and binds `config.listen`.
    pub async fn bind(config: GatewayConfig, backend: Arc<dyn Backend>) -> Result<Gateway> {
        config.check()?;
        let bind_error = |source| GatewayError::Bind {
            address: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let service = GatewayService::new(
            backend,
            config.wait_timeout_default,
            config.wait_timeout_max,
        )
        .with_stream_limits(
            config.streams_max,
            config.stream_bytes_max,
            config.stream_stall_timeout,
        );
        Ok(Gateway {
            listener,
            local_addr,
            config,
            service,
        })
    }

    /// The address actually bound (with the OS's port for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves the gateway and gRPC health until `shutdown` resolves, then
    /// stops accepting, lets requests in flight finish (for at most
    /// [`SHUTDOWN_GRACE`]) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<WalletGatewayServer<GatewayService>>()
            .await;
        let closer = self.service.clone();
        let (fired, fired_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            // Streams never end by themselves: end them, or the graceful
            // shutdown would wait for them forever.
            closer.close_streams();
            let _ = fired.send(());
        };
        let gateway = WalletGatewayServer::new(self.service)
            .max_decoding_message_size(self.config.request_bytes_max);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|error| GatewayError::Config(format!("the reflection service: {error}")))?;
        // Small requests and answers: do not let Nagle hold them back.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let mut builder = Server::builder();
        if let Some(tls) = &self.config.tls {
            builder = builder
                .tls_config(tls.server_config())
                .map_err(|error| GatewayError::Config(format!("TLS: {}", error_chain(&error))))?;
        }
        let serving = builder
            .concurrency_limit_per_connection(self.config.concurrency_per_connection)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(gateway)
            .serve_with_incoming_shutdown(incoming, shutdown);
        // Requests in flight get SHUTDOWN_GRACE to finish; after it the
        // remaining connections are dropped (a client that stopped reading
        // a stream would otherwise hold the shutdown up for ever).
        let grace = async {
            if fired_rx.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = serving => served?,
            () = grace => {}
        }
        Ok(())
    }
}
