//! `yuchain bench --clients 1,16,128`: the gateway as wallets see it. Each
//! of N clients has its own wallet (funded at genesis) and its own
//! connection, and pays one payment at a time: sign, submit with
//! `wait_for_commit`, wait for the receipt, sign the next. Reported per N:
//! submit-and-wait latency p50/p99/max and payments committed per second.
//! One chain serves the whole list, each N after the previous one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::json;
use tonic::transport::Endpoint;
use yuchain_gateway::WalletGatewayClient;
use yuchain_ledger::LoadTestWallets;
use yuchain_proto::{Address, SigningKey, pb};

use crate::bench::{BenchArgs, cluster_config, cores, payment, quantile};
use crate::cluster::Cluster;
use crate::load::{Outcome, submit};

/// What N clients measured.
#[derive(Debug, Default)]
struct Round {
    clients: usize,
    latencies_ms: Vec<u64>,
    failures: BTreeMap<String, u64>,
    seconds: f64,
}

/// Runs the closed-loop rounds of `args.clients`.
pub async fn run(args: &BenchArgs) -> Result<()> {
    let most = args.clients.iter().copied().max().unwrap_or(0);
    ensure!(most >= 1, "--clients needs at least one positive count");
    ensure!(
        args.wallets >= 2 * most as u64,
        "--wallets must be at least twice the most clients ({})",
        2 * most
    );
    let temporary = tempfile::Builder::new()
        .prefix("yuchain-bench-clients-")
        .tempdir()
        .context("making a temporary directory")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let seed = SigningKey::generate()?.seed();
    let config = cluster_config(args, &dir, seed)?;
    let chain_id = config.chain_id.clone();
    let mut cluster = Cluster::create(config)?;
    cluster.start_all_and_wait(Duration::from_secs(120)).await?;
    let endpoints: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|node| !node.observer)
        .map(|node| node.endpoint())
        .collect();
    // Wallet i pays wallet i + most; sequences carry over between rounds.
    let keys: Arc<Vec<SigningKey>> = Arc::new(
        (0..2 * most as u64)
            .map(|index| LoadTestWallets::key(&seed, index))
            .collect(),
    );
    let mut sequences = vec![0u64; most];
    let mut rounds = Vec::new();
    for &clients in &args.clients {
        eprintln!(
            "{clients} client(s), each paying and waiting for the commit, for {} s (+{} s warm-up)",
            args.duration, args.warmup
        );
        let started = Instant::now();
        let warm = started + Duration::from_secs(args.warmup);
        let end = warm + Duration::from_secs(args.duration);
        let mut tasks = tokio::task::JoinSet::new();
        for (index, sequence) in sequences.iter().copied().enumerate().take(clients) {
            let endpoint = endpoints[index % endpoints.len()].clone();
            let keys = Arc::clone(&keys);
            let chain_id = chain_id.clone();
            tasks.spawn(async move {
                let channel = Endpoint::from_shared(endpoint)?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                let mut client = WalletGatewayClient::new(channel);
                let key = &keys[index];
                let to = Address::from_public_key(&keys[index + most].public_key());
                let mut sequence = sequence;
                let mut latencies = Vec::new();
                let mut failures: BTreeMap<String, u64> = BTreeMap::new();
                while Instant::now() < end {
                    let sent = Instant::now();
                    let (_, outcome) =
                        submit(&mut client, payment(&chain_id, key, to, sequence)).await;
                    let counted = sent >= warm;
                    match outcome {
                        Outcome::Committed {
                            code: pb::ResultCode::Ok,
                            latency,
                            ..
                        } => {
                            sequence += 1;
                            if counted {
                                latencies
                                    .push(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
                            }
                        }
                        Outcome::Committed { code, .. } => {
                            sequence += 1;
                            *failures.entry(format!("{code:?}")).or_default() += 1;
                        }
                        Outcome::Refused(reason) => {
                            *failures.entry(reason).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Outcome::Timeout => *failures.entry("TIMEOUT".into()).or_default() += 1,
                    }
                }
                anyhow::Ok((index, sequence, latencies, failures))
            });
        }
        let mut round = Round {
            clients,
            ..Round::default()
        };
        while let Some(joined) = tasks.join_next().await {
            let (index, sequence, latencies, failures) = joined??;
            sequences[index] = sequence;
            round.latencies_ms.extend(latencies);
            for (reason, count) in failures {
                *round.failures.entry(reason).or_default() += count;
            }
        }
        round.seconds = args.duration as f64;
        round.latencies_ms.sort_unstable();
        print_round(&round);
        rounds.push(round);
    }
    let agreement = crate::bench::agreement(&cluster).await;
    cluster.stop_all(Duration::from_secs(20))?;
    if args.json {
        let rounds: Vec<serde_json::Value> = rounds
            .iter()
            .map(|round| {
                json!({
                    "clients": round.clients,
                    "committed": round.latencies_ms.len(),
                    "per_second": round.latencies_ms.len() as f64 / round.seconds,
                    "p50_ms": quantile(&round.latencies_ms, 500),
                    "p99_ms": quantile(&round.latencies_ms, 990),
                    "max_ms": round.latencies_ms.last(),
                    "failures": round.failures,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "validators": args.validators,
                "cores": cores(),
                "rounds": rounds,
                "state_roots_agree": agreement.0,
            }))?
        );
    }
    ensure!(agreement.0, "the nodes' state roots differ");
    Ok(())
}

fn print_round(round: &Round) {
    let ms = |permille| {
        quantile(&round.latencies_ms, permille).map_or("-".to_string(), |ms| format!("{ms} ms"))
    };
    eprintln!(
        "  {:>4} clients: {:>7} committed, {:>8.1}/s, submit-and-wait p50 {}, p99 {}, max {}{}",
        round.clients,
        round.latencies_ms.len(),
        round.latencies_ms.len() as f64 / round.seconds,
        ms(500),
        ms(990),
        ms(1000),
        if round.failures.is_empty() {
            String::new()
        } else {
            format!(", failures {:?}", round.failures)
        }
    );
}
