//! `yuchain-node run`: opens the home, starts the tasks and threads, and
//! stops them in order on SIGTERM or Ctrl-C.
//!
//! ```text
//! network events ─▶ router ─┬─▶ consensus driver (one task; owns the core) ─▶ executor thread ─▶ committer thread
//!                           ├─▶ batch task (cut, check, acknowledge, certify)        (apply)        (synced write)
//!                           └─▶ fetch answers (blocking pool)
//! gateway (tonic) ─▶ admission (verification in batches on the blocking pool) ─▶ mempool
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use yuchain_consensus::types::Epoch;
use yuchain_consensus::{Core, ValidatorSet};
use yuchain_gateway::{Gateway, GatewayConfig, GatewayTls};
use yuchain_network::{
    Channel, Limits, NetworkConfig, NetworkEvent, NetworkKey, PeerAddress, PeerKey,
};
use yuchain_storage::{Role, SafetyStore, open_node_home};

use crate::admission::Admission;
use crate::batcher::{self, BATCH_INBOX, BatchEvent};
use crate::chain::{open_ledger, restore_consensus};
use crate::config::{GatewayTlsSection, LogFormat, NodeConfig, NodeRole};
use crate::driver::{CONSENSUS_INBOX, Driver, DriverEvent};
use crate::executor::{self, EXECUTION_QUEUE};
use crate::genesis::{GenesisFile, parse_key};
use crate::home::{CONFIG_FILE, CONSENSUS_KEY_FILE, NETWORK_KEY_FILE, load_key, resolve};
use crate::metrics::Metrics;
use crate::shared::{PeerMap, Shared};

/// How long a graceful stop waits for the executor to finish what was
/// committed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the executor then gets to stop a fetch and close its writer.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(5);

/// What `run` is told.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The home directory.
    pub home: PathBuf,
    /// The operator states this validator's key never voted (its safety
    /// record is missing and may be created empty).
    pub assume_never_voted: bool,
}

