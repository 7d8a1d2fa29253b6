//! Transfers applied per second, in blocks of 10,000 over 1,000,000 funded
//! accounts: (a) executed in memory without the state tree, (b) with the new
//! state root computed. Signatures are verified before this point in the
//! pipeline, so blocks here carry already-decoded transactions; the
//! `reference` group measures the single-core batched signature rate in the
//! same run, for the ratios. (c), with the synced RocksDB commit, is
//! `cargo bench -p yuchain-node --bench commit`.
//!
//! `cargo bench -p yuchain-ledger --bench apply --features bench-load`; set
//! `APPLY_ACCOUNTS` for a smaller state while iterating.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use yuchain_ledger::StateKey;
use yuchain_ledger::testkit::TransferLoad;

mod common;
use common::{BLOCK_TRANSFERS, accounts, reference};

const BALANCE_FEN: u64 = 1_000_000;

fn apply(c: &mut Criterion) {
    let count = accounts();
    let mut group = c.benchmark_group(format!("apply_{count}_accounts"));
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    let mut execute = TransferLoad::new(count, BALANCE_FEN);
    group.bench_function("a_execute_in_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (header, txs) = execute.block(BLOCK_TRANSFERS);
                let start = Instant::now();
                let receipts = execute.ledger.execute_without_commitment(&header, &txs);
                total += start.elapsed();
                assert_eq!(receipts.len(), BLOCK_TRANSFERS);
                assert_eq!(receipts[0].code, yuchain_proto::pb::ResultCode::Ok as i32);
            }
            total
        })
    });
    drop(execute);

    let mut commit = TransferLoad::new(count, BALANCE_FEN);
    group.bench_function("b_execute_and_state_root", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (header, txs) = commit.block(BLOCK_TRANSFERS);
                let start = Instant::now();
                let applied = commit.ledger.apply_checked(&header, &txs).expect("applies");
                total += start.elapsed();
                assert_eq!(applied.receipts.len(), BLOCK_TRANSFERS);
            }
            total
        })
    });
    group.finish();

    // Proof size and what one block changes, printed for BENCHMARKS.md.
    let proof = commit.ledger.prove(&StateKey::Account(commit.address(0)));
    let (header, txs) = commit.block(BLOCK_TRANSFERS);
    let applied = commit.ledger.apply_checked(&header, &txs).expect("applies");
    println!(
        "proof: {} bytes encoded ({} bucket entries); block: {} state entries changed, {} tree node writes",
        prost::Message::encoded_len(&proof),
        proof.bucket.len(),
        applied.state_changes.len(),
        applied.tree_diff.nodes.len(),
    );
}

criterion_group!(benches, reference, apply);
criterion_main!(benches);
