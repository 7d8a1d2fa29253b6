//! `yuchain bench`: the load generator. It starts a chain of real
//! `yuchain-node` processes whose genesis funds many wallets (keys derived
//! from a seed, so no registrations are needed first), signs every payment
//! in advance, then offers them at a fixed rate through the gateways of all
//! validators: an open loop, so a chain that falls behind shows up as
//! latency and timeouts, never as a lower offered rate. Each payment is
//! submitted with `wait_for_commit`, so its latency is submit → durable
//! committed receipt (finality).
//!
//! It reports committed payments per second, finality p50/p90/p99/max,
//! refusals by reason, the nodes' memory and disk, and the all-core batched
//! signature verification rate measured in the same run (the bound no
//! validator can beat, since each verifies every payment), as text, JSON
//! and an SVG chart. `--sweep` steps the rate up, a fresh chain per step,
//! until a step breaks the latency targets, and reports the highest rate
//! sustained.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};
use yuchain_gateway::WalletGatewayClient;
use yuchain_ledger::LoadTestWallets;
use yuchain_proto::pb::{self, transaction_body::Action};
use yuchain_proto::{Address, SigningKey, tx};

use crate::cluster::{Cluster, ClusterConfig, LoadTestGenesis};
use crate::load::{Outcome, submit};

/// Options of `yuchain bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Payments offered per second (the first rate of a sweep).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds of measured load (after the warm-up).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Wallets funded at genesis; payments go round-robin over them.
    #[arg(long, default_value_t = 100_000)]
    pub wallets: u64,
    /// How many validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Step the rate up by --sweep-step (a fresh chain per step) until a
    /// step misses a target; report the highest rate sustained.
    #[arg(long)]
    pub sweep: bool,
    /// The sweep's step, payments per second.
    #[arg(long, default_value_t = 2_000)]
    pub sweep_step: u64,
    /// The sweep's highest rate.
    #[arg(long, default_value_t = 40_000)]
    pub sweep_max: u64,
    /// The finality p50 a sustained rate must keep, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub p50_max_ms: u64,
    /// The finality p99 a sustained rate must keep, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub p99_max_ms: u64,
    /// gRPC connections opened to each gateway (a gateway runs at most 64
    /// requests at once per connection, and a waiting submission holds one).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Write an SVG chart of rate and latency over time here (per step of
    /// a sweep: `NAME-RATE.svg`).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Print the report as JSON (on standard output; progress goes to
    /// standard error).
    #[arg(long)]
    pub json: bool,
    /// Where the nodes' homes and logs go (default: a temporary directory,
    /// removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `yuchain-node` binary (default: next to this one; build both
    /// with `cargo build --release -p yuchain-node -p yuchain-cli`).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// Override the nodes' `batches.interval_ms` (how often a validator
    /// cuts a batch), to compare settings.
    #[arg(long)]
    pub batch_interval_ms: Option<u64>,
    /// Override the nodes' `storage.block_cache_mib` (RocksDB's block
    /// cache), e.g. to see memory level off in a soak.
    #[arg(long)]
    pub block_cache_mib: Option<u64>,
    /// Override the nodes' `storage.write_buffers_mib` (RocksDB's
    /// memtables, all column families together).
    #[arg(long)]
    pub write_buffers_mib: Option<u64>,
    /// How often resources (memory, disk) are sampled, in seconds.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
    /// Closed loop instead, for each of these client counts (e.g.
    /// 1,16,128): every client pays from its own wallet through one of the
    /// gateways, one payment at a time, waiting for each commit; reports
    /// submit-and-wait latency and committed payments per second (one
    /// chain for the whole list; --rate and --sweep are not used).
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
}

/// A payment's fate, as the load generator saw it.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// When it was submitted, since the load started.
    submitted: Duration,
    /// Submit to committed receipt; `None` unless it committed OK.
    latency: Option<Duration>,
}

/// The resources of the nodes at one moment.
#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    /// Seconds since the load started.
    at_s: f64,
    /// Each node's resident memory, bytes.
    rss_bytes: Vec<u64>,
    /// Each node's home (database, batches, safety record), bytes.
    disk_bytes: Vec<u64>,
    /// Each node's CPU time so far (user and system, all threads), seconds.
    cpu_s: Vec<f64>,
    /// Payments committed OK by then.
    committed: u64,
}