/// Starts logging as the config says (`RUST_LOG` overrides the level).
pub fn init_logging(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the node until it is told to stop or fails.
pub fn run(options: &RunOptions) -> Result<()> {
    let config = NodeConfig::load(&options.home.join(CONFIG_FILE))?;
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("yuchain-node")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run_async(options, config));
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn run_async(options: &RunOptions, config: NodeConfig) -> Result<()> {
    let home = options.home.as_path();
    let genesis_path = resolve(home, &config.genesis);
    let genesis = GenesisFile::load(&genesis_path).with_context(|| {
        format!(
            "loading the genesis file (field `genesis` of {})",
            home.join(CONFIG_FILE).display()
        )
    })?;
    let validators = genesis.validators()?;
    let consensus_key = load_key(home, CONSENSUS_KEY_FILE)?;
    let network_key = load_key(home, NETWORK_KEY_FILE)?;
    let me = validators
        .iter()
        .find(|validator| validator.consensus_key == consensus_key.public_key());
    let role = match (config.role, me) {
        (NodeRole::Validator, None) => bail!(
            "role = \"validator\" in {}, but this node's consensus key {} is not in the genesis \
             validator set; use the home whose key is in genesis, or set role = \"observer\"",
            home.join(CONFIG_FILE).display(),
            hex::encode(consensus_key.public_key().0)
        ),
        (NodeRole::Validator, Some(validator)) => {
            if validator.network_key != network_key.public_key().0 {
                bail!(
                    "genesis binds validator {:?} to network key {}, but {} holds {}; use the \
                     home made for this validator",
                    validator.name,
                    hex::encode(validator.network_key),
                    home.join(NETWORK_KEY_FILE).display(),
                    hex::encode(network_key.public_key().0)
                );
            }
            if options.assume_never_voted {
                Role::ValidatorAssumeNeverVoted
            } else {
                Role::Validator
            }
        }
        (NodeRole::Observer, Some(validator)) => bail!(
            "role = \"observer\", but this home's key is validator {:?}'s; a validator's key \
             must not run as an observer",
            validator.name
        ),
        (NodeRole::Observer, None) => Role::Observer,
    };
    let opened = open_node_home(home, role, &config.storage.rocks_config())
        .with_context(|| format!("opening the node home {}", home.display()))?;
    let store = Arc::new(opened.blocks);
    if let Some(damage) = opened.safety.as_ref().and_then(|s| s.damaged_slot()) {
        warn!(
            "the safety record {}: {damage}; expected once after a crash during a write, \
             otherwise check the disk",
            home.join(yuchain_storage::home::SAFETY_RECORD_FILE)
                .display()
        );
    }
    let safety: Option<Arc<dyn SafetyStore>> = opened
        .safety
        .map(|safety| Arc::new(safety) as Arc<dyn SafetyStore>);
    let ledger = open_ledger(&store, &genesis)?;
    let height = ledger.height();
    let restored = restore_consensus(store.as_ref(), safety.as_deref(), &genesis, height)?;
    info!(
        chain = ledger.chain_id(),
        height,
        genesis = %genesis.hash()?,
        "opened the node home {}",
        home.display()
    );

    let mut peers = PeerMap::default();
    let mut dial = Vec::new();
    let mut allowed = Vec::new();
    for validator in &validators {
        let key = PeerKey(validator.network_key);
        peers.insert(validator.consensus_key, key);
        allowed.push(key);
        if key.0 == network_key.public_key().0 {
            continue;
        }
        let address = config
            .network
            .peers
            .iter()
            .find(|peer| parse_key(&peer.network_public_key).is_ok_and(|parsed| parsed.0 == key.0))
            .map_or(validator.address.clone(), |peer| peer.address.clone());
        dial.push(PeerAddress { key, address });
    }
    for observer in &config.network.observers {
        let key =
            parse_key(observer).map_err(|reason| anyhow::anyhow!("network.observers: {reason}"))?;
        allowed.push(PeerKey(key.0));
    }
    let (network, mut events) = yuchain_network::spawn(NetworkConfig {
        key: NetworkKey::from_seed(network_key.seed()),
        listen: config.network.listen,
        dial,
        allowed,
        limits: Limits::default(),
    })
    .await
    .context("starting the network (section [network] of config.toml)")?;

    let metrics = Metrics::with_network(network.clone());
    let validator_set = ValidatorSet::new(
        yuchain_consensus::ChainTag::of(&genesis.ledger.chain_id),
        Epoch(0),
        validators
            .iter()
            .map(|validator| validator.consensus_key)
            .collect(),
    )
    .map_err(|error| anyhow::anyhow!("the genesis validator set: {error}"))?;
    let shared = Arc::new(Shared::new(
        config.clone(),
        genesis.hash()?,
        consensus_key.clone(),
        validator_set,
        peers,
        Arc::clone(&store),
        ledger,
        Arc::clone(&metrics),
        network.clone(),
    ));
    metrics
        .height
        .set(i64::try_from(height).unwrap_or(i64::MAX));
    let (_, genesis_applied) =
        yuchain_ledger::Ledger::genesis(&genesis.ledger).context("applying the ledger genesis")?;
    shared.remember_executed(crate::shared::ExecutedState {
        height: 0,
        block_hash: genesis_applied.block_hash,
        state_root: genesis_applied.state_root,
    });
    let restore_shared = Arc::clone(&shared);
    let restored_batches =
        tokio::task::spawn_blocking(move || executor::restore_batches(&restore_shared))
            .await
            .context("restoring the stored batches")??;
    if restored_batches > 0 {
        info!(
            batches = restored_batches,
            "restored the batches held before the restart"
        );
    }

    let consensus_config = yuchain_consensus::Config {
        round_timeout_ms: config.consensus.round_timeout_ms,
        round_timeout_ms_max: config.consensus.round_timeout_ms_max,
        ..yuchain_consensus::Config::default()
    };
    let core = Core::new(
        consensus_key,
        consensus_config,
        genesis.consensus_genesis()?,
        restored,
    )
    .map_err(|error| anyhow::anyhow!("restarting consensus from the store: {error}"))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel::<anyhow::Error>();
    let (driver_tx, driver_rx) = mpsc::channel::<DriverEvent>(CONSENSUS_INBOX);
    let (batch_tx, batch_rx) = mpsc::channel::<BatchEvent>(BATCH_INBOX);
    let (commit_tx, commit_rx) = mpsc::channel(EXECUTION_QUEUE);

    // Set when the executor's drain time is up: a fetch still waiting for a
    // batch gives up (before the runtime it waits on shuts down).
    let (abandon_tx, abandon_rx) = watch::channel(false);
    let executor = executor::start(
        Arc::clone(&shared),
        commit_rx,
        tokio::runtime::Handle::current(),
        fatal_tx.clone(),
        abandon_rx,
    )?;

    let driver = Driver::new(
        Arc::clone(&shared),
        core,
        safety,
        driver_rx,
        driver_tx.clone(),
        commit_tx,
    )?;
    let driver_fatal = fatal_tx.clone();
    let driver_shutdown = shutdown_rx.clone();
    let driver_task = tokio::spawn(async move {
        if let Err(error) = driver.run(driver_shutdown).await {
            let _ = driver_fatal.send(error.context("the consensus driver stopped"));
        }
    });

    let batch_task = tokio::spawn(batcher::run(
        Arc::clone(&shared),
        batch_rx,
        shutdown_rx.clone(),
    ));

    let router_shared = Arc::clone(&shared);
    let router = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            route(&router_shared, &driver_tx, &batch_tx, event);
        }
    });

    let gateway_tls = match &config.gateway.tls {
        Some(tls) => Some(gateway_tls(home, tls)?),
        None => None,
    };
    let gateway = Gateway::bind(
        GatewayConfig {
            listen: config.gateway.listen,
            tls: gateway_tls,
            ..GatewayConfig::default()
        },
        Admission::start(Arc::clone(&shared)),
    )
    .await
    .context("starting the gateway (fields `listen` and `tls` of [gateway] in config.toml)")?;
    let gateway_address = gateway.local_addr();
    let mut gateway_shutdown = shutdown_rx.clone();
    let gateway_task = tokio::spawn(gateway.serve(async move {
        let _ = gateway_shutdown.wait_for(|stop| *stop).await;
    }));

    let metrics_task = match config.metrics.enabled.then_some(config.metrics.listen) {
        Some(address) => {
            let listener = crate::metrics::bind(address).await.with_context(|| {
                format!("serving metrics on {address} (field `listen` of [metrics])")
            })?;
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                Arc::clone(&metrics),
            )))
        }
        None => None,
    };
    let status_task = tokio::spawn(status_log(Arc::clone(&shared), shutdown_rx.clone()));

    info!(
        role = ?config.role,
        p2p = %network.listen_address(),
        gateway = %gateway_address,
        gateway_tls = match &config.gateway.tls {
            None => "off",
            Some(tls) if tls.client_ca.is_some() => "mutual",
            Some(_) => "on",
        },
        metrics = ?config.metrics.enabled.then_some(config.metrics.listen),
        "yuchain-node is running"
    );

    let outcome = tokio::select! {
        () = stop_signal() => {
            info!("stopping (signal)");
            Ok(())
        }
        error = fatal_rx.recv() => match error {
            Some(error) => {
                error!(error = %format!("{error:#}"), "stopping after a fatal error");
                Err(error)
            }
            None => Ok(()),
        },
    };

    let _ = shutdown_tx.send(true);
    let _ = gateway_task.await;
    let _ = driver_task.await;
    let _ = batch_task.await;
    router.abort();
    status_task.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    // The driver held the only sender of committed blocks: the executor now
    // drains what was committed, closes the block writer and stops.
    let mut joined = tokio::task::spawn_blocking(move || executor.join());
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut joined).await {
        Ok(Ok(Ok(()))) => {}
        Ok(_) => warn!("the executor thread panicked"),
        Err(_) => {
            warn!(
                "the executor did not finish within {DRAIN_TIMEOUT:?}; what was not written is fetched from peers at the next start"
            );
            // A fetch that never got its batch stops now, so the thread
            // ends (and closes the block writer) before the runtime does.
            let _ = abandon_tx.send(true);
            let _ = tokio::time::timeout(ABANDON_TIMEOUT, joined).await;
        }
    }
    while let Ok(error) = fatal_rx.try_recv() {
        warn!(error = %format!("{error:#}"), "while stopping");
    }
    network.shutdown().await;
    info!("stopped");
    outcome
}

