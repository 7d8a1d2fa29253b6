//! A node's `config.toml`: its role, addresses, and the limits of its
//! queues. Every field has a default; `yuchain-node init` writes them all
//! out with comments ([`DEFAULT_CONFIG`]), and a field that is wrong is named
//! in the error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Votes and proposes (its consensus key must be in the validator set).
    Validator,
    /// Follows the chain and never votes.
    Observer,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Validator or observer.
    pub role: NodeRole,
    /// The genesis file, relative to the home unless absolute.
    pub genesis: PathBuf,
    /// Peer-to-peer networking.
    pub network: NetworkSection,
    /// The wallet gateway (gRPC).
    pub gateway: GatewaySection,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsSection,
    /// Consensus timers.
    pub consensus: ConsensusSection,
    /// The pool of admitted transactions.
    pub mempool: MempoolSection,
    /// Batches of transactions broadcast ahead of consensus.
    pub batches: BatchSection,
    /// The store's memory budgets.
    pub storage: StorageSection,
    /// Logging.
    pub log: LogSection,
}

/// `[network]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Where to listen for peers.
    pub listen: SocketAddr,
    /// Observers allowed to connect, by network public key (64 hex digits).
    pub observers: Vec<String>,
    /// Address overrides for validators (by network key), for when a
    /// validator moved since genesis.
    pub peers: Vec<PeerOverride>,
}

/// One `[[network.peers]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerOverride {
    /// The peer's network public key.
    pub network_public_key: String,
    /// Where to reach it.
    pub address: String,
}

/// `[gateway]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Where to serve gRPC.
    pub listen: SocketAddr,
    /// TLS; absent serves plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsSection>,
}

/// `[gateway.tls]`: files relative to the home unless absolute, PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTlsSection {
    /// The server's certificate chain, leaf first.
    pub certificate: PathBuf,
    /// Its private key (keep it mode 0600).
    pub private_key: PathBuf,
    /// When set, clients must present a certificate issued by this CA
    /// (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Whether to serve metrics at all.
    pub enabled: bool,
    /// Where to serve `GET /metrics`.
    pub listen: SocketAddr,
}

/// `[consensus]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// A round's first timeout.
    pub round_timeout_ms: u64,
    /// The longest round timeout after repeated timeouts.
    pub round_timeout_ms_max: u64,
    /// How long a leader with nothing to propose waits for a batch before
    /// proposing an empty block (keeps an idle chain from writing hundreds
    /// of empty blocks a second).
    pub empty_block_wait_ms: u64,
}

/// `[mempool]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    /// The most transactions held.
    pub transactions_max: usize,
    /// The most bytes held.
    pub bytes_max: usize,
    /// The most transactions of one sender held.
    pub per_sender_max: usize,
    /// How far past the next sequence a transaction may be.
    pub sequence_window: u64,
}

/// `[batches]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSection {
    /// The most transactions in one batch.
    pub transactions_max: usize,
    /// How long admitted transactions wait for a batch to fill while one
    /// of this node's batches is on its way (waiting for acknowledgements
    /// or for a block); with none on its way they are cut at once.
    pub interval_ms: u64,
}

/// `[storage]`: RocksDB's memory. A node's resident memory levels off near
/// the sum of these two plus the batches and mempool it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// The block cache shared by all column families, in MiB.
    pub block_cache_mib: usize,
    /// The memtables of all column families together, in MiB (one column
    /// family's is at most a quarter of it, and at most 64 MiB).
    pub write_buffers_mib: usize,
}

impl StorageSection {
    /// The smallest budgets accepted, in MiB.
    pub const BLOCK_CACHE_MIB_MIN: usize = 8;
    /// See [`StorageSection::BLOCK_CACHE_MIB_MIN`].
    pub const WRITE_BUFFERS_MIB_MIN: usize = 16;
    /// The largest budget accepted for either, in MiB (1 TiB).
    pub const MIB_MAX: usize = 1 << 20;

    /// The store's configuration for these budgets.
    pub fn rocks_config(&self) -> yuchain_storage::RocksConfig {
        let total = self.write_buffers_mib << 20;
        yuchain_storage::RocksConfig {
            block_cache_bytes: self.block_cache_mib << 20,
            write_buffer_bytes: (total / 4).min(64 << 20),
            write_buffers_total_bytes: total,
            ..yuchain_storage::RocksConfig::default()
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter: `info`, `yuchain_node=debug,info`, …
    pub level: String,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            role: NodeRole::Validator,
            genesis: PathBuf::from("genesis.toml"),
            network: NetworkSection::default(),
            gateway: GatewaySection::default(),
            metrics: MetricsSection::default(),
            consensus: ConsensusSection::default(),
            mempool: MempoolSection::default(),
            batches: BatchSection::default(),
            storage: StorageSection::default(),
            log: LogSection::default(),
        }
    }
}