/// One run at one rate.
#[derive(Debug, serde::Serialize)]
struct StepReport {
    rate: u64,
    wallets: u64,
    validators: usize,
    duration_s: u64,
    warmup_s: u64,
    offered: u64,
    committed: u64,
    /// Committed in the measured window, per second.
    committed_per_s: f64,
    p50_ms: Option<u64>,
    p90_ms: Option<u64>,
    p99_ms: Option<u64>,
    max_ms: Option<u64>,
    timeouts: u64,
    refused: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    /// The submissions the generator could not start on time (it fell
    /// behind its own schedule by more than 100 ms).
    generator_late: u64,
    /// Whether the rate was sustained: all offered committed, p50 and p99
    /// within the targets.
    sustained: bool,
    /// Why not, if not.
    missed: Vec<String>,
    /// Per second of the run: offered, committed, latency p50 and p99 (ms)
    /// of the payments committed in that second.
    timeline: Vec<Second>,
    samples: Vec<Sample>,
    /// Disk growth per committed payment over the run, all nodes summed.
    disk_bytes_per_payment: Option<f64>,
    /// The nodes' CPU time per committed payment over the run (first
    /// sample to last, after the drain, so a few nearly idle seconds are
    /// counted too), all nodes summed, milliseconds: what a payment costs,
    /// whatever else the machine is doing (time stolen by other work is not
    /// counted). None when a node's CPU time could not be read.
    node_cpu_ms_per_payment: Option<f64>,
    /// Finality and memory at the start and the end of the window, to see
    /// drift over a long run.
    drift: Option<Drift>,
    state_roots_agree: bool,
    height: u64,
}

