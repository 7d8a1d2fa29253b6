//! `yuchain scenario netns`: 4 validators, each in its own Linux network
//! namespace, under real network faults, with payments streaming:
//!
//! 1. every link delayed (a delaying TCP proxy per ordered pair of nodes,
//!    see [`crate::delay_proxy`]) and lossy (`iptables -m statistic` drops
//!    a fraction of each node's outgoing peer-to-peer packets);
//! 2. one validator cut off from the other three (iptables DROP), then
//!    healed: the three keep committing, the fourth catches up;
//! 3. two validators cut off from the other two: no side has a quorum, so
//!    commits must stop on every node and nothing may fork; then healed:
//!    commits resume and every node agrees.
//!
//! The namespaces are made (and removed) by `scripts/netns-scenario.sh`,
//! which runs this driver in the hub namespace; the driver adds its
//! iptables rules in the nodes' namespaces only, in chains of its own, and
//! removes them at the end (deleting the namespaces removes them too).
//!
//! Peer-to-peer traffic of node `i` to node `j` goes `i → hub:port(i, j) →
//! j`: node `i`'s config overrides `j`'s address with its own proxy port,
//! so each ordered pair has a port and a cut of the pair `i`–`j` is a DROP
//! of `port(i, j)` in `i`'s namespace and of `port(j, i)` in `j`'s. The
//! gateways (which the driver queries) are never filtered.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::{Args, Subcommand};

use crate::cluster::{Cluster, ClusterConfig, NodePlacement};
use crate::delay_proxy::DelayProxy;
use crate::load::{PaymentLoad, Stats, fund_wallets};

/// `yuchain scenario ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum ScenarioCommand {
    /// Validators in network namespaces (made by
    /// scripts/netns-scenario.sh) under delay, loss and partitions.
    Netns(NetnsArgs),
}

/// Options of `yuchain scenario netns`.
#[derive(Args, Debug, Clone)]
pub struct NetnsArgs {
    /// The network namespace of each validator (4, comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub node_namespaces: Vec<String>,
    /// Each validator's address inside its namespace (4, comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub node_hosts: Vec<IpAddr>,
    /// This driver's address as the nodes see it (the delaying proxies
    /// listen there).
    #[arg(long)]
    pub hub_host: IpAddr,
    /// One-way delay added to every peer-to-peer link, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub delay_ms: u64,
    /// The fraction of each node's outgoing peer-to-peer packets dropped.
    #[arg(long, default_value_t = 0.01)]
    pub loss: f64,
    /// Payments offered per second (open loop, across all gateways).
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// How many funded wallets pay each other.
    #[arg(long, default_value_t = 300)]
    pub wallets: usize,
    /// Short phases (for CI: the whole run well under 3 minutes).
    #[arg(long)]
    pub short: bool,
    /// Seconds of phase 1 (delay and loss only); default 30, short 10.
    #[arg(long)]
    pub baseline_secs: Option<u64>,
    /// Seconds a cut lasts (phase 2; phase 3 after its grace); default 12,
    /// short 8.
    #[arg(long)]
    pub cut_secs: Option<u64>,
    /// Seconds of payments after a heal (once the chain moved again);
    /// default 15, short 6.
    #[arg(long)]
    pub heal_secs: Option<u64>,
    /// Seconds after the two-node cut before heights must stand still: a
    /// block ordered before the cut may still be executed, late, by a node
    /// that must fetch its batches (retried every 5 s).
    #[arg(long, default_value_t = 10)]
    pub grace_secs: u64,
    /// The longest a heal may take to show (the isolated node caught up,
    /// or new blocks on every node), in seconds.
    #[arg(long, default_value_t = 60)]
    pub resume_timeout_secs: u64,
    /// The consensus round timeout, if not the node's default.
    #[arg(long)]
    pub round_timeout_ms: Option<u64>,
    /// The iptables program (e.g. iptables-legacy).
    #[arg(long, default_value = "iptables")]
    pub iptables: String,
    /// The `yuchain-node` binary (default: $YUCHAIN_NODE_BINARY, else next
    /// to this one).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// Where the homes and logs go (default: a temporary directory, removed
    /// at the end unless --keep).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the directory at the end.
    #[arg(long)]
    pub keep: bool,
    /// Print the results as JSON too.
    #[arg(long)]
    pub json: bool,
}