/// Sends one network event where it belongs; a full queue drops it (the
/// protocols recover from loss) and counts it.
/// Reads the gateway's TLS files named by `[gateway.tls]` (relative to the
/// home), naming the field of a file that cannot be read.
fn gateway_tls(home: &Path, tls: &GatewayTlsSection) -> Result<GatewayTls> {
    let read = |field: &str, path: &Path| {
        let path = resolve(home, path);
        std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (field `{field}` of [gateway.tls] in {})",
                path.display(),
                home.join(CONFIG_FILE).display()
            )
        })
    };
    Ok(GatewayTls {
        certificate_pem: read("certificate", &tls.certificate)?,
        private_key_pem: read("private_key", &tls.private_key)?,
        client_ca_pem: match &tls.client_ca {
            Some(path) => Some(read("client_ca", path)?),
            None => None,
        },
    })
}

fn route(
    shared: &Arc<Shared>,
    driver: &mpsc::Sender<DriverEvent>,
    batches: &mpsc::Sender<BatchEvent>,
    event: NetworkEvent,
) {
    match event {
        NetworkEvent::Message {
            from,
            channel: Channel::Consensus,
            bytes,
        } => {
            if driver
                .try_send(DriverEvent::Message { from, bytes })
                .is_err()
            {
                shared.metrics.batch("consensus_inbox_full");
            }
        }
        NetworkEvent::Message {
            from,
            channel: Channel::Batches,
            bytes,
        } => {
            if batches.try_send(BatchEvent { from, bytes }).is_err() {
                shared.metrics.batch("batch_inbox_full");
            }
        }
        NetworkEvent::Request { bytes, reply, .. } => {
            let shared = Arc::clone(shared);
            tokio::task::spawn_blocking(move || {
                reply.send(executor::serve_fetch(&shared, &bytes));
            });
        }
        NetworkEvent::PeerConnected(peer) => {
            info!(peer = %peer.to_hex(), "peer connected");
            update_peers(shared);
        }
        NetworkEvent::PeerDisconnected(peer) => {
            info!(peer = %peer.to_hex(), "peer disconnected");
            update_peers(shared);
        }
    }
}

