//! `yuchain devnet`: a local chain of 4 validators (the city treasury and
//! three banks) as 4 real `yuchain-node` processes on loopback, wallets
//! registered and funded through the gateways, and a steady stream of
//! payments, with live progress; at the end every node must hold the same
//! state root.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::cluster::{Cluster, ClusterConfig};
use crate::load::{PaymentLoad, Stats, fund_wallets};

/// Options of `yuchain devnet`.
#[derive(Args, Debug, Clone)]
pub struct DevnetArgs {
    /// How many validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// How many funded wallets pay each other.
    #[arg(long, default_value_t = 300)]
    pub wallets: usize,
    /// Payments offered per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where the nodes' homes and logs go (default: a new temporary
    /// directory, removed at the end unless --keep).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the directory (homes, logs) at the end.
    #[arg(long)]
    pub keep: bool,
    /// The `yuchain-node` binary (default: next to this one).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// Print the summary as JSON too.
    #[arg(long)]
    pub json: bool,
}

/// Runs the devnet.
pub fn run(args: &DevnetArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

fn node_binary(args: &DevnetArgs) -> Result<PathBuf> {
    crate::cluster::locate_node_binary(args.node_binary.as_deref())
}

async fn run_async(args: &DevnetArgs) -> Result<()> {
    if args.validators < 1 || args.wallets < 2 || args.rate == 0 {
        bail!("--validators must be at least 1, --wallets at least 2 and --rate positive");
    }
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("yuchain-devnet-")
                .tempdir()
                .context("making a temporary directory")?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let mut config = ClusterConfig::devnet(dir.clone(), node_binary(args)?);
    config.validators = args.validators;
    println!(
        "yuchain devnet: {} validators on loopback, homes and logs in {}",
        args.validators,
        dir.display()
    );
    let mut cluster = Cluster::create(config)?;
    for node in &cluster.nodes {
        println!(
            "  {:<34} p2p {}  gateway {}  metrics http://{}/metrics",
            node.name, node.p2p, node.gateway, node.metrics
        );
    }
    let started = Instant::now();
    cluster.start_all_and_wait(Duration::from_secs(60)).await?;
    println!(
        "the chain is live ({} s); issuing money to the banks and registering {} wallets...",
        started.elapsed().as_secs(),
        args.wallets
    );
    let wallets = fund_wallets(&cluster, args.wallets).await?;
    let profiles = cluster.write_profiles()?;
    if let Some(issuer) = profiles.first() {
        println!(
            "CLI profiles for the issuer and the banks are in {} (try `yuchain chain info \
             --profile {}`)",
            dir.display(),
            issuer.display()
        );
    }
    let mut clients = Vec::new();
    for index in 0..args.validators {
        clients.push(cluster.client(index, Duration::from_secs(10)).await?);
    }
    let mut load = PaymentLoad::new(wallets, clients);
    println!(
        "paying: {} payments/s offered across all gateways{} (Ctrl-C stops)",
        args.rate,
        args.duration
            .map(|seconds| format!(" for {seconds} s"))
            .unwrap_or_default()
    );
    let outcome = drive(&mut cluster, &mut load, args).await;
    load.drain(Duration::from_secs(35)).await;
    let stats = load.snapshot();
    let agreement = agreement(&cluster).await;
    for id in &stats.timed_out {
        let mut seen = Vec::new();
        for index in 0..cluster.nodes.len() {
            let status = match cluster.client(index, Duration::from_secs(2)).await {
                Ok(mut client) => client
                    .get_transaction(yuchain_proto::pb::GetTransactionRequest {
                        tx_id: id.0.to_vec(),
                    })
                    .await
                    .map(|response| format!("{:?}", response.into_inner().status()))
                    .unwrap_or_else(|status| status.message().to_string()),
                Err(error) => error.to_string(),
            };
            seen.push(format!("{}: {status}", cluster.nodes[index].name));
        }
        println!("  timed out {id}: {}", seen.join(", "));
    }
    cluster.stop_all(Duration::from_secs(20))?;
    print_summary(&stats, &agreement, args);
    if let Some(temporary) = temporary
        && args.keep
    {
        let kept = temporary.keep();
        println!("kept {}", kept.display());
    }
    outcome?;
    let (height, roots) = agreement?;
    if roots.windows(2).any(|pair| pair[0] != pair[1]) {
        bail!("the nodes disagree on the state root at height {height}");
    }
    Ok(())
}

/// Offers payments at the rate and prints progress every second until the
/// duration ends or Ctrl-C.
async fn drive(cluster: &mut Cluster, load: &mut PaymentLoad, args: &DevnetArgs) -> Result<()> {
    let start = Instant::now();
    let tick = Duration::from_millis(10);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut offered_total: u64 = 0;
    let mut last_print = Instant::now();
    let mut last_committed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                println!("\nstopping (Ctrl-C)...");
                return Ok(());
            }
            _ = ticker.tick() => {}
        }
        let elapsed = start.elapsed();
        if args
            .duration
            .is_some_and(|seconds| elapsed >= Duration::from_secs(seconds))
        {
            return Ok(());
        }
        let due = (elapsed.as_millis() as u64).saturating_mul(args.rate) / 1_000;
        while offered_total < due {
            load.offer();
            offered_total += 1;
        }
        load.reap();
        if last_print.elapsed() >= Duration::from_secs(1) {
            let window = last_print.elapsed();
            last_print = Instant::now();
            let stats = load.snapshot();
            let per_second = (stats.committed - last_committed) as f64 / window.as_secs_f64();
            last_committed = stats.committed;
            let mut nodes = Vec::new();
            for index in 0..cluster.nodes.len() {
                let running = cluster.is_running(index);
                let height = match cluster.chain_info(index).await {
                    Ok(info) => info.height.to_string(),
                    Err(_) if running => "?".into(),
                    Err(_) => "down".into(),
                };
                let peers = peers_of(&cluster.nodes[index].metrics).await;
                nodes.push(format!(
                    "h{height} p{}",
                    peers.map_or("?".into(), |p| p.to_string())
                ));
            }
            println!(
                "{:>4}s  committed {:>7} ({:>6.1}/s)  finality p50 {:>5} p99 {:>5}  in flight {:>4}  refused {:>3}  | {}",
                elapsed.as_secs(),
                stats.committed,
                per_second,
                ms(stats.latency_ms(500)),
                ms(stats.latency_ms(990)),
                load.in_flight(),
                stats.refused.values().sum::<u64>(),
                nodes.join("  "),
            );
            for index in 0..cluster.nodes.len() {
                if !cluster.is_running(index) {
                    bail!(
                        "{} stopped; its log: {}",
                        cluster.nodes[index].name,
                        cluster.nodes[index].log.display()
                    );
                }
            }
        }
    }
}