/// Runs a scenario.
pub fn run(command: &ScenarioCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        ScenarioCommand::Netns(args) => runtime.block_on(async {
            tokio::select! {
                result = netns(args) => result,
                signal = stop_signal() => bail!("stopped by {signal}"),
            }
        }),
    }
}

/// Resolves on Ctrl-C or SIGTERM, with its name.
async fn stop_signal() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        () = terminate => "SIGTERM",
    }
}

/// The phases' durations.
#[derive(Debug, Clone, Copy)]
struct Durations {
    baseline: Duration,
    cut: Duration,
    heal: Duration,
    grace: Duration,
    resume_timeout: Duration,
}

impl Durations {
    fn of(args: &NetnsArgs) -> Durations {
        let pick = |value: Option<u64>, long: u64, short: u64| {
            Duration::from_secs(value.unwrap_or(if args.short { short } else { long }))
        };
        Durations {
            baseline: pick(args.baseline_secs, 30, 10),
            cut: pick(args.cut_secs, 12, 8),
            heal: pick(args.heal_secs, 15, 6),
            grace: Duration::from_secs(args.grace_secs),
            resume_timeout: Duration::from_secs(args.resume_timeout_secs),
        }
    }
}

fn node_binary(args: &NetnsArgs) -> Result<PathBuf> {
    crate::cluster::locate_node_binary(args.node_binary.as_deref())
}

/// The iptables chains the driver makes in each node's namespace.
const CHAIN_CUT_OUT: &str = "yuns-cut-out";
const CHAIN_CUT_IN: &str = "yuns-cut-in";
const CHAIN_LOSS: &str = "yuns-loss";

/// The network around the nodes: the proxies and the firewall rules.
struct Network {
    namespaces: Vec<String>,
    iptables: String,
    hub: IpAddr,
    /// `ports[i][j]`: the hub port node `i` dials to reach node `j`.
    ports: Vec<Vec<u16>>,
    _proxies: Vec<DelayProxy>,
    /// The pairs cut now.
    cut: BTreeSet<(usize, usize)>,
    /// Whether the chains are in place.
    installed: bool,
}

impl Network {
    /// Runs iptables in namespace `index`.
    fn iptables(&self, index: usize, args: &[&str]) -> Result<()> {
        self.iptables_output(index, args).map(drop)
    }