fn update_peers(shared: &Shared) {
    let peers = shared.network.connected_peers().len();
    shared
        .metrics
        .peers
        .set(i64::try_from(peers).unwrap_or(i64::MAX));
}

/// Logs the node's state every few seconds.
async fn status_log(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_secs(10));
    let mut dropped_before = (0, 0);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = interval.tick() => {}
        }
        let stats = shared.network.stats();
        let dropped = (lane_dropped(&stats.consensus), lane_dropped(&stats.batches));
        if dropped != dropped_before {
            warn!(
                consensus = dropped.0.saturating_sub(dropped_before.0),
                batches = dropped.1.saturating_sub(dropped_before.1),
                "peer messages were dropped since the last status (full queues, rate limits or \
                 failed streams: see yuchain_network_dropped_total)"
            );
            dropped_before = dropped;
        }
        let height = *shared.durable.borrow();
        let (pending, bytes) = {
            let mempool = shared.mempool();
            (mempool.len(), mempool.bytes())
        };
        info!(
            height,
            peers = shared.network.connected_peers().len(),
            mempool = pending,
            mempool_bytes = bytes,
            "status"
        );
    }
}

/// Every message a lane dropped, for any reason.
fn lane_dropped(lane: &yuchain_network::ChannelStats) -> u64 {
    lane.dropped_full
        .saturating_add(lane.dropped_too_big)
        .saturating_add(lane.dropped_rate_limited)
        .saturating_add(lane.dropped_send_failed)
}

/// The environment variable that makes a node stop when the process that
/// started it dies (set by the devnet and the multi-process tests, so a
/// killed test runner leaves no node behind).
pub const EXIT_WITH_PARENT_ENV: &str = "YUCHAIN_EXIT_WITH_PARENT";

/// Resolves when the parent process is gone, if [`EXIT_WITH_PARENT_ENV`] is
/// set; never otherwise.
async fn parent_gone() {
    if std::env::var_os(EXIT_WITH_PARENT_ENV).is_none() {
        return std::future::pending().await;
    }
    let parent = nix::unistd::getppid();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if nix::unistd::getppid() != parent {
            warn!("the process that started this node is gone; stopping");
            return;
        }
    }
}

/// Resolves on SIGTERM, Ctrl-C, or (see [`EXIT_WITH_PARENT_ENV`]) the
/// parent's exit.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
        () = parent_gone() => {}
    }
}