/// The first and the last minute of the measured window.
#[derive(Clone, Debug, serde::Serialize)]
struct Drift {
    /// The median of the per-second finality p50s, first minute.
    first_minute_p50_ms: Option<u64>,
    /// Likewise, the last minute.
    last_minute_p50_ms: Option<u64>,
    /// The nodes' memory (summed) at the first sample in the window.
    first_rss_bytes: u64,
    /// The nodes' memory (summed) at the last sample.
    last_rss_bytes: u64,
    /// The most the nodes' memory (summed) reached at any sample.
    max_rss_bytes: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
struct Second {
    offered: u64,
    committed: u64,
    p50_ms: Option<u64>,
    p99_ms: Option<u64>,
}

/// Runs `yuchain bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(
        args.rate > 0 && args.duration > 0 && args.wallets >= 2 && args.validators >= 1,
        "--rate and --duration must be positive, --wallets at least 2, --validators at least 1"
    );
    ensure!(args.connections >= 1, "--connections must be at least 1");
    if !args.clients.is_empty() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(crate::closed_loop::run(args));
    }
    let bound = verification_rate(Duration::from_secs(3));
    eprintln!(
        "signature bound: {bound:.0} signatures/s batched on all {} cores; / {} validators = {:.0} payments/s",
        cores(),
        args.validators,
        bound / args.validators as f64
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut steps = Vec::new();
    let mut rate = args.rate;
    loop {
        let step = runtime.block_on(run_step(args, rate))?;
        let sustained = step.sustained;
        print_step(&step);
        if let Some(chart) = &args.chart {
            let path = if args.sweep {
                chart_path(chart, rate)
            } else {
                chart.clone()
            };
            write_chart(&path, &step)?;
            eprintln!("chart: {}", path.display());
        }
        steps.push(step);
        if !args.sweep || !sustained {
            break;
        }
        rate = rate.saturating_add(args.sweep_step);
        if rate > args.sweep_max {
            break;
        }
    }
    let best = steps
        .iter()
        .filter(|step| step.sustained)
        .map(|step| step.rate)
        .max();
    let per_validator_bound = bound / args.validators as f64;
    if args.sweep {
        match best {
            Some(best) => eprintln!(
                "highest rate sustained: {best} payments/s = {:.2} × the signature bound / {} ({per_validator_bound:.0}/s)",
                best as f64 / per_validator_bound,
                args.validators
            ),
            None => eprintln!("no rate was sustained (the first step missed its targets)"),
        }
    }
    if args.json {
        let report = json!({
            "verification_rate_all_cores": bound,
            "cores": cores(),
            "bound_per_validator": per_validator_bound,
            "highest_sustained": best,
            "highest_sustained_ratio": best.map(|best| best as f64 / per_validator_bound),
            "steps": steps,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if !args.sweep && steps.iter().any(|step| !step.state_roots_agree) {
        bail!("the nodes' state roots differ");
    }
    Ok(())
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

fn chart_path(chart: &Path, rate: u64) -> PathBuf {
    let stem = chart
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench".into());
    chart.with_file_name(format!("{stem}-{rate}.svg"))
}

/// The all-core batched verification rate (signatures per second) of
/// payment-sized transactions, measured for about `time`.
pub fn verification_rate(time: Duration) -> f64 {
    use yuchain_proto::verify::{SignedMessage, verify_batch};
    const BATCH: usize = 1_024;
    let keys: Vec<SigningKey> = (0..BATCH as u64)
        .map(|index| LoadTestWallets::key(&[0x5a; 32], index))
        .collect();
    let signed: Vec<(pb::SignedTransaction, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| {
            let signed = payment(
                "bench",
                key,
                Address::from_public_key(&keys[(index + 1) % BATCH].public_key()),
                0,
            );
            let message = tx::signing_message(&signed.body);
            (signed, message)
        })
        .collect();
    let items: Vec<SignedMessage<'_>> = signed
        .iter()
        .zip(&keys)
        .map(|((signed, message), key)| SignedMessage {
            public_key: key.public_key(),
            signature: yuchain_proto::Signature(
                signed.signature.as_slice().try_into().unwrap_or([0; 64]),
            ),
            message,
        })
        .collect();
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < time || verified == 0 {
        let bad = verify_batch(&items);
        debug_assert!(bad.is_empty());
        verified += BATCH as u64;
    }
    verified as f64 / started.elapsed().as_secs_f64()
}

/// A payment of 1 yuan from `key` to `to` with `sequence`.
pub(crate) fn payment(
    chain_id: &str,
    key: &SigningKey,
    to: Address,
    sequence: u64,
) -> pb::SignedTransaction {
    let body = pb::TransactionBody {
        chain_id: chain_id.to_string(),
        sender: Address::from_public_key(&key.public_key()).0.to_vec(),
        public_key: key.public_key().0.to_vec(),
        sequence,
        expiry_height: u64::MAX,
        max_fee: 1_000_000,
        action: Some(Action::Transfer(pb::Transfer {
            to: to.0.to_vec(),
            amount: 100,
            memo: String::new(),
        })),
    };
    tx::sign(&body, key)
}

/// Every payment of a run, signed in advance on all cores: payment `k` is
/// from wallet `k mod wallets` (its `k / wallets`-th), to another wallet.
fn presign(
    chain_id: &str,
    seed: &[u8; 32],
    wallets: u64,
    count: u64,
) -> Result<Vec<pb::SignedTransaction>> {
    let threads = cores() as u64;
    let keys: Vec<SigningKey> = {
        let per = wallets.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    scope.spawn(move || {
                        (thread * per..((thread + 1) * per).min(wallets))
                            .map(|index| LoadTestWallets::key(seed, index))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut keys = Vec::new();
            for handle in handles {
                keys.extend(joined(handle)?);
            }
            Ok::<_, anyhow::Error>(keys)
        })?
    };
    let addresses: Vec<Address> = keys
        .iter()
        .map(|key| Address::from_public_key(&key.public_key()))
        .collect();
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let keys = &keys;
                let addresses = &addresses;
                scope.spawn(move || {
                    (thread * per..((thread + 1) * per).min(count))
                        .map(|k| {
                            let from = k % wallets;
                            // A different wallet each time, never the sender.
                            let to = (from + 1 + (k / wallets) % (wallets - 1)) % wallets;
                            payment(
                                chain_id,
                                &keys[from as usize],
                                addresses[to as usize],
                                k / wallets,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut payments = Vec::new();
        for handle in handles {
            payments.extend(joined(handle)?);
        }
        Ok(payments)
    })
}

fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("a signing thread panicked"))
}

/// A benchmark chain's cluster in `dir`: `args.validators` validators,
/// `args.wallets` wallets funded at genesis with keys derived from `seed`.
pub(crate) fn cluster_config(
    args: &BenchArgs,
    dir: &Path,
    seed: [u8; 32],
) -> Result<ClusterConfig> {
    let mut config = ClusterConfig::devnet(dir.to_path_buf(), node_binary(args)?);
    config.validators = args.validators;
    config.chain_id = "yuchain-bench".into();
    config.load_test = Some(LoadTestGenesis {
        count: args.wallets,
        seed,
        balance: 10_000_000,
    });
    Ok(config)
}

pub(crate) fn node_binary(args: &BenchArgs) -> Result<PathBuf> {
    crate::cluster::locate_node_binary(args.node_binary.as_deref())
}

async fn run_step(args: &BenchArgs, rate: u64) -> Result<StepReport> {
    let (dir, _temporary) = match &args.dir {
        Some(dir) => {
            let dir = dir.join(format!("rate-{rate}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("clearing {}", dir.display()))?;
            }
            (dir, None)
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("yuchain-bench-")
                .tempdir()
                .context("making a temporary directory")?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let seed = SigningKey::generate()?.seed();
    let config = cluster_config(args, &dir, seed)?;
    let total = rate
        .checked_mul(args.warmup.saturating_add(args.duration))
        .context("--rate × (--warmup + --duration) overflows")?;
    eprintln!(
        "step {rate}/s: a chain of {} validators with {} funded wallets in {}",
        args.validators,
        args.wallets,
        dir.display()
    );
    let signing = Instant::now();
    let chain_id = config.chain_id.clone();
    let wallets = args.wallets;
    let payments =
        tokio::task::spawn_blocking(move || presign(&chain_id, &seed, wallets, total)).await??;
    eprintln!(
        "  signed {} payments in advance in {:.1} s",
        payments.len(),
        signing.elapsed().as_secs_f64()
    );
    let mut cluster = Cluster::create(config)?;
    // Each field as `yuchain-node init` writes it (its default), and the
    // value to put there instead.
    let overrides = [
        ("interval_ms", 50, args.batch_interval_ms),
        ("block_cache_mib", 256, args.block_cache_mib),
        ("write_buffers_mib", 512, args.write_buffers_mib),
    ];
    for (field, default, value) in overrides {
        let Some(value) = value else { continue };
        for node in &cluster.nodes {
            let path = node.home.join("config.toml");
            let text = std::fs::read_to_string(&path)?;
            let changed = text.replacen(
                &format!("\n{field} = {default}\n"),
                &format!("\n{field} = {value}\n"),
                1,
            );
            ensure!(
                changed != text || value == default,
                "no {field} = {default} in {}",
                path.display()
            );
            std::fs::write(&path, changed)?;
        }
    }
    cluster.start_all_and_wait(Duration::from_secs(120)).await?;
    let mut pools: Vec<Vec<WalletGatewayClient<Channel>>> = Vec::new();
    for node in cluster.nodes.iter().filter(|node| !node.observer) {
        let mut pool = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            // One Channel per connection: each is its own HTTP/2 connection.
            let channel = Endpoint::from_shared(node.endpoint())?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", node.name))?;
            pool.push(WalletGatewayClient::new(channel).max_decoding_message_size(64 << 20));
        }
        pools.push(pool);
    }
    let records: Arc<Mutex<Vec<Option<Record>>>> = Arc::new(Mutex::new(vec![None; payments.len()]));
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let mut in_flight = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut next_progress = Duration::from_secs(1);
    let mut generator_late = 0u64;
    let mut payments = payments.into_iter().enumerate();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total {
        tick.tick().await;
        let elapsed = started.elapsed();
        let due = (u128::from(rate) * elapsed.as_micros() / 1_000_000).min(u128::from(total));
        let due = u64::try_from(due).unwrap_or(total);
        while sent < due {
            let Some((index, transaction)) = payments.next() else {
                break;
            };
            let scheduled = Duration::from_micros(sent.saturating_mul(1_000_000) / rate);
            if elapsed.saturating_sub(scheduled) > Duration::from_millis(100) {
                generator_late += 1;
            }
            sent += 1;
            let from = index as u64 % args.wallets;
            let pool = &pools[(from % pools.len() as u64) as usize];
            let mut client = pool[(index / pools.len()) % pool.len()].clone();
            let records = Arc::clone(&records);
            let outcomes = Arc::clone(&outcomes);
            in_flight.spawn(async move {
                let submitted = started.elapsed();
                let (_, outcome) = submit(&mut client, transaction).await;
                let latency = match &outcome {
                    Outcome::Committed {
                        code: pb::ResultCode::Ok,
                        latency,
                        ..
                    } => Some(*latency),
                    _ => None,
                };
                outcomes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .count(&outcome);
                records.lock().unwrap_or_else(PoisonError::into_inner)[index] =
                    Some(Record { submitted, latency });
            });
        }
        while in_flight.try_join_next().is_some() {}
        if elapsed >= next_sample {
            next_sample += Duration::from_secs(args.sample_every.max(1));
            let committed = outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .committed;
            samples.push(sample(&cluster, elapsed, committed));
        }
        if elapsed >= next_progress {
            next_progress += Duration::from_secs(5);
            let snapshot = outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            eprintln!(
                "  {:>4} s: offered {sent}, committed {}, in flight {}, refused {}, timeouts {}",
                elapsed.as_secs(),
                snapshot.committed,
                in_flight.len(),
                snapshot.refused.values().sum::<u64>(),
                snapshot.timeouts
            );
        }
    }
    let load_time = started.elapsed();
    // Wait for the last submissions (each gives up by itself after its
    // commit wait).
    let drain = tokio::time::timeout(Duration::from_secs(45), async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        eprintln!("  {} submissions still open after 45 s", in_flight.len());
        in_flight.abort_all();
    }
    let committed = outcomes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .committed;
    samples.push(sample(&cluster, started.elapsed(), committed));
    let (state_roots_agree, height) = agreement(&cluster).await;
    cluster.stop_all(Duration::from_secs(20))?;
    let records: Vec<Option<Record>> =
        std::mem::take(&mut *records.lock().unwrap_or_else(PoisonError::into_inner));
    let outcomes = outcomes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(report(
        args,
        rate,
        total,
        &records,
        outcomes,
        generator_late,
        load_time,
        samples,
        state_roots_agree,
        height,
    ))
}

/// Totals by outcome.
#[derive(Clone, Debug, Default)]
struct Outcomes {
    committed: u64,
    timeouts: u64,
    refused: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
}

impl Outcomes {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Committed {
                code: pb::ResultCode::Ok,
                ..
            } => self.committed += 1,
            Outcome::Committed { code, .. } => {
                *self.failed.entry(format!("{code:?}")).or_default() += 1;
            }
            Outcome::Refused(reason) => *self.refused.entry(reason.clone()).or_default() += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }
}

/// The nodes' memory and disk now.
fn sample(cluster: &Cluster, at: Duration, committed: u64) -> Sample {
    let mut rss_bytes = Vec::new();
    let mut disk_bytes = Vec::new();
    let mut cpu_s = Vec::new();
    for (index, node) in cluster.nodes.iter().enumerate() {
        rss_bytes.push(cluster.pid(index).and_then(rss_of).unwrap_or(0));
        disk_bytes.push(dir_size(&node.home));
        cpu_s.push(cluster.pid(index).and_then(cpu_of).unwrap_or(0.0));
    }
    Sample {
        at_s: at.as_secs_f64(),
        rss_bytes,
        disk_bytes,
        cpu_s,
        committed,
    }
}

/// A process's CPU time, user and system (Linux `/proc/PID/stat`, fields
/// 14 and 15, in clock ticks: `sysconf(_SC_CLK_TCK)`, 100 per second on
/// Linux), seconds.
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, may hold spaces): field 3 on.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100);
    Some(user.checked_add(system)? as f64 / ticks_per_s as f64)
}

/// A process's resident memory (Linux `/proc`), bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total = total.saturating_add(meta.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// Whether every node holds the same state root at the lowest height they
/// all reached, and that height.
pub(crate) async fn agreement(cluster: &Cluster) -> (bool, u64) {
    let mut heights = Vec::new();
    for index in 0..cluster.nodes.len() {
        match cluster.chain_info(index).await {
            Ok(info) => heights.push(info.height),
            Err(_) => return (false, 0),
        }
    }
    let height = heights.iter().copied().min().unwrap_or(0);
    let mut roots = Vec::new();
    for index in 0..cluster.nodes.len() {
        match cluster.state_root_at(index, height).await {
            Ok(root) => roots.push(root),
            Err(_) => return (false, height),
        }
    }
    (roots.windows(2).all(|pair| pair[0] == pair[1]), height)
}

/// The `permille` quantile of sorted values.
pub(crate) fn quantile(sorted: &[u64], permille: usize) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last * permille / 1000).min(last)).copied()
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &BenchArgs,
    rate: u64,
    offered: u64,
    records: &[Option<Record>],
    outcomes: Outcomes,
    generator_late: u64,
    load_time: Duration,
    samples: Vec<Sample>,
    state_roots_agree: bool,
    height: u64,
) -> StepReport {
    let warmup = Duration::from_secs(args.warmup);
    let window_end = warmup + Duration::from_secs(args.duration);
    let mut latencies: Vec<u64> = Vec::new();
    let mut committed_in_window = 0u64;
    let seconds = usize::try_from(load_time.as_secs().saturating_add(46)).unwrap_or(usize::MAX);
    let mut timeline: Vec<Second> = vec![Second::default(); seconds.min(100_000)];
    let mut per_second_latencies: Vec<Vec<u64>> = vec![Vec::new(); timeline.len()];
    for record in records.iter().flatten() {
        let second = usize::try_from(record.submitted.as_secs()).unwrap_or(usize::MAX);
        if let Some(slot) = timeline.get_mut(second) {
            slot.offered += 1;
        }
        let Some(latency) = record.latency else {
            continue;
        };
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let committed_at = record.submitted + latency;
        if let Some(slot) = per_second_latencies
            .get_mut(usize::try_from(committed_at.as_secs()).unwrap_or(usize::MAX))
        {
            slot.push(ms);
        }
        if record.submitted >= warmup && record.submitted < window_end {
            latencies.push(ms);
        }
        if committed_at >= warmup && committed_at < window_end {
            committed_in_window += 1;
        }
    }
    for (slot, mut values) in timeline.iter_mut().zip(per_second_latencies) {
        values.sort_unstable();
        slot.committed = values.len() as u64;
        slot.p50_ms = quantile(&values, 500);
        slot.p99_ms = quantile(&values, 990);
    }
    while timeline
        .last()
        .is_some_and(|slot| slot.offered == 0 && slot.committed == 0)
    {
        timeline.pop();
    }
    latencies.sort_unstable();
    let p50_ms = quantile(&latencies, 500);
    let p99_ms = quantile(&latencies, 990);
    let mut missed = Vec::new();
    if outcomes.committed < offered {
        missed.push(format!(
            "{} of {offered} payments did not commit",
            offered - outcomes.committed
        ));
    }
    match p50_ms {
        Some(p50) if p50 <= args.p50_max_ms => {}
        other => missed.push(format!("p50 {other:?} ms above {} ms", args.p50_max_ms)),
    }
    match p99_ms {
        Some(p99) if p99 <= args.p99_max_ms => {}
        other => missed.push(format!("p99 {other:?} ms above {} ms", args.p99_max_ms)),
    }
    if generator_late > offered / 100 {
        missed.push(format!(
            "the generator fell behind its schedule for {generator_late} payments"
        ));
    }
    if !state_roots_agree {
        missed.push("the nodes' state roots differ".into());
    }
    let disk_bytes_per_payment = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if last.committed > first.committed => {
            let grown = last
                .disk_bytes
                .iter()
                .sum::<u64>()
                .saturating_sub(first.disk_bytes.iter().sum::<u64>());
            Some(grown as f64 / (last.committed - first.committed) as f64)
        }
        _ => None,
    };
    // Only where every node's CPU time was read at both ends (a running
    // process has used some; 0 means it could not be read).
    let node_cpu_ms_per_payment = match (samples.first(), samples.last()) {
        (Some(first), Some(last))
            if last.committed > first.committed
                && first.cpu_s.iter().chain(&last.cpu_s).all(|cpu| *cpu > 0.0) =>
        {
            let used = last.cpu_s.iter().sum::<f64>() - first.cpu_s.iter().sum::<f64>();
            Some(used * 1_000.0 / (last.committed - first.committed) as f64)
        }
        _ => None,
    };
    let drift = drift(&timeline, &samples, args.warmup, args.duration);
    StepReport {
        drift,
        rate,
        wallets: args.wallets,
        validators: args.validators,
        duration_s: args.duration,
        warmup_s: args.warmup,
        offered,
        committed: outcomes.committed,
        committed_per_s: committed_in_window as f64 / args.duration as f64,
        p50_ms,
        p90_ms: quantile(&latencies, 900),
        p99_ms,
        max_ms: latencies.last().copied(),
        timeouts: outcomes.timeouts,
        refused: outcomes.refused,
        failed: outcomes.failed,
        generator_late,
        sustained: missed.is_empty(),
        missed,
        timeline,
        samples,
        disk_bytes_per_payment,
        node_cpu_ms_per_payment,
        state_roots_agree,
        height,
    }
}

