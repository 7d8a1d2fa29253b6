//! What the ledger's and the CLI's throughput benches share: the reference
//! rate every figure is compared against, and the state size. Included by
//! path (`#[path]`) from both bench targets, so the two always measure the
//! reference the same way.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use yuchain_ledger::testkit::signed_messages;
use yuchain_proto::verify::{SignedMessage, verify_batch};

/// Transfers per measured block.
pub(crate) const BLOCK_TRANSFERS: usize = 10_000;

/// Funded accounts in the state: 1,000,000, or `APPLY_ACCOUNTS` for a smaller
/// state while iterating.
pub(crate) fn accounts() -> usize {
    std::env::var("APPLY_ACCOUNTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000)
}

/// The reference rate R′, measured in the same run: verifying 1,024 distinct
/// signatures in batches on one core, under the consensus rule.
pub(crate) fn reference(c: &mut Criterion) {
    let signed = signed_messages(1_024);
    let items: Vec<SignedMessage<'_>> = signed
        .iter()
        .map(|(public_key, signature, message)| SignedMessage {
            public_key: *public_key,
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
