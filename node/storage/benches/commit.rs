//! Commit throughput of [`RocksStore`]: one synced `WriteBatch` per block,
//! over a database pre-filled with a few blocks.
//!
//! `realistic_10k_txs` is a full block: 10,000 transactions and receipts,
//! 20,000 state entries of ~120 bytes, 40,000 Merkle nodes of ~300 bytes and
//! 20,000 history entries (about 24 MB of keys and values). `small_100_txs`
//! is the same at 1/100 scale, where the fsync dominates.
//!
//! Run: `cargo bench -p yuchain-storage --bench commit`. Criterion reports
//! the time per commit (commits/s is its inverse) and the payload bytes/s.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::cell::Cell;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use yuchain_proto::{Address, Domain};
use yuchain_storage::{BlockCommit, BlockStore, RocksStore};

/// Shape of a block, per transaction: two state entries (sender and
/// receiver), four Merkle nodes, two history entries.
struct Shape {
    txs: u32,
    tx_bytes: usize,
    receipt_bytes: usize,
    state_value_bytes: usize,
    tree_node_bytes: usize,
}

const REALISTIC: Shape = Shape {
    txs: 10_000,
    tx_bytes: 250,
    receipt_bytes: 90,
    state_value_bytes: 120,
    tree_node_bytes: 300,
};

const SMALL: Shape = Shape {
    txs: 100,
    ..REALISTIC
};

/// Accounts that blocks draw senders and receivers from, so later blocks
/// overwrite state written by earlier ones as a live ledger does.
const ACCOUNTS: u64 = 200_000;
/// Blocks committed before measuring.
const PREFILL_BLOCKS: u64 = 8;

/// SplitMix64: a fixed-seed generator, so every run writes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` bytes, the first `random` of them random and the rest a
    /// repeated pattern, like encoded records with signatures and hashes
    /// followed by small integers and padding.
    fn bytes(&mut self, len: usize, random: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < random.min(len) {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(random.min(len));
        bytes.resize(len, (len % 7) as u8);
        bytes
    }
}

fn account(index: u64) -> Address {
    let hash = Domain::Address.hash(&index.to_le_bytes());
    let mut address = [0; 20];
    address.copy_from_slice(&hash.0[..20]);
    Address(address)
}

fn block_commit(height: u64, shape: &Shape) -> BlockCommit {
    let mut rng = Rng(height);
    let txs = shape.txs as usize;
    let mut commit = BlockCommit {
        height,
        block_hash: Domain::BlockHeader.hash(&height.to_le_bytes()),
        state_root: Domain::StateKey.hash(&height.to_le_bytes()),
        block: Vec::with_capacity(txs * shape.tx_bytes + 256),
        transactions: Vec::with_capacity(txs),
        receipts: Vec::with_capacity(txs),
        state: Vec::with_capacity(2 * txs),
        tree_nodes: Vec::with_capacity(4 * txs),
        history: Vec::with_capacity(2 * txs),
        ordered_batches: Vec::new(),
    };
    commit.block.extend_from_slice(&rng.bytes(256, 128));
    for index in 0..shape.txs {
        let tx = rng.bytes(shape.tx_bytes, 160);
        let tx_id = Domain::TxId.hash(&tx);
        commit.block.extend_from_slice(&tx);
        commit.transactions.push((tx_id, tx));
        commit
            .receipts
            .push((tx_id, rng.bytes(shape.receipt_bytes, 40)));
        for party in [rng.next() % ACCOUNTS, rng.next() % ACCOUNTS] {
            let address = account(party);
            let key = Domain::StateKey.hash(&address.0).0.to_vec();
            commit
                .state
                .push((key, Some(rng.bytes(shape.state_value_bytes, 48))));
            commit.history.push((address, index, tx_id));
        }
        for _ in 0..4 {
            // Version ‖ nibble path, as a Jellyfish Merkle tree keys nodes.
            let mut key = height.to_be_bytes().to_vec();
            key.extend_from_slice(&rng.bytes(32, 32));
            commit.tree_nodes.push((
                key,
                Some(rng.bytes(shape.tree_node_bytes, shape.tree_node_bytes)),
            ));
        }
    }
    commit
}

fn bench_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::create(dir.path()).expect("create");
    for height in 0..PREFILL_BLOCKS {
        store
            .commit(&block_commit(height, &REALISTIC))
            .expect("prefill");
    }
    let next_height = Cell::new(PREFILL_BLOCKS);

    let mut group = c.benchmark_group("commit");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for (name, shape, seconds) in [
        ("realistic_10k_txs", &REALISTIC, 6),
        ("small_100_txs", &SMALL, 3),
    ] {
        let bytes = block_commit(0, shape).payload_bytes();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.measurement_time(Duration::from_secs(seconds));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    let height = next_height.get();
                    next_height.set(height + 1);
                    block_commit(height, shape)
                },
                |commit| store.commit(&commit).expect("commit"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    eprintln!(
        "committed {} blocks in total; database at {}",
        next_height.get(),
        dir.path().display()
    );
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