/// Drift over the window: per-second finality medians of its first and
/// last minute, and the nodes' memory.
fn drift(timeline: &[Second], samples: &[Sample], warmup: u64, duration: u64) -> Option<Drift> {
    let start = usize::try_from(warmup).ok()?;
    let end = usize::try_from(warmup.checked_add(duration)?)
        .ok()?
        .min(timeline.len());
    let minute = 60.min(end.checked_sub(start)?);
    let median = |slots: &[Second]| {
        let mut values: Vec<u64> = slots.iter().filter_map(|slot| slot.p50_ms).collect();
        values.sort_unstable();
        quantile(&values, 500)
    };
    let in_window: Vec<u64> = samples
        .iter()
        .filter(|sample| sample.at_s >= warmup as f64)
        .map(|sample| sample.rss_bytes.iter().sum())
        .collect();
    Some(Drift {
        first_minute_p50_ms: median(timeline.get(start..start + minute)?),
        last_minute_p50_ms: median(timeline.get(end - minute..end)?),
        first_rss_bytes: in_window.first().copied().unwrap_or(0),
        last_rss_bytes: in_window.last().copied().unwrap_or(0),
        max_rss_bytes: in_window.iter().copied().max().unwrap_or(0),
    })
}

fn print_step(step: &StepReport) {
    let ms = |value: Option<u64>| value.map_or("-".to_string(), |value| format!("{value} ms"));
    eprintln!(
        "rate {}/s for {} s ({} validators, {} wallets): committed {} of {} ({:.0}/s in the window); \
         finality p50 {} p90 {} p99 {} max {}; timeouts {}; refused {:?}; failed {:?}; \
         state roots {} at height {}; {}",
        step.rate,
        step.duration_s,
        step.validators,
        step.wallets,
        step.committed,
        step.offered,
        step.committed_per_s,
        ms(step.p50_ms),
        ms(step.p90_ms),
        ms(step.p99_ms),
        ms(step.max_ms),
        step.timeouts,
        step.refused,
        step.failed,
        if step.state_roots_agree {
            "identical"
        } else {
            "DIFFER"
        },
        step.height,
        if step.sustained {
            "sustained".to_string()
        } else {
            format!("not sustained: {}", step.missed.join("; "))
        }
    );
    if let (Some(first), Some(last)) = (step.samples.first(), step.samples.last()) {
        let mib = |bytes: &[u64]| {
            bytes
                .iter()
                .map(|bytes| format!("{}", bytes >> 20))
                .collect::<Vec<_>>()
                .join("/")
        };
        eprintln!(
            "  nodes' memory {} MiB at the start, {} MiB at the end; disk {} MiB → {} MiB ({} bytes per payment, all nodes); CPU {} ms per payment (all nodes)",
            mib(&first.rss_bytes),
            mib(&last.rss_bytes),
            mib(&first.disk_bytes),
            mib(&last.disk_bytes),
            step.disk_bytes_per_payment
                .map_or("-".into(), |bytes| format!("{bytes:.0}")),
            step.node_cpu_ms_per_payment
                .map_or("-".into(), |ms| format!("{ms:.3}"))
        );
    }
    if let Some(drift) = &step.drift {
        eprintln!(
            "  drift: finality p50 {:?} ms in the first minute, {:?} ms in the last; nodes' memory {} → {} MiB (max {} MiB)",
            drift.first_minute_p50_ms,
            drift.last_minute_p50_ms,
            drift.first_rss_bytes >> 20,
            drift.last_rss_bytes >> 20,
            drift.max_rss_bytes >> 20
        );
    }
}

