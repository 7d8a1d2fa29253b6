//! Transfers applied per second, in blocks of 10,000 over 1,000,000 funded
//! accounts: (a) executed in memory without the state tree, (b) with the new
//! state root computed. Signatures are verified before this point in the
//! pipeline (and measured by `yuchain-proto`'s `verify` bench), so blocks
//! here carry already-decoded transactions.
//!
//! `cargo bench -p yuchain-ledger --bench apply`; set `APPLY_ACCOUNTS` for a
//! smaller state while iterating. The `reference` group measures the
//! single-core batched signature rate in the same run, for the ratios.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use yuchain_ledger::testkit::{TEST_CHAIN_ID, TestChain};
use yuchain_ledger::{Ledger, StateKey};
use yuchain_proto::tx::{Action, DecodedTx};
use yuchain_proto::{Address, Hash32, PublicKey, Signature};

const BLOCK_TRANSFERS: usize = 10_000;
const BALANCE_FEN: u64 = 1_000_000;

fn accounts() -> usize {
    std::env::var("APPLY_ACCOUNTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000)
}

/// Benchmark keys: 32 bytes from the index. No signature is checked here,
/// so they need not be curve points.
fn key(index: usize) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
    bytes[31] = 0x42;
    PublicKey(bytes)
}

struct Bench {
    ledger: Ledger,
    keys: Vec<PublicKey>,
    addresses: Vec<Address>,
    sequences: Vec<u64>,
    time_ms: u64,
    next: u64,
}

impl Bench {
    fn new(count: usize) -> Bench {
        let genesis = TestChain::new(1).genesis;
        assert_eq!(genesis.chain_id, TEST_CHAIN_ID);
        let keys: Vec<PublicKey> = (0..count).map(key).collect();
        let wallets: Vec<(PublicKey, u64)> = keys.iter().map(|k| (*k, BALANCE_FEN)).collect();
        let (ledger, _) = Ledger::genesis_with_wallets(&genesis, &wallets).expect("genesis");
        let addresses = keys.iter().map(Address::from_public_key).collect();
        Bench {
            ledger,
            keys,
            addresses,
            sequences: vec![0; count],
            time_ms: genesis.genesis_time_ms + 1_000,
            next: 0,
        }
    }

    /// A block of transfers between pseudo-random distinct accounts (a
    /// fixed-stride walk: no rng needed, no account twice in a block).
    fn block(&mut self) -> (yuchain_proto::pb::BlockHeader, Vec<DecodedTx>) {
        let count = self.keys.len();
        let mut txs = Vec::with_capacity(BLOCK_TRANSFERS);
        for _ in 0..BLOCK_TRANSFERS {
            let from = (self.next.wrapping_mul(7_919) % count as u64) as usize;
            let to = (self.next.wrapping_mul(7_919).wrapping_add(count as u64 / 2) % count as u64)
                as usize;
            self.next += 1;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&self.next.to_le_bytes());
            txs.push(DecodedTx {
                id: Hash32(id),
                sender: self.addresses[from],
                public_key: self.keys[from],
                signature: Signature([0; 64]),
                sequence: self.sequences[from],
                expiry_height: u64::MAX,
                max_fee: 0,
                action: Action::Transfer {
                    to: self.addresses[to],
                    amount: 1,
                    memo: String::new(),
                },
            });
            self.sequences[from] += 1;
        }
        let ids: Vec<Hash32> = txs.iter().map(|tx| tx.id).collect();
        let header = self.ledger.build_header(&ids, self.time_ms);
        self.time_ms += 1_000;
        (header, txs)
    }
}

/// The reference rate, measured in the same run: verifying 1,024 distinct
/// signatures in batches on one core, under the consensus rule.
fn reference(c: &mut Criterion) {
    use yuchain_proto::SigningKey;
    use yuchain_proto::verify::{SignedMessage, verify_batch};
    let keys: Vec<SigningKey> = (0..1_024)
        .map(|i| SigningKey::for_test(&format!("k{i}")))
        .collect();
    let messages: Vec<Vec<u8>> = (0..1_024)
        .map(|i| format!("transfer {i}").into_bytes())
        .collect();
    let signatures: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let items: Vec<SignedMessage<'_>> = keys
        .iter()
        .zip(&signatures)
        .zip(&messages)
        .map(|((key, signature), message)| SignedMessage {
            public_key: key.public_key(),
            signature: *signature,
            message,
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut group = c.benchmark_group("reference");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("verify_batch_1024_single_core", |b| {
        b.iter(|| pool.install(|| assert!(verify_batch(&items).is_empty())))
    });
    group.finish();
}

fn apply(c: &mut Criterion) {
    let count = accounts();
    let mut group = c.benchmark_group(format!("apply_{count}_accounts"));
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    let mut execute = Bench::new(count);
    group.bench_function("a_execute_in_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (header, txs) = execute.block();
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

    let mut commit = Bench::new(count);
    group.bench_function("b_execute_and_state_root", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (header, txs) = commit.block();
                let start = Instant::now();
                let applied = commit.ledger.apply_checked(&header, &txs).expect("applies");
                total += start.elapsed();
                assert_eq!(applied.receipts.len(), BLOCK_TRANSFERS);
            }
            total
        })
    });
    group.finish();

    // Proof size and tree cost per changed account, printed for BENCHMARKS.md.
    let proof = commit.ledger.prove(&StateKey::Account(commit.addresses[0]));
    let (header, txs) = commit.block();
    let applied = commit.ledger.apply_checked(&header, &txs).expect("applies");
    let changed = applied.state_changes.len();
    let node_bytes: usize = applied
        .tree_diff
        .nodes
        .iter()
        .map(|(key, node)| key.len() + node.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "proof: {} bytes encoded ({} bucket entries); block: {} state entries changed, {} tree node writes ({} bytes)",
        prost::Message::encoded_len(&proof),
        proof.bucket.len(),
        changed,
        applied.tree_diff.nodes.len(),
        node_bytes,
    );
}

criterion_group!(benches, reference, apply);
criterion_main!(benches);
