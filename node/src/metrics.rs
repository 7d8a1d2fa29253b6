//! The node's Prometheus metrics (prometheus-client) and the endpoint that
//! serves them at `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use yuchain_network::{ChannelStats, NetworkHandle};

/// A label naming why a transaction was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The stable reason code (`BAD_SIGNATURE`, `MEMPOOL_FULL`, …).
    pub reason: String,
}

/// A label naming a message lane or direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// What.
    pub kind: String,
}

/// Every metric of the node.
pub struct Metrics {
    registry: Registry,
    /// The executed and durable height.
    pub height: Gauge,
    /// The consensus round.
    pub round: Gauge,
    /// The consensus epoch.
    pub epoch: Gauge,
    /// Seconds from a block's timestamp to its durable commit here.
    pub commit_latency: Histogram,
    /// Seconds from a proposal's arrival to the verdict on its payload
    /// (a vote waits for it).
    pub proposal_check: Histogram,
    /// Transactions in the mempool.
    pub mempool_transactions: Gauge,
    /// Bytes in the mempool.
    pub mempool_bytes: Gauge,
    /// Transactions admitted.
    pub admitted: Counter,
    /// Transactions refused, by reason.
    pub rejected: Family<Reason, Counter>,
    /// Transactions executed in committed blocks.
    pub executed: Counter,
    /// Batches made, acknowledged, certified, fetched (by kind).
    pub batches: Family<Kind, Counter>,
    /// Batches held.
    pub batches_held: Gauge,
    /// Certified batches waiting for a block.
    pub certified_waiting: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// 1 while the node is catching up (its committed head behind what
    /// peers certified), else 0.
    pub syncing: Gauge,
    /// Consensus inputs refused (by kind of error).
    pub consensus_rejected: Family<Kind, Counter>,
    /// Times the proof view failed and was rebuilt from the ledger.
    pub proof_view_rebuilds: Counter,
}

impl Metrics {
    /// A fresh set, registered.
    pub fn new() -> Arc<Metrics> {
        Metrics::build(None)
    }

    /// A fresh set with the network's counters, read from `network` on
    /// every scrape.
    pub fn with_network(network: NetworkHandle) -> Arc<Metrics> {
        Metrics::build(Some(network))
    }

    fn build(network: Option<NetworkHandle>) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("yuchain");
        if let Some(network) = network {
            registry.register_collector(Box::new(NetworkCollector(network)));
        }
        let height = Gauge::default();
        registry.register(
            "height",
            "The executed and durable block height",
            height.clone(),
        );
        let round = Gauge::default();
        registry.register("round", "The consensus round", round.clone());
        let epoch = Gauge::default();
        registry.register("epoch", "The consensus epoch", epoch.clone());
        let commit_latency = Histogram::new([
            0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
        ]);
        registry.register(
            "commit_latency_seconds",
            "From a block's timestamp to its durable commit on this node",
            commit_latency.clone(),
        );
        let proposal_check =
            Histogram::new([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]);
        registry.register(
            "proposal_check_seconds",
            "From a proposal's arrival to the verdict on its payload and executed state (a vote waits for it)",
            proposal_check.clone(),
        );
        let mempool_transactions = Gauge::default();
        registry.register(
            "mempool_transactions",
            "Transactions in the mempool",
            mempool_transactions.clone(),
        );
        let mempool_bytes = Gauge::default();
        registry.register(
            "mempool_bytes",
            "Bytes in the mempool",
            mempool_bytes.clone(),
        );
        let admitted = Counter::default();
        registry.register(
            "transactions_admitted",
            "Transactions admitted to the mempool",
            admitted.clone(),
        );
        let rejected = Family::<Reason, Counter>::default();
        registry.register(
            "transactions_rejected",
            "Transactions refused at admission, by reason",
            rejected.clone(),
        );
        let executed = Counter::default();
        registry.register(
            "transactions_executed",
            "Transactions executed in committed blocks",
            executed.clone(),
        );
        let batches = Family::<Kind, Counter>::default();
        registry.register(
            "batches",
            "Batches made, acknowledged, certified and fetched",
            batches.clone(),
        );
        let batches_held = Gauge::default();
        registry.register(
            "batches_held",
            "Batches held in memory",
            batches_held.clone(),
        );
        let certified_waiting = Gauge::default();
        registry.register(
            "certified_batches_waiting",
            "Certified batches not yet ordered by a block",
            certified_waiting.clone(),
        );
        let peers = Gauge::default();
        registry.register("peers", "Connected peers", peers.clone());
        let syncing = Gauge::default();
        registry.register("syncing", "1 while catching up with peers", syncing.clone());
        let consensus_rejected = Family::<Kind, Counter>::default();
        registry.register(
            "consensus_rejected",
            "Consensus inputs refused, by error",
            consensus_rejected.clone(),
        );
        let proof_view_rebuilds = Counter::default();
        registry.register(
            "proof_view_rebuilds",
            "Times the proof view (GetAccount) failed and was rebuilt from the ledger",
            proof_view_rebuilds.clone(),
        );
        Arc::new(Metrics {
            registry,
            height,
            round,
            epoch,
            commit_latency,
            proposal_check,
            mempool_transactions,
            mempool_bytes,
            admitted,
            rejected,
            executed,
            batches,
            batches_held,
            certified_waiting,
            peers,
            syncing,
            consensus_rejected,
            proof_view_rebuilds,
        })
    }

    /// Counts a rebuild of the proof view.
    pub fn proof_view_rebuilt(&self) {
        self.proof_view_rebuilds.inc();
    }

    /// Counts a refused transaction.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a batch event.
    pub fn batch(&self, kind: &str) {
        self.batches
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The network's counters (messages and bytes per lane, drops by reason,
/// requests), read from the handle on each scrape.
struct NetworkCollector(NetworkHandle);

impl std::fmt::Debug for NetworkCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkCollector")
    }
}