fn ms(value: Option<u64>) -> String {
    value.map_or("-".into(), |ms| format!("{ms}ms"))
}

/// Reads a node's `yuchain_peers` gauge from its metrics endpoint.
async fn peers_of(address: &std::net::SocketAddr) -> Option<u64> {
    let body = crate::metrics_text(address).await.ok()?;
    body.lines()
        .find_map(|line| line.strip_prefix("yuchain_peers "))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until every node reached a common height, then reads each one's
/// state root there.
async fn agreement(cluster: &Cluster) -> Result<(u64, Vec<Vec<u8>>)> {
    let mut height = 0;
    for index in 0..cluster.nodes.len() {
        height = height.max(cluster.chain_info(index).await?.height);
    }
    let mut roots = Vec::new();
    for index in 0..cluster.nodes.len() {
        cluster
            .wait_height(index, height, Duration::from_secs(30))
            .await?;
        roots.push(cluster.state_root_at(index, height).await?);
    }
    Ok((height, roots))
}

fn print_summary(stats: &Stats, agreement: &Result<(u64, Vec<Vec<u8>>)>, args: &DevnetArgs) {
    println!();
    println!("summary");
    println!("  payments offered     {}", stats.offered);
    println!("  committed (OK)       {}", stats.committed);
    println!(
        "  finality             p50 {}  p90 {}  p99 {}  max {}",
        ms(stats.latency_ms(500)),
        ms(stats.latency_ms(900)),
        ms(stats.latency_ms(990)),
        ms(stats.latency_ms(1000))
    );
    if !stats.failed.is_empty() {
        println!("  committed, refused by the ledger: {:?}", stats.failed);
    }
    if !stats.refused.is_empty() {
        println!("  refused at admission: {:?}", stats.refused);
    }
    if stats.timeouts > 0 {
        println!("  not committed in 30 s: {}", stats.timeouts);
    }
    if stats.skipped_busy > 0 {
        println!(
            "  not offered (every wallet had a payment in flight): {}",
            stats.skipped_busy
        );
    }
    match agreement {
        Ok((height, roots)) => {
            let same = roots.windows(2).all(|pair| pair[0] == pair[1]);
            println!(
                "  state root at height {height}: {} on all {} nodes{}",
                roots.first().map(hex::encode).unwrap_or_default(),
                roots.len(),
                if same {
                    " (identical)"
                } else {
                    " — THEY DIFFER"
                }
            );
        }
        Err(error) => println!("  state roots: could not compare: {error:#}"),
    }
    if args.json {
        let json = serde_json::json!({
            "offered": stats.offered,
            "committed": stats.committed,
            "finality_ms": {
                "p50": stats.latency_ms(500),
                "p90": stats.latency_ms(900),
                "p99": stats.latency_ms(990),
                "max": stats.latency_ms(1000),
            },
            "refused": stats.refused,
            "failed": stats.failed,
            "timeouts": stats.timeouts,
            "agreement": agreement.as_ref().ok().map(|(height, roots)| serde_json::json!({
                "height": height,
                "identical": roots.windows(2).all(|pair| pair[0] == pair[1]),
            })),
        });
        println!("{json}");
    }
}
