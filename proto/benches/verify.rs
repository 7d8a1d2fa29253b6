//! Signature verification rates: the bound every other throughput figure in
//! yuchain is compared against (see BENCHMARKS.md, "Signature verification").
//!
//! `cargo bench -p yuchain-proto --bench verify -- --warm-up-time 1 --measurement-time 5`
//!
//! Groups `single` and `verify_batch_1024` measure wall-clock time. Group
//! `cpu_time` repeats the single-core cases measured in CPU time (Linux
//! `/proc/thread-self/schedstat`, nanoseconds on a CPU) of the bench thread
//! plus the one-thread pool's worker: on a shared, busy machine the wall
//! clock also counts time spent waiting for a core, the CPU clock does not.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::sync::OnceLock;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Verifier as _;
use rayon::ThreadPool;
use yuchain_proto::keys::{PublicKey, Signature, SigningKey};
use yuchain_proto::verify::{SignedMessage, verify_batch, verify_one};

/// Signatures in a batch, each by a distinct key.
const BATCH: usize = 1024;

/// A transaction-sized message (bytes).
const MESSAGE_LEN: usize = 200;

struct Fixture {
    keys: Vec<PublicKey>,
    signatures: Vec<Signature>,
    messages: Vec<Vec<u8>>,
}

fn fixture() -> Fixture {
    let mut keys = Vec::with_capacity(BATCH);
    let mut signatures = Vec::with_capacity(BATCH);
    let mut messages = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let key = SigningKey::for_test(&format!("bench signer {i}"));
        let mut message = format!("bench message {i} ").into_bytes();
        message.resize(MESSAGE_LEN, i as u8);
        signatures.push(key.sign(&message));
        keys.push(key.public_key());
        messages.push(message);
    }
    Fixture {
        keys,
        signatures,
        messages,
    }
}

fn items(fixture: &Fixture) -> Vec<SignedMessage<'_>> {
    (0..BATCH)
        .map(|i| SignedMessage {
            public_key: fixture.keys[i],
            signature: fixture.signatures[i],
            message: &fixture.messages[i],
        })
        .collect()
}

fn single(c: &mut Criterion) {
    let fixture = fixture();
    let dalek_keys: Vec<ed25519_dalek::VerifyingKey> = fixture
        .keys
        .iter()
        .map(|key| ed25519_dalek::VerifyingKey::from_bytes(&key.0).expect("key"))
        .collect();
    let dalek_signatures: Vec<ed25519_dalek::Signature> = fixture
        .signatures
        .iter()
        .map(|signature| ed25519_dalek::Signature::from_bytes(&signature.0))
        .collect();

    let mut group = c.benchmark_group("single");
    group.throughput(Throughput::Elements(1));
    // The consensus rule, one signature at a time (decodes the key each time).
    let mut i = 0;
    group.bench_function("verify_one", |b| {
        b.iter(|| {
            i = (i + 1) % BATCH;
            verify_one(
                &fixture.keys[i],
                &fixture.messages[i],
                &fixture.signatures[i],
            )
            .expect("valid")
        })
    });
    // Reference: plain ed25519-dalek `verify`, key decoded in advance.
    let mut i = 0;
    group.bench_function("dalek_verify", |b| {
        b.iter(|| {
            i = (i + 1) % BATCH;
            dalek_keys[i]
                .verify(&fixture.messages[i], &dalek_signatures[i])
                .expect("valid")
        })
    });
    // Reference: ed25519-dalek decoding the key bytes too, like verify_one.
    let mut i = 0;
    group.bench_function("dalek_decode_and_verify", |b| {
        b.iter(|| {
            i = (i + 1) % BATCH;
            ed25519_dalek::VerifyingKey::from_bytes(&fixture.keys[i].0)
                .expect("key")
                .verify(&fixture.messages[i], &dalek_signatures[i])
                .expect("valid")
        })
    });
    group.finish();
}

/// The one-thread rayon pool (shared with the CPU-time measurement).
fn one_thread() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool")
    })
}

fn batched(c: &mut Criterion) {
    let fixture = fixture();
    let items = items(&fixture);
    let one_thread = one_thread();

    let mut group = c.benchmark_group("verify_batch_1024");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("1_thread", |b| {
        b.iter(|| {
            let bad = one_thread.install(|| verify_batch(&items));
            assert!(bad.is_empty());
        })
    });
    group.bench_function(
        format!("default_pool_{}_threads", rayon::current_num_threads()),
        |b| {
            b.iter(|| {
                let bad = verify_batch(&items);
                assert!(bad.is_empty());
            })
        },
    );
    group.finish();
}

/// Nanoseconds the calling thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("schedstat: CPU nanoseconds")
}

/// CPU time of the bench thread plus the one-thread pool's worker.
struct SingleCoreCpuTime;

impl SingleCoreCpuTime {
    fn now(&self) -> u64 {
        thread_cpu_ns() + one_thread().install(thread_cpu_ns)
    }
}

impl Measurement for SingleCoreCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        self.now()
    }

    fn end(&self, start: u64) -> u64 {
        self.now().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds and elements per CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else if typical < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
        };
        for value in values {
            *value = per * 1e9 / *value;
        }
        match throughput {
            Throughput::Elements(_) => "elem/cpu-s",
            _ => "B/cpu-s",
        }
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}

fn cpu_time(c: &mut Criterion<SingleCoreCpuTime>) {
    let fixture = fixture();
    let items = items(&fixture);
    let one_thread = one_thread();
    let mut group = c.benchmark_group("cpu_time");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("verify_one", |b| {
        b.iter(|| {
            i = (i + 1) % BATCH;
            verify_one(
                &fixture.keys[i],
                &fixture.messages[i],
                &fixture.signatures[i],
            )
            .expect("valid")
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("verify_batch_1024_1_thread", |b| {
        b.iter(|| {
            let bad = one_thread.install(|| verify_batch(&items));
            assert!(bad.is_empty());
        })
    });
    // The worst case for bisection: every signature invalid (a flood of
    // bad signatures), so every batch equation fails down to single checks.
    // s + 1 or s - 1: every point still decodes and s stays canonical, so no
    // check can stop early.
    let mut spoiled = items.clone();
    for item in &mut spoiled {
        item.signature.0[32] ^= 1;
    }
    group.bench_function("verify_batch_1024_all_invalid_1_thread", |b| {
        b.iter(|| {
            let bad = one_thread.install(|| verify_batch(&spoiled));
            assert_eq!(bad.len(), BATCH);
        })
    });
    group.finish();
}

criterion_group!(benches, single, batched);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(SingleCoreCpuTime);
    targets = cpu_time
}
criterion_main!(benches, cpu);