    /// Runs iptables in namespace `index`; returns its standard output.
    fn iptables_output(&self, index: usize, args: &[&str]) -> Result<String> {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespaces[index],
                &self.iptables,
                "-w",
            ])
            .args(args)
            .output()
            .with_context(|| format!("running ip netns exec ... {}", self.iptables))?;
        ensure!(
            output.status.success(),
            "in namespace {}: {} {} failed: {}",
            self.namespaces[index],
            self.iptables,
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The packets the DROP rules of `chains` dropped so far, summed over
    /// every namespace (iptables' own counters).
    fn dropped(&self, chains: &[&str]) -> Result<u64> {
        let mut total = 0u64;
        for index in 0..self.namespaces.len() {
            for chain in chains {
                let listing = self.iptables_output(index, &["-L", chain, "-v", "-x", "-n"])?;
                for line in listing.lines() {
                    let mut fields = line.split_whitespace();
                    let packets = fields.next().and_then(|field| field.parse::<u64>().ok());
                    let _bytes = fields.next();
                    if let Some(packets) = packets
                        && fields.next() == Some("DROP")
                    {
                        total = total.saturating_add(packets);
                    }
                }
            }
        }
        Ok(total)
    }

    /// Makes the chains in every namespace and sends each node's
    /// peer-to-peer packets through them.
    fn install(&mut self, p2p_ports: &[u16]) -> Result<()> {
        self.installed = true;
        let hub = self.hub.to_string();
        for (index, listen) in p2p_ports.iter().enumerate() {
            for chain in [CHAIN_CUT_OUT, CHAIN_CUT_IN, CHAIN_LOSS] {
                self.iptables(index, &["-N", chain])?;
            }
            let listen = listen.to_string();
            let dialed: Vec<String> = (0..self.namespaces.len())
                .filter(|&peer| peer != index)
                .map(|peer| self.ports[index][peer].to_string())
                .collect();
            let dialed = dialed.join(",");
            let rules: [&[&str]; 4] = [
                &["-A", "OUTPUT", "-p", "tcp", "-d", &hub, "-j", CHAIN_CUT_OUT],
                &["-A", "INPUT", "-p", "tcp", "-s", &hub, "-j", CHAIN_CUT_IN],
                // Loss on what the node sends: its side of connections
                // peers dialed (through their proxies), and connections it
                // dialed; each packet of a link crosses one such rule.
                &[
                    "-A", "OUTPUT", "-p", "tcp", "-d", &hub, "--sport", &listen, "-j", CHAIN_LOSS,
                ],
                &[
                    "-A",
                    "OUTPUT",
                    "-p",
                    "tcp",
                    "-d",
                    &hub,
                    "-m",
                    "multiport",
                    "--dports",
                    &dialed,
                    "-j",
                    CHAIN_LOSS,
                ],
            ];
            for rule in rules {
                self.iptables(index, rule)?;
            }
        }
        Ok(())
    }

    /// Drops `fraction` of every node's outgoing peer-to-peer packets (0:
    /// none).
    fn set_loss(&self, fraction: f64) -> Result<()> {
        for index in 0..self.namespaces.len() {
            self.iptables(index, &["-F", CHAIN_LOSS])?;
            if fraction > 0.0 {
                let probability = format!("{fraction}");
                self.iptables(
                    index,
                    &[
                        "-A",
                        CHAIN_LOSS,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &probability,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Cuts every link between a node of `side` and a node not in it.
    fn cut_off(&mut self, side: &[usize]) -> Result<()> {
        let count = self.namespaces.len();
        for &inside in side {
            for outside in (0..count).filter(|node| !side.contains(node)) {
                self.cut_pair(inside, outside)?;
                self.cut_pair(outside, inside)?;
            }
        }
        Ok(())
    }

    /// Drops, in `from`'s namespace, the connections `from` dials to `to`.
    fn cut_pair(&mut self, from: usize, to: usize) -> Result<()> {
        if !self.cut.insert((from, to)) {
            return Ok(());
        }
        let port = self.ports[from][to].to_string();
        self.iptables(
            from,
            &[
                "-A",
                CHAIN_CUT_OUT,
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "DROP",
            ],
        )?;
        self.iptables(
            from,
            &[
                "-A",
                CHAIN_CUT_IN,
                "-p",
                "tcp",
                "--sport",
                &port,
                "-j",
                "DROP",
            ],
        )
    }

    /// Removes every cut; returns the packets the cut dropped.
    fn heal(&mut self) -> Result<u64> {
        let dropped = self.dropped(&[CHAIN_CUT_OUT, CHAIN_CUT_IN])?;
        for index in 0..self.namespaces.len() {
            self.iptables(index, &["-F", CHAIN_CUT_OUT])?;
            self.iptables(index, &["-F", CHAIN_CUT_IN])?;
        }
        self.cut.clear();
        Ok(dropped)
    }

    /// Removes the driver's rules and chains (best effort: deleting the
    /// namespaces removes them anyway).
    fn uninstall(&mut self) {
        if !std::mem::take(&mut self.installed) {
            return;
        }
        for index in 0..self.namespaces.len() {
            let _ = self.iptables(index, &["-F", "OUTPUT"]);
            let _ = self.iptables(index, &["-F", "INPUT"]);
            for chain in [CHAIN_CUT_OUT, CHAIN_CUT_IN, CHAIN_LOSS] {
                let _ = self.iptables(index, &["-F", chain]);
                let _ = self.iptables(index, &["-X", chain]);
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.uninstall();
    }
}

/// A node's network public key, from its card.
fn network_key(home: &Path) -> Result<String> {
    let path = home.join("validator.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let card: toml::Value = toml::from_str(&text)?;
    card.get("network_public_key")
        .and_then(|value| value.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no network_public_key", path.display()))
}

/// One row of the results.
#[derive(Debug, Clone)]
struct Phase {
    name: String,
    seconds: f64,
    committed: u64,
    timeouts: u64,
    refused: u64,
    p50_ms: Option<u64>,
    p99_ms: Option<u64>,
    heights: Vec<Option<u64>>,
    /// The height compared and whether every node held the same root.
    agreement: Option<(u64, bool)>,
    note: String,
}

/// A check and whether it held.
#[derive(Debug, Clone)]
struct Check {
    what: String,
    passed: bool,
}

/// The scenario's state between phases.
struct Run {
    cluster: Cluster,
    load: PaymentLoad,
    rate: u64,
    started: Instant,
    offered: u64,
    phase_start: (Instant, Stats),
    phases: Vec<Phase>,
    checks: Vec<Check>,
}

impl Run {
    fn check(&mut self, what: impl Into<String>, passed: bool) {
        let what = what.into();
        println!("  check: {what}: {}", if passed { "ok" } else { "FAILED" });
        self.checks.push(Check { what, passed });
    }

    /// Keeps offering payments for `duration`, printing progress each
    /// second; returns early when `until` says so (polled every 250 ms).
    async fn pump(
        &mut self,
        duration: Duration,
        mut until: impl FnMut(&[Option<u64>]) -> bool,
    ) -> bool {
        let end = Instant::now() + duration;
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_poll = Instant::now();
        let mut last_print = Instant::now();
        loop {
            ticker.tick().await;
            let due = u64::try_from(self.started.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .saturating_mul(self.rate)
                / 1_000;
            while self.offered < due {
                self.load.offer();
                self.offered += 1;
            }
            self.load.reap();
            if last_poll.elapsed() >= Duration::from_millis(250) {
                last_poll = Instant::now();
                let heights = heights(&self.cluster).await;
                if until(&heights) {
                    return true;
                }
                if last_print.elapsed() >= Duration::from_secs(1) {
                    last_print = Instant::now();
                    self.progress(&heights);
                }
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    fn progress(&self, heights: &[Option<u64>]) {
        let stats = self.load.snapshot();
        println!(
            "{:>5.1}s  committed {:>6}  in flight {:>4}  timeouts {:>3}  heights {}",
            self.started.elapsed().as_secs_f64(),
            stats.committed,
            self.load.in_flight(),
            stats.timeouts,
            show_heights(heights),
        );
    }

    /// Starts measuring a phase.
    fn begin(&mut self, name: &str) {
        println!("== {name}");
        self.phase_start = (Instant::now(), self.load.snapshot());
    }

    /// Ends the phase: its payments, the heights and (if `compare`) the
    /// state roots at the lowest height every node has.
    async fn end(&mut self, name: &str, compare: bool, note: String) -> Result<Phase> {
        let (started, before) = &self.phase_start;
        let seconds = started.elapsed().as_secs_f64();
        let now = self.load.snapshot();
        let mut latencies = now
            .latencies_ms
            .get(before.latencies_ms.len()..)
            .unwrap_or_default()
            .to_vec();
        latencies.sort_unstable();
        let quantile = |permille: usize| -> Option<u64> {
            let last = latencies.len().checked_sub(1)?;
            latencies.get((last * permille / 1000).min(last)).copied()
        };
        let heights = heights(&self.cluster).await;
        let agreement = if compare {
            let common = heights.iter().flatten().min().copied().unwrap_or(0);
            Some((common, agree_at(&self.cluster, common).await?))
        } else {
            None
        };
        let phase = Phase {
            name: name.to_string(),
            seconds,
            committed: now.committed - before.committed,
            timeouts: now.timeouts - before.timeouts,
            refused: now.refused.values().sum::<u64>() - before.refused.values().sum::<u64>(),
            p50_ms: quantile(500),
            p99_ms: quantile(990),
            heights,
            agreement,
            note,
        };
        println!(
            "   {}: {} committed in {:.1} s, heights {}{}",
            phase.name,
            phase.committed,
            phase.seconds,
            show_heights(&phase.heights),
            match phase.agreement {
                Some((height, true)) => format!(", same state root at height {height}"),
                Some((height, false)) => format!(", STATE ROOTS DIFFER at height {height}"),
                None => String::new(),
            }
        );
        self.phases.push(phase.clone());
        Ok(phase)
    }
}

/// Every node's durable height (`None`: it did not answer).
async fn heights(cluster: &Cluster) -> Vec<Option<u64>> {
    let mut heights = Vec::with_capacity(cluster.nodes.len());
    for index in 0..cluster.nodes.len() {
        heights.push(cluster.chain_info(index).await.ok().map(|info| info.height));
    }
    heights
}

fn show_heights(heights: &[Option<u64>]) -> String {
    heights
        .iter()
        .map(|height| height.map_or("?".into(), |height| height.to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether every node holds the same state root at `height`.
async fn agree_at(cluster: &Cluster, height: u64) -> Result<bool> {
    let mut roots = Vec::with_capacity(cluster.nodes.len());
    for index in 0..cluster.nodes.len() {
        roots.push(cluster.state_root_at(index, height).await?);
    }
    Ok(roots.windows(2).all(|pair| pair[0] == pair[1]))
}

async fn netns(args: &NetnsArgs) -> Result<()> {
    let count = args.node_namespaces.len();
    ensure!(
        count == 4 && args.node_hosts.len() == 4,
        "the scenario needs 4 validators: 4 --node-namespaces and 4 --node-hosts"
    );
    ensure!((0.0..1.0).contains(&args.loss), "--loss must be in [0, 1)");
    ensure!(
        args.rate > 0 && args.wallets >= 2,
        "--rate must be positive and --wallets at least 2"
    );
    let durations = Durations::of(args);
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("yuchain-netns-")
                .tempdir()
                .context("making a temporary directory")?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let mut config = ClusterConfig::devnet(dir.clone(), node_binary(args)?);
    config.round_timeout_ms = args.round_timeout_ms;
    config.placement = Some(
        args.node_namespaces
            .iter()
            .zip(&args.node_hosts)
            .map(|(namespace, host)| NodePlacement {
                host: *host,
                command_prefix: ["ip", "netns", "exec", namespace.as_str()]
                    .map(str::to_string)
                    .to_vec(),
            })
            .collect(),
    );
    println!(
        "yuchain scenario netns: 4 validators in namespaces {}, {} ms one-way delay, {}% loss; \
         homes and logs in {}",
        args.node_namespaces.join(","),
        args.delay_ms,
        args.loss * 100.0,
        dir.display()
    );
    let cluster = Cluster::create(config)?;

    // A delaying proxy for each ordered pair, and each node told to reach
    // each peer through its own one.
    let delay = Duration::from_millis(args.delay_ms);
    let mut ports = vec![vec![0u16; count]; count];
    let mut proxies = Vec::new();
    for (from, row) in ports.iter_mut().enumerate() {
        for (to, port) in row.iter_mut().enumerate() {
            if from == to {
                continue;
            }
            let proxy = DelayProxy::start(
                SocketAddr::new(args.hub_host, 0),
                cluster.nodes[to].p2p,
                delay,
            )
            .await?;
            *port = proxy.listen.port();
            proxies.push(proxy);
        }
    }
    let keys: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| network_key(&node.home))
        .collect::<Result<_>>()?;
    for (from, node) in cluster.nodes.iter().enumerate() {
        let path = node.home.join("config.toml");
        let mut text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for (to, key) in keys.iter().enumerate() {
            if to != from {
                let address = SocketAddr::new(args.hub_host, ports[from][to]);
                write!(
                    text,
                    "\n[[network.peers]]\nnetwork_public_key = \"{key}\"\naddress = \"{address}\"\n"
                )?;
            }
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut network = Network {
        namespaces: args.node_namespaces.clone(),
        iptables: args.iptables.clone(),
        hub: args.hub_host,
        ports,
        _proxies: proxies,
        cut: BTreeSet::new(),
        installed: false,
    };
    let p2p_ports: Vec<u16> = cluster.nodes.iter().map(|node| node.p2p.port()).collect();
    network.install(&p2p_ports)?;
    for (index, node) in cluster.nodes.iter().enumerate() {
        println!(
            "  {:<34} {:<8} p2p {}  gateway {}  (peers dial it at {})",
            node.name,
            args.node_namespaces[index],
            node.p2p,
            node.gateway,
            (0..count)
                .filter(|&from| from != index)
                .map(|from| network.ports[from][index].to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }

    let outcome = scenario(cluster, &mut network, args, durations).await;
    network.uninstall();
    let (cluster, phases, checks) = match outcome {
        Ok(result) => result,
        Err(error) => {
            if let Some(temporary) = temporary {
                let kept = temporary.keep();
                println!("kept {} (homes and logs) to look into", kept.display());
            }
            return Err(error);
        }
    };
    drop(cluster);
    print_table(&phases, &checks, args, durations);
    let failed: Vec<&Check> = checks.iter().filter(|check| !check.passed).collect();
    if let Some(temporary) = temporary
        && (args.keep || !failed.is_empty())
    {
        let kept = temporary.keep();
        println!("kept {}", kept.display());
    }
    if !failed.is_empty() {
        let list: Vec<&str> = failed.iter().map(|check| check.what.as_str()).collect();
        bail!("{} check(s) failed: {}", failed.len(), list.join("; "));
    }
    Ok(())
}

/// The phases, in order; returns the cluster (stopped), the rows and the
/// checks.
async fn scenario(
    mut cluster: Cluster,
    network: &mut Network,
    args: &NetnsArgs,
    durations: Durations,
) -> Result<(Cluster, Vec<Phase>, Vec<Check>)> {
    let count = cluster.nodes.len();
    cluster.start_all()?;
    let started = Instant::now();
    for index in 0..count {
        cluster
            .wait_height(index, 1, Duration::from_secs(60))
            .await
            .context("waiting for the chain's first block (through the delaying proxies)")?;
    }
    println!(
        "the chain is live ({:.1} s); registering and funding {} wallets...",
        started.elapsed().as_secs_f64(),
        args.wallets
    );
    let wallets = fund_wallets(&cluster, args.wallets).await?;
    let mut clients = Vec::with_capacity(count);
    for index in 0..count {
        clients.push(cluster.client(index, Duration::from_secs(10)).await?);
    }
    let load = PaymentLoad::new(wallets, clients);
    let snapshot = load.snapshot();
    let mut run = Run {
        cluster,
        load,
        rate: args.rate,
        started: Instant::now(),
        offered: 0,
        phase_start: (Instant::now(), snapshot),
        phases: Vec::new(),
        checks: Vec::new(),
    };
    let result = phases(&mut run, network, args, durations).await;
    if let Err(error) = result {
        run.check(format!("the scenario ran to its end ({error:#})"), false);
    }
    network.heal()?;
    match network.dropped(&[CHAIN_LOSS]) {
        Ok(dropped) => println!("the loss rules dropped {dropped} peer-to-peer packets in all"),
        Err(error) => println!("could not read the loss rules' counters: {error:#}"),
    }
    network.set_loss(0.0)?;
    println!("stopping the payments (waiting up to 10 s for those in flight)...");
    run.load.drain(Duration::from_secs(10)).await;
    let final_check = final_agreement(&run.cluster).await;
    let mut exited = Vec::new();
    for index in 0..count {
        if !run.cluster.is_running(index) {
            exited.push(run.cluster.nodes[index].name.clone());
        }
    }
    run.cluster.stop_all(Duration::from_secs(20))?;
    match final_check {
        Ok((height, same)) => run.check(
            format!("at the end every node holds the same state root (height {height})"),
            same,
        ),
        Err(error) => run.check(format!("final agreement: {error:#}"), false),
    }
    run.check(
        format!(
            "no node exited during the run{}",
            if exited.is_empty() {
                String::new()
            } else {
                format!(" ({} did)", exited.join(", "))
            }
        ),
        exited.is_empty(),
    );
    let stats = run.load.snapshot();
    println!(
        "payments: {} offered, {} committed, {} timed out, {} refused, {} not offered (every \
         wallet busy), {} unfinished",
        stats.offered,
        stats.committed,
        stats.timeouts,
        stats.refused.values().sum::<u64>(),
        stats.skipped_busy,
        run.load.in_flight()
    );
    Ok((run.cluster, run.phases, run.checks))
}

/// Waits until every node reached the highest height any has, then
/// compares the state roots there.
async fn final_agreement(cluster: &Cluster) -> Result<(u64, bool)> {
    let mut height = 0;
    for index in 0..cluster.nodes.len() {
        height = height.max(cluster.chain_info(index).await?.height);
    }
    for index in 0..cluster.nodes.len() {
        cluster
            .wait_height(index, height, Duration::from_secs(30))
            .await?;
    }
    Ok((height, agree_at(cluster, height).await?))
}

async fn phases(
    run: &mut Run,
    network: &mut Network,
    args: &NetnsArgs,
    durations: Durations,
) -> Result<()> {
    let count = run.cluster.nodes.len();
    let all: Vec<usize> = (0..count).collect();

    // 1. Delay and loss.
    network.set_loss(args.loss)?;
    let name = "1 delay+loss";
    run.begin(name);
    let before = heights(&run.cluster).await;
    run.pump(durations.baseline, |_| false).await;
    let phase = run.end(name, true, String::new()).await?;
    let advanced = all
        .iter()
        .all(|&index| phase.heights[index] > before[index] && phase.heights[index].is_some());
    run.check(
        "phase 1: every node commits blocks under delay and loss",
        advanced,
    );
    run.check(
        "phase 1: every node holds the same state root",
        phase.agreement.is_some_and(|(_, same)| same),
    );
    run.check("phase 1: payments commit", phase.committed > 0);

    // 2. One validator cut off, then healed.
    let isolated = count - 1;
    let name = "2a one cut off";
    run.begin(name);
    network.cut_off(&[isolated])?;
    let before = heights(&run.cluster).await;
    run.pump(durations.cut, |_| false).await;
    let phase = run
        .end(name, true, format!("node {isolated} isolated"))
        .await?;
    let others_advanced = all
        .iter()
        .filter(|&&index| index != isolated)
        .all(|&index| phase.heights[index] > before[index] && phase.heights[index].is_some());
    run.check(
        "phase 2: the three connected validators keep committing",
        others_advanced,
    );
    run.check(
        "phase 2: no disagreement while one is cut off",
        phase.agreement.is_some_and(|(_, same)| same),
    );
    let name = "2b healed";
    run.begin(name);
    let dropped = network.heal()?;
    let healed = Instant::now();
    let target = phase
        .heights
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != isolated)
        .filter_map(|(_, height)| *height)
        .max()
        .unwrap_or(0);
    let caught_up = run
        .pump(durations.resume_timeout, |heights| {
            heights[isolated].is_some_and(|height| height >= target)
        })
        .await;
    let catch_up = healed.elapsed();
    run.pump(durations.heal, |_| false).await;
    let note = if caught_up {
        format!(
            "the cut dropped {dropped} packets; node {isolated} caught up to {target} in {:.1} s",
            catch_up.as_secs_f64()
        )
    } else {
        format!("the cut dropped {dropped} packets; node {isolated} did not reach {target}")
    };
    let phase = run.end(name, true, note).await?;
    run.check(
        format!("phase 2: after the heal node {isolated} catches up"),
        caught_up,
    );
    run.check(
        "phase 2: after the heal every node holds the same state root",
        phase.agreement.is_some_and(|(_, same)| same),
    );

    // 3. Two validators cut off from the other two: no quorum anywhere.
    let side = [count - 2, count - 1];
    let name = "3a two cut off";
    run.begin(name);
    network.cut_off(&side)?;
    let at_cut = heights(&run.cluster).await;
    run.pump(durations.grace, |_| false).await;
    let frozen = heights(&run.cluster).await;
    let frozen_committed = run.load.snapshot().committed;
    let frozen_at = Instant::now();
    // No new block: no node may pass the highest height any node had after
    // the grace. A node behind may still catch up to it (blocks committed
    // before the cut, fetched from its own side).
    let top = frozen.iter().flatten().max().copied().unwrap_or(0);
    let catching_up = frozen.iter().any(|height| *height != Some(top));
    let mut moved = false;
    run.pump(durations.cut, |heights| {
        moved |= heights.iter().flatten().any(|height| *height > top);
        false
    })
    .await;
    let committed_while_frozen = run.load.snapshot().committed - frozen_committed;
    let phase = run
        .end(
            name,
            true,
            format!(
                "n0,n1 | n2,n3; heights {} at the cut, {} after a {} s grace; \
                 {committed_while_frozen} payments committed in the {:.0} s after it",
                show_heights(&at_cut),
                show_heights(&frozen),
                durations.grace.as_secs(),
                frozen_at.elapsed().as_secs_f64()
            ),
        )
        .await?;
    let all_answer = frozen.iter().all(Option::is_some);
    run.check(
        format!(
            "phase 3: with 2 of 4 cut off no node goes past height {top} (the highest after a \
             {} s grace)",
            durations.grace.as_secs()
        ),
        all_answer
            && !moved
            && phase
                .heights
                .iter()
                .all(|height| height.is_some_and(|h| h <= top)),
    );
    if catching_up {
        // A node catching up answers payments of the old blocks it
        // executes; those are not new commits.
        println!(
            "  ({committed_while_frozen} payments confirmed after the grace by a node catching \
             up to {top}: not checked)"
        );
    } else {
        run.check(
            "phase 3: no payment commits while no side has a quorum",
            committed_while_frozen == 0,
        );
    }
    run.check(
        "phase 3: nothing forks (same state root at the common height)",
        phase.agreement.is_some_and(|(_, same)| same),
    );
    let name = "3b healed";
    run.begin(name);
    let dropped = network.heal()?;
    let healed = Instant::now();
    let resumed = run
        .pump(durations.resume_timeout, |heights| {
            heights
                .iter()
                .all(|height| height.is_some_and(|height| height > top))
        })
        .await;
    let resume = healed.elapsed();
    run.pump(durations.heal, |_| false).await;
    let note = if resumed {
        format!(
            "the cut dropped {dropped} packets; every node past height {top} {:.1} s after the heal",
            resume.as_secs_f64()
        )
    } else {
        format!("the cut dropped {dropped} packets; no resume past height {top}")
    };
    let phase = run.end(name, true, note).await?;
    run.check(
        "phase 3: after the heal commits resume on every node",
        resumed,
    );
    run.check(
        "phase 3: after the heal every node holds the same state root",
        phase.agreement.is_some_and(|(_, same)| same),
    );
    run.check(
        "phase 3: after the heal payments commit",
        phase.committed > 0,
    );
    Ok(())
}

fn ms(value: Option<u64>) -> String {
    value.map_or("-".into(), |ms| format!("{ms}"))
}

fn print_table(phases: &[Phase], checks: &[Check], args: &NetnsArgs, durations: Durations) {
    println!();
    println!(
        "network fault scenario: 4 validators, {} ms one-way delay, {}% loss, {} payments/s \
         offered, {} wallets",
        args.delay_ms,
        args.loss * 100.0,
        args.rate,
        args.wallets
    );
    println!(
        "| phase | seconds | committed | committed/s | finality p50 ms | p99 ms | timeouts | \
         heights n0/n1/n2/n3 | agreement | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for phase in phases {
        let rate = if phase.seconds > 0.0 {
            phase.committed as f64 / phase.seconds
        } else {
            0.0
        };
        println!(
            "| {} | {:.1} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            phase.name,
            phase.seconds,
            phase.committed,
            rate,
            ms(phase.p50_ms),
            ms(phase.p99_ms),
            phase.timeouts,
            show_heights(&phase.heights),
            match phase.agreement {
                Some((height, true)) => format!("same root @{height}"),
                Some((height, false)) => format!("DIFFER @{height}"),
                None => "-".into(),
            },
            phase.note
        );
    }
    println!();
    for check in checks {
        println!(
            "  [{}] {}",
            if check.passed { "ok" } else { "FAILED" },
            check.what
        );
    }
    if args.json {
        let json = serde_json::json!({
            "delay_ms": args.delay_ms,
            "loss": args.loss,
            "rate": args.rate,
            "wallets": args.wallets,
            "durations_s": {
                "baseline": durations.baseline.as_secs(),
                "cut": durations.cut.as_secs(),
                "heal": durations.heal.as_secs(),
                "grace": durations.grace.as_secs(),
            },
            "phases": phases.iter().map(|phase| serde_json::json!({
                "name": phase.name,
                "seconds": phase.seconds,
                "committed": phase.committed,
                "committed_per_s": if phase.seconds > 0.0 { phase.committed as f64 / phase.seconds } else { 0.0 },
                "finality_ms": { "p50": phase.p50_ms, "p99": phase.p99_ms },
                "timeouts": phase.timeouts,
                "refused": phase.refused,
                "heights": phase.heights,
                "agreement": phase.agreement.map(|(height, same)| serde_json::json!({
                    "height": height, "same_state_root": same,
                })),
                "note": phase.note,
            })).collect::<Vec<_>>(),
            "checks": checks.iter().map(|check| serde_json::json!({
                "check": check.what, "passed": check.passed,
            })).collect::<Vec<_>>(),
            "passed": checks.iter().all(|check| check.passed),
        });
        println!("{json}");
    }
}