/// Label pairs of one row of a counter family.
type Labels = Vec<(&'static str, &'static str)>;

impl NetworkCollector {
    /// One counter family: `(labels, value)` rows under one name.
    fn family(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        rows: Vec<(Labels, u64)>,
    ) -> std::fmt::Result {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        if let [(labels, value)] = rows.as_slice()
            && labels.is_empty()
        {
            return ConstCounter::new(*value).encode(metric);
        }
        for (labels, value) in &rows {
            ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl Collector for NetworkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stats = self.0.stats();
        let lanes: [(&'static str, &ChannelStats); 2] =
            [("consensus", &stats.consensus), ("batches", &stats.batches)];
        let mut messages = Vec::new();
        let mut bytes = Vec::new();
        let mut dropped = Vec::new();
        for (lane, lane_stats) in lanes {
            let row = |key: &'static str, value: &'static str, count: u64| {
                (vec![("lane", lane), (key, value)], count)
            };
            messages.push(row("direction", "in", lane_stats.messages_in));
            messages.push(row("direction", "out", lane_stats.messages_out));
            bytes.push(row("direction", "in", lane_stats.bytes_in));
            bytes.push(row("direction", "out", lane_stats.bytes_out));
            dropped.push(row("reason", "queue_full", lane_stats.dropped_full));
            dropped.push(row("reason", "too_big", lane_stats.dropped_too_big));
            dropped.push(row(
                "reason",
                "rate_limited",
                lane_stats.dropped_rate_limited,
            ));
            dropped.push(row("reason", "send_failed", lane_stats.dropped_send_failed));
        }
        Self::family(
            &mut encoder,
            "network_messages",
            "Peer messages delivered (in) and written (out), by lane",
            messages,
        )?;
        Self::family(
            &mut encoder,
            "network_bytes",
            "Bytes of peer messages delivered (in) and written (out), by lane",
            bytes,
        )?;
        Self::family(
            &mut encoder,
            "network_dropped",
            "Peer messages dropped, by lane and reason (queue_full: a peer's outbound queue; \
             too_big; rate_limited: a peer over its inbound limits; send_failed: lost with a \
             failed stream)",
            dropped,
        )?;
        Self::family(
            &mut encoder,
            "network_requests",
            "Requests sent (out), served (in) and refused (over a peer's concurrency limit)",
            vec![
                (vec![("kind", "out")], stats.requests_out),
                (vec![("kind", "in")], stats.requests_in),
                (vec![("kind", "refused")], stats.requests_refused),
            ],
        )?;
        Self::family(
            &mut encoder,
            "network_refused_connections",
            "Connections refused because the peer is not allowed",
            vec![(Vec::new(), stats.refused_connections)],
        )?;
        Self::family(
            &mut encoder,
            "network_protocol_errors",
            "Inbound streams closed for a protocol violation",
            vec![(Vec::new(), stats.protocol_errors)],
        )?;
        Self::family(
            &mut encoder,
            "network_events_dropped",
            "Connection events dropped because the node's event queue was full",
            vec![(Vec::new(), stats.events_dropped)],
        )
    }
}

/// The largest request head read from a metrics client.
const REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until the task is dropped. A minimal
/// HTTP/1.1 responder: one request per connection, no keep-alive, anything
/// but `GET /metrics` answered 404; each connection bounded in bytes and
/// time.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; REQUEST_BYTES_MAX];
            let mut read = 0;
            let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => return,
                    result = stream.read(&mut buffer[read..]) => match result {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    },
                }
                if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") || read == buffer.len() {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buffer[..read]);
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?")
            {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; \
                     charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener (so a busy port is an error at start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
