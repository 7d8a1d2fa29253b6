//! (c) Transfers applied per second with the synced RocksDB commit: blocks of
//! 10,000 transfers over 1,000,000 funded accounts, each executed, its state
//! root computed, turned into one `BlockCommit` and written in one synced
//! `WriteBatch`, one block after the other; and (c′) the same with each
//! block's write overlapping the next block's execution (`Committer`). The
//! `reference` group measures the single-core batched signature rate in the
//! same run, for the ratio.
//!
//! `cargo bench -p yuchain-node --bench commit`; `APPLY_ACCOUNTS` sets a
//! smaller state while iterating.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

use yuchain_ledger::testkit::TransferLoad;
use yuchain_node::persist::{Committer, block_commit};
use yuchain_proto::pb;
use yuchain_proto::tx::{Action, VerifiedTx};
use yuchain_storage::{BlockStore, RocksStore};

#[path = "../../ledger/benches/common/mod.rs"]
mod common;
use common::{BLOCK_TRANSFERS, accounts, reference};

/// The next block of the load: its header, its decoded transfers, and the
/// block as stored, each transaction with its real body bytes and a zero
/// signature (the store writes what a real block writes, though nothing
/// here was signed).
fn next_block(
    load: &mut TransferLoad,
    chain_id: &str,
) -> (pb::BlockHeader, Vec<VerifiedTx>, pb::Block) {
    let (header, txs) = load.block(BLOCK_TRANSFERS);
    let transactions = txs
        .iter()
        .map(|tx| {
            let Action::Transfer { to, amount, .. } = &tx.action else {
                unreachable!("the load makes transfers only")
            };
            let body = pb::TransactionBody {
                chain_id: chain_id.to_owned(),
                sender: tx.sender.0.to_vec(),
                public_key: tx.public_key.0.to_vec(),
                sequence: tx.sequence,
                expiry_height: tx.expiry_height,
                max_fee: 0,
                action: Some(pb::transaction_body::Action::Transfer(pb::Transfer {
                    to: to.0.to_vec(),
                    amount: *amount,
                    memo: String::new(),
                })),
            };
            pb::SignedTransaction {
                body: prost::Message::encode_to_vec(&body),
                signature: vec![0; 64],
            }
        })
        .collect();
    let block = pb::Block {
        header: Some(header.clone()),
        transactions,
    };
    (header, txs, block)
}

fn commit(c: &mut Criterion) {
    let count = accounts();
    let mut load = TransferLoad::new(count, 1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RocksStore::create(dir.path().join("db")).expect("create"));
    store
        .commit(&block_commit(None, &load.genesis_applied))
        .expect("genesis commit");
    let chain_id = load.genesis.chain_id.clone();

    let mut group = c.benchmark_group(format!("commit_{count}_accounts"));
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("c_execute_root_and_synced_rocksdb_commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (header, txs, block) = next_block(&mut load, &chain_id);
                let start = Instant::now();
                let applied = load.ledger.apply_checked(&header, &txs).expect("applies");
                store
                    .commit(&block_commit(Some(&block), &applied))
                    .expect("commit");
                total += start.elapsed();
            }
            total
        })
    });
    // (c′) The same work with each block's synced write overlapping the
    // next block's execution (`Committer`, a writer thread). The timed
    // region here also holds building each block (not node work) and waits
    // at the end until every block is durable, so it errs on the slow side.
    group.bench_function("c_pipelined_commit_overlapping_execution", |b| {
        b.iter_custom(|iters| {
            let mut committer = Committer::start(store.clone()).expect("writer");
            let start = Instant::now();
            for _ in 0..iters {
                let (header, txs, block) = next_block(&mut load, &chain_id);
                let applied = load.ledger.apply_checked(&header, &txs).expect("applies");
                committer
                    .submit(block_commit(Some(&block), &applied))
                    .expect("submit");
            }
            committer.finish().expect("every block written");
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, reference, commit);
criterion_main!(benches);