/// An SVG of committed and offered payments per second, and finality p50
/// and p99 per second, over the run.
fn write_chart(path: &Path, step: &StepReport) -> Result<()> {
    use plotters::prelude::*;
    let seconds = step.timeline.len().max(1) as u32;
    let rate_max = step
        .timeline
        .iter()
        .map(|second| second.offered.max(second.committed))
        .max()
        .unwrap_or(1)
        .max(1);
    let latency_max = step
        .timeline
        .iter()
        .filter_map(|second| second.p99_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(350);
        let mut rates = ChartBuilder::on(&upper)
            .caption(
                format!(
                    "yuchain bench: {} payments/s offered, {} validators",
                    step.rate, step.validators
                ),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u32..seconds, 0u64..rate_max + rate_max / 10)?;
        rates
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("payments/s")
            .draw()?;
        rates
            .draw_series(LineSeries::new(
                step.timeline
                    .iter()
                    .enumerate()
                    .map(|(second, slot)| (second as u32, slot.offered)),
                &BLUE,
            ))?
            .label("offered")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        rates
            .draw_series(LineSeries::new(
                step.timeline
                    .iter()
                    .enumerate()
                    .map(|(second, slot)| (second as u32, slot.committed)),
                &GREEN,
            ))?
            .label("committed")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        rates
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        let mut latency = ChartBuilder::on(&lower)
            .caption("finality (submit → committed receipt)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0u32..seconds, 0u64..latency_max + latency_max / 10)?;
        latency
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("ms")
            .draw()?;
        for (label, color, pick) in [
            (
                "p50",
                BLUE,
                (|slot: &Second| slot.p50_ms) as fn(&Second) -> Option<u64>,
            ),
            ("p99", RED, |slot: &Second| slot.p99_ms),
        ] {
            latency
                .draw_series(LineSeries::new(
                    step.timeline
                        .iter()
                        .enumerate()
                        .filter_map(|(second, slot)| pick(slot).map(|ms| (second as u32, ms))),
                    &color,
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        latency
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|error| anyhow::anyhow!("drawing {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_payments_take_each_wallets_sequences_in_order_and_never_pay_themselves() {
        let seed = [3u8; 32];
        let payments = presign("test", &seed, 5, 23).expect("signed");
        assert_eq!(payments.len(), 23);
        let mut next = BTreeMap::new();
        for (k, signed) in payments.iter().enumerate() {
            let decoded = tx::decode(signed, "test").expect("a valid payment");
            let expected = LoadTestWallets::key(&seed, k as u64 % 5).public_key();
            assert_eq!(decoded.public_key, expected);
            let sequence = next.entry(decoded.sender).or_insert(0u64);
            assert_eq!(decoded.sequence, *sequence, "payment {k}");
            *sequence += 1;
            let tx::Action::Transfer { to, .. } = &decoded.action else {
                panic!("not a transfer");
            };
            assert_ne!(*to, decoded.sender);
        }
        // Signed so that any node accepts them.
        assert!(tx::decode_and_verify(&payments[7], "test").is_ok());
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 500), Some(50));
        assert_eq!(quantile(&values, 990), Some(99));
        assert_eq!(quantile(&values, 1000), Some(100));
        assert_eq!(quantile(&[], 500), None);
    }

    #[test]
    fn a_process_cpu_time_is_read_and_grows_with_work() {
        let me = std::process::id();
        let before = cpu_of(me).expect("this process's CPU time");
        // Work on this thread until the count moves (a tick is 10 ms; the
        // machine may be shared with other tests), for at most 5 s.
        let started = std::time::Instant::now();
        let mut hash = blake3::Hasher::new();
        let mut after = before;
        while after <= before && started.elapsed() < Duration::from_secs(5) {
            for _ in 0..256 {
                hash.update(&[0u8; 4096]);
            }
            after = cpu_of(me).expect("this process's CPU time");
        }
        std::hint::black_box(hash.finalize());
        // It grew, and by no more than wall time over many cores allows.
        assert!(after > before, "{before} -> {after}");
        assert!(after - before < 64.0 * started.elapsed().as_secs_f64() + 1.0);
        assert_eq!(cpu_of(u32::MAX), None, "no such process");
    }

    #[test]
    fn a_chart_is_written_as_svg() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("chart.svg");
        let step = StepReport {
            rate: 100,
            wallets: 2,
            validators: 4,
            duration_s: 2,
            warmup_s: 0,
            offered: 200,
            committed: 200,
            committed_per_s: 100.0,
            p50_ms: Some(40),
            p90_ms: Some(50),
            p99_ms: Some(60),
            max_ms: Some(70),
            timeouts: 0,
            refused: BTreeMap::new(),
            failed: BTreeMap::new(),
            generator_late: 0,
            sustained: true,
            missed: vec![],
            timeline: vec![
                Second {
                    offered: 100,
                    committed: 90,
                    p50_ms: Some(40),
                    p99_ms: Some(60),
                },
                Second {
                    offered: 100,
                    committed: 110,
                    p50_ms: Some(42),
                    p99_ms: Some(58),
                },
            ],
            samples: vec![],
            disk_bytes_per_payment: None,
            node_cpu_ms_per_payment: None,
            drift: None,
            state_roots_agree: true,
            height: 10,
        };
        write_chart(&path, &step).expect("chart");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        assert!(svg.contains("committed") && svg.contains("p99"));
    }
}
