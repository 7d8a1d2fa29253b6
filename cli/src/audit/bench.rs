//! `yuchain audit bench`: the replay rate of a generated chain against the
//! all-core batched signature verification rate measured in the same run.
//!
//! The chain: wallets funded at genesis (load-test wallets, keys derived
//! from a public seed), each paying the next 1 yuan, signed in advance on
//! all cores; blocks of `--block-transactions` payments in batches of
//! 5,000, certified by the fixture validators ([`super::fixture`]), written
//! to a RocksDB store in a temporary directory as a node writes them. Then
//! the verification rate is measured (`verify_batch` of 1,024 payment
//! signatures on all cores, as `yuchain bench` does), the store is replayed
//! in full (every check on), and the verification rate is measured again.
//! The ratio is replay payments/s over the mean of the two verification
//! rates: 1.0 would mean replay costs no more than verifying the
//! signatures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;
use rayon::prelude::*;
use serde_json::json;
use yuchain_ledger::LoadTestWallets;
use yuchain_proto::{Address, SigningKey, pb};
use yuchain_storage::{BlockStore as _, RocksStore};

use super::fixture::FixtureBuilder;
use super::replay::{NoSink, ReplayOptions, replay};
use super::source::StoreSource;

/// `yuchain audit bench` options.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Payments in the chain.
    #[arg(long, default_value_t = 1_000_000)]
    pub payments: u64,
    /// Wallets funded at genesis (each pays the next).
    #[arg(long, default_value_t = 100_000)]
    pub wallets: u64,
    /// Payments per block (at most 20,000).
    #[arg(long, default_value_t = 10_000)]
    pub block_transactions: u64,
    /// Seconds of each verification-rate measurement.
    #[arg(long, default_value_t = 5)]
    pub verify_seconds: u64,
    /// Build the chain here (default: a temporary directory, removed).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

const BATCH_TRANSACTIONS: usize = 5_000;
const SEED: [u8; 32] = [0x41; 32];

/// This process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the parenthesised command name; utime and stime
    // are the 12th and 13th of them, in clock ticks (100 per second).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<i32> {
    let load_before = load_average();
    let temporary = tempfile::tempdir().context("a temporary directory")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let database = dir.join("db");
    let wallets = args.wallets.max(2);
    let ledger_genesis = yuchain_ledger::Genesis {
        chain_id: "yuchain-audit-bench".into(),
        genesis_time_ms: yuchain_ledger::testkit::TEST_GENESIS_TIME_MS,
        issuer_public_key: hex::encode(SigningKey::for_test("issuer").public_key().0),
        operators: vec![yuchain_ledger::GenesisOperator {
            name: "Bank 0".into(),
            public_key: hex::encode(SigningKey::for_test("operator-0").public_key().0),
        }],
        params: yuchain_ledger::ChainParams::default(),
        load_test: Some(LoadTestWallets {
            count: wallets,
            balance: 10_000_000,
            seed: hex::encode(SEED),
        }),
    };
    let chain_id = ledger_genesis.chain_id.clone();
    let built = Instant::now();
    let keys: Vec<SigningKey> = (0..wallets)
        .into_par_iter()
        .map(|index| LoadTestWallets::key(&SEED, index))
        .collect();
    let addresses: Vec<Address> = keys
        .iter()
        .map(|key| Address::from_public_key(&key.public_key()))
        .collect();
    let store = RocksStore::create(&database)
        .with_context(|| format!("creating {}", database.display()))?;
    let mut builder = FixtureBuilder::new(ledger_genesis);
    let genesis = builder.genesis.clone();
    let mut made = 0u64;
    while made < args.payments {
        let count = args
            .block_transactions
            .clamp(1, yuchain_ledger::TRANSACTIONS_PER_BLOCK_MAX as u64)
            .min(args.payments - made);
        let transactions: Vec<pb::SignedTransaction> = (made..made + count)
            .into_par_iter()
            .map(|payment| {
                let wallet = (payment % wallets) as usize;
                let sequence = payment / wallets;
                crate::bench::payment(
                    &chain_id,
                    &keys[wallet],
                    addresses[(wallet + 1) % addresses.len()],
                    sequence,
                )
            })
            .collect();
        let batches = transactions
            .chunks(BATCH_TRANSACTIONS)
            .map(<[pb::SignedTransaction]>::to_vec)
            .collect();
        builder.block(batches, false);
        for commit in builder.take_ready() {
            store.commit(&commit).context("writing the chain")?;
        }
        made += count;
    }
    let (_, rest) = builder.finish();
    for commit in rest {
        store.commit(&commit).context("writing the chain")?;
    }
    let head = store.head()?.map_or(0, |head| head.height);
    let build_s = built.elapsed().as_secs_f64();
    let source = StoreSource::new(
        format!("the benchmark chain in {}", database.display()),
        Arc::new(store),
    );
    let verify_time = Duration::from_secs(args.verify_seconds.max(1));
    let verify_before = crate::bench::verification_rate(verify_time);
    let load_during = load_average();
    let options = ReplayOptions {
        progress: !args.json,
        ..ReplayOptions::default()
    };
    let cpu_before = cpu_seconds();
    let (summary, _) = replay(Box::new(source), &genesis, &options, &mut NoSink)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let replay_cpu_s = cpu_seconds() - cpu_before;
    let verify_after = crate::bench::verification_rate(verify_time);
    let load_after = load_average();
    let verify_mean = (verify_before + verify_after) / 2.0;
    let ratio = summary.payments_per_s / verify_mean.max(1.0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if args.json {
        println!(
            "{}",
            json!({
                "payments": summary.executed.payments,
                "blocks": head,
                "wallets": wallets,
                "block_transactions": args.block_transactions,
                "cores": cores,
                "build_s": build_s,
                "replay_s": summary.elapsed_s,
                "replay_cpu_s": replay_cpu_s,
                "replay_payments_per_s": summary.payments_per_s,
                "verify_per_s_before": verify_before,
                "verify_per_s_after": verify_after,
                "ratio": ratio,
                "load_average": [load_before, load_during, load_after],
            })
        );
    } else {
        println!(
            "chain       {} payments in {head} blocks, {wallets} wallets (built in {build_s:.1} s)",
            summary.executed.payments
        );
        println!(
            "replay      {:.1} s: {:.0} payments/s, every check on ({replay_cpu_s:.1} CPU-s: {:.2} of {cores} cores busy)",
            summary.elapsed_s,
            summary.payments_per_s,
            replay_cpu_s / summary.elapsed_s.max(1e-9) / cores as f64
        );
        println!(
            "verify      {verify_before:.0}/s before, {verify_after:.0}/s after (verify_batch of 1,024 on all {cores} cores)"
        );
        println!("ratio       {ratio:.2} (replay / mean verification rate)");
        println!(
            "load        {load_before} | {load_during} | {load_after} (before, at replay, after)"
        );
    }
    drop(temporary);
    Ok(0)
}