impl Default for NetworkSection {
    fn default() -> NetworkSection {
        NetworkSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 7100)),
            observers: Vec::new(),
            peers: Vec::new(),
        }
    }
}

impl Default for GatewaySection {
    fn default() -> GatewaySection {
        GatewaySection {
            listen: SocketAddr::from(([127, 0, 0, 1], 7200)),
            tls: None,
        }
    }
}

impl Default for MetricsSection {
    fn default() -> MetricsSection {
        MetricsSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7300)),
        }
    }
}

impl Default for ConsensusSection {
    fn default() -> ConsensusSection {
        ConsensusSection {
            round_timeout_ms: 1_000,
            round_timeout_ms_max: 30_000,
            empty_block_wait_ms: 200,
        }
    }
}

impl Default for MempoolSection {
    fn default() -> MempoolSection {
        MempoolSection {
            transactions_max: 200_000,
            bytes_max: 256 << 20,
            per_sender_max: 256,
            sequence_window: 1_024,
        }
    }
}

impl Default for BatchSection {
    fn default() -> BatchSection {
        BatchSection {
            transactions_max: 2_000,
            interval_ms: 50,
        }
    }
}

impl Default for StorageSection {
    fn default() -> StorageSection {
        StorageSection {
            block_cache_mib: 256,
            write_buffers_mib: 512,
        }
    }
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The config `yuchain-node init` writes: every field, its default and what
/// it means.
pub const DEFAULT_CONFIG: &str = r#"# yuchain-node configuration. Every field is optional; these are the defaults.

# "validator" (votes; its consensus key must be in genesis) or "observer"
# (follows the chain, never votes: auditors).
role = "validator"
# The genesis file, relative to this home unless absolute.
genesis = "genesis.toml"

[network]
# Where peers connect (TCP, noise-encrypted, yamux-multiplexed libp2p).
listen = "0.0.0.0:7100"
# Observers allowed to connect to this validator, by network public key
# (`yuchain-node show --home <observer home>` prints it).
observers = []
# Address overrides for validators that moved since genesis:
# [[network.peers]]
# network_public_key = "<64 hex digits>"
# address = "10.0.0.7:7100"

[gateway]
# The wallet gateway (gRPC). Plaintext unless [gateway.tls] is set: serve it
# on loopback, or set TLS before opening it to wallets and merchants.
listen = "127.0.0.1:7200"
# TLS (rustls). Files are PEM, relative to this home unless absolute; the
# certificate chain is leaf first. With client_ca set, only clients with a
# certificate issued by that CA are served (mutual TLS, for back offices).
# [gateway.tls]
# certificate = "tls/gateway.crt"
# private_key = "tls/gateway.key"
# client_ca = "tls/clients-ca.crt"

[metrics]
# Prometheus metrics at http://<listen>/metrics; enabled = false serves none.
enabled = true
listen = "127.0.0.1:7300"

[consensus]
# A round's first timeout, and the longest after repeated timeouts (doubling).
round_timeout_ms = 1000
round_timeout_ms_max = 30000
# How long a leader with no certified batch waits before proposing an empty
# block (an idle chain makes about 1000 / this blocks a second at most).
empty_block_wait_ms = 200

[mempool]
# Bounds on admitted transactions not yet committed.
transactions_max = 200000
bytes_max = 268435456
per_sender_max = 256
# How far ahead of an account's next sequence number a transaction may be.
sequence_window = 1024

[batches]
# Admitted transactions are broadcast in batches of at most this many: at
# once while none of this node's batches waits for its certificate or its
# block, otherwise every interval_ms.
transactions_max = 2000
interval_ms = 50

[storage]
# RocksDB's memory, in MiB: the block cache (reads of state, history and
# blocks) and the memtables of all column families together (writes wait
# in them until flushed). A node's memory levels off near their sum plus
# the batches and transactions it holds.
block_cache_mib = 256
write_buffers_mib = 512

[log]
# "text" or "json"; level is a tracing filter ("info", "yuchain_node=debug").
format = "text"
level = "info"
"#;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Not valid TOML or an unknown or mistyped field (the message names
    /// the line and field).
    #[error("{path} is not a valid node config: {error}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        error: String,
    },
    /// A value out of range.
    #[error("{path}: field `{field}` {reason}")]
    Field {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl NodeConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        NodeConfig::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a config's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_string(),
            error: error.to_string(),
        })?;
        let field = |field, reason: String| ConfigError::Field {
            path: path.to_string(),
            field,
            reason,
        };
        if config.consensus.round_timeout_ms < 50
            || config.consensus.round_timeout_ms > config.consensus.round_timeout_ms_max
        {
            return Err(field(
                "consensus.round_timeout_ms",
                "must be at least 50 and at most round_timeout_ms_max".into(),
            ));
        }
        if config.consensus.empty_block_wait_ms >= config.consensus.round_timeout_ms {
            return Err(field(
                "consensus.empty_block_wait_ms",
                "must be shorter than round_timeout_ms, or idle rounds time out".into(),
            ));
        }
        if config.mempool.transactions_max == 0 || config.mempool.per_sender_max == 0 {
            return Err(field(
                "mempool.transactions_max",
                "and per_sender_max must be positive".into(),
            ));
        }
        if config.batches.transactions_max == 0
            || config.batches.transactions_max > crate::batch::BATCH_TRANSACTIONS_MAX
        {
            return Err(field(
                "batches.transactions_max",
                format!(
                    "must be between 1 and {}",
                    crate::batch::BATCH_TRANSACTIONS_MAX
                ),
            ));
        }
        let storage = &config.storage;
        if !(StorageSection::BLOCK_CACHE_MIB_MIN..=StorageSection::MIB_MAX)
            .contains(&storage.block_cache_mib)
        {
            return Err(field(
                "storage.block_cache_mib",
                format!(
                    "must be between {} and {}",
                    StorageSection::BLOCK_CACHE_MIB_MIN,
                    StorageSection::MIB_MAX
                ),
            ));
        }
        if !(StorageSection::WRITE_BUFFERS_MIB_MIN..=StorageSection::MIB_MAX)
            .contains(&storage.write_buffers_mib)
        {
            return Err(field(
                "storage.write_buffers_mib",
                format!(
                    "must be between {} and {}",
                    StorageSection::WRITE_BUFFERS_MIB_MIN,
                    StorageSection::MIB_MAX
                ),
            ));
        }
        for (index, key) in config.network.observers.iter().enumerate() {
            if crate::genesis::parse_key(key).is_err() {
                return Err(field(
                    "network.observers",
                    format!("entry {index} ({key:?}) is not a 64-hex-digit network key"),
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_defaults_are_the_defaults() {
        let parsed = NodeConfig::parse(DEFAULT_CONFIG, "config.toml").expect("parses");
        assert_eq!(parsed, NodeConfig::default());
    }

    #[test]
    fn a_wrong_field_is_named() {
        let error = NodeConfig::parse("[mempool]\ntransactions_mx = 3\n", "c.toml")
            .expect_err("unknown field")
            .to_string();
        assert!(error.contains("transactions_mx"), "{error}");
        let error = NodeConfig::parse(
            "[consensus]\nround_timeout_ms = 100\nempty_block_wait_ms = 500\n",
            "c.toml",
        )
        .expect_err("wait too long")
        .to_string();
        assert!(error.contains("empty_block_wait_ms"), "{error}");
        let error = NodeConfig::parse("[network]\nlisten = \"nowhere\"\n", "c.toml")
            .expect_err("bad address")
            .to_string();
        assert!(error.contains("listen"), "{error}");
    }

    #[test]
    fn the_storage_budgets_reach_the_store_and_are_bounded() {
        let parsed = NodeConfig::parse(
            "[storage]\nblock_cache_mib = 32\nwrite_buffers_mib = 64\n",
            "c.toml",
        )
        .expect("parses");
        let rocks = parsed.storage.rocks_config();
        assert_eq!(rocks.block_cache_bytes, 32 << 20);
        assert_eq!(rocks.write_buffers_total_bytes, 64 << 20);
        assert_eq!(rocks.write_buffer_bytes, 16 << 20, "a quarter of the total");
        assert_eq!(
            NodeConfig::default().storage.rocks_config(),
            yuchain_storage::RocksConfig::default(),
            "the defaults are the store's own"
        );
        for (text, field) in [
            (
                "[storage]\nblock_cache_mib = 1\n",
                "storage.block_cache_mib",
            ),
            (
                "[storage]\nwrite_buffers_mib = 0\n",
                "storage.write_buffers_mib",
            ),
        ] {
            let error = NodeConfig::parse(text, "c.toml")
                .expect_err("too small")
                .to_string();
            assert!(error.contains(field), "{error}");
        }
    }

    #[test]
    fn the_commented_tls_section_parses_when_uncommented() {
        let text = DEFAULT_CONFIG
            .replace("# [gateway.tls]", "[gateway.tls]")
            .replace("# certificate =", "certificate =")
            .replace("# private_key =", "private_key =")
            .replace("# client_ca =", "client_ca =");
        let parsed = NodeConfig::parse(&text, "config.toml").expect("parses");
        assert_eq!(
            parsed.gateway.tls,
            Some(GatewayTlsSection {
                certificate: "tls/gateway.crt".into(),
                private_key: "tls/gateway.key".into(),
                client_ca: Some("tls/clients-ca.crt".into()),
            })
        );
        let error = NodeConfig::parse("[gateway.tls]\ncertificate = \"c.pem\"\n", "c.toml")
            .expect_err("no key")
            .to_string();
        assert!(error.contains("private_key"), "{error}");
    }
}
