//! Consensus benchmarks.
//!
//! - `simulated_blocks`: the cores' own cost per committed block, n = 4 and
//!   n = 10, on a quiet simulated network, with signature *checks* skipped
//!   (the `testing` switch) so only the protocol is measured; signing votes
//!   and proposals is still included. Throughput is in blocks per second of
//!   CPU time (simulated time is free).
//! - `verify`: one vote, and a full quorum certificate (n = 4, 10, 100)
//!   single and batched, against one plain ed25519 verification measured in
//!   the same run.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use yuchain_consensus::{
    Epoch, Height, QuorumCert, Round, ValidatorId, ValidatorSet, VerifyMode, VoteData,
};
use yuchain_proto::verify::verify_one;
use yuchain_proto::{Hash32, SigningKey};
use yuchain_tests::{Cluster, SimConfig};

/// Blocks every honest node must commit per iteration.
const BLOCKS: u64 = 50;

fn simulated_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated_blocks");
    group.throughput(Throughput::Elements(BLOCKS));
    group.sample_size(10);
    for validators in [4usize, 10] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("n{validators}")),
            &validators,
            |b, &validators| {
                b.iter(|| {
                    let config = SimConfig {
                        blocks_after_heal: BLOCKS,
                        skip_signature_checks: true,
                        ..SimConfig::quiet(7, validators)
                    };
                    let report = Cluster::new(config).run();
                    assert!(report.violation.is_none());
                    report
                });
            },
        );
    }
    group.finish();
}

fn certificate(validators: usize) -> (ValidatorSet, QuorumCert, Vec<SigningKey>) {
    let keys: Vec<SigningKey> = (0..validators)
        .map(|i| SigningKey::for_test(&format!("bench-{i}")))
        .collect();
    let set = ValidatorSet::new(
        yuchain_consensus::ChainTag::for_test(),
        Epoch(0),
        keys.iter().map(SigningKey::public_key).collect(),
    )
    .expect("set");
    let data = VoteData {
        epoch: Epoch(0),
        round: Round(10),
        block: Hash32([1; 32]),
        height: Height(9),
        parent: Hash32([2; 32]),
        parent_round: Round(9),
    };
    let digest = data.signing_digest(&yuchain_consensus::ChainTag::for_test());
    let signatures = (0..set.quorum())
        .map(|i| (ValidatorId(i as u16), keys[i].sign(&digest.0)))
        .collect();
    (
        set,
        QuorumCert {
            vote: data,
            signatures,
        },
        keys,
    )
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    let (set, qc, keys) = certificate(4);
    let digest = qc
        .vote
        .signing_digest(&yuchain_consensus::ChainTag::for_test());
    let (signer, signature) = qc.signatures[0];
    group.bench_function("ed25519_single", |b| {
        b.iter(|| verify_one(&keys[0].public_key(), &digest.0, &signature).expect("valid"));
    });
    group.bench_function("vote", |b| {
        b.iter(|| {
            set.verify_signature(signer, &digest.0, &signature, "vote")
                .expect("valid")
        });
    });
    for validators in [4usize, 10, 100] {
        let (set, qc, _) = certificate(validators);
        for (name, mode) in [
            ("one_by_one", VerifyMode::OneByOne),
            ("batched", VerifyMode::Batched),
        ] {
            group.bench_function(format!("qc_n{validators}_{name}"), |b| {
                b.iter(|| set.verify_qc(&qc, mode, true).expect("valid"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, simulated_blocks, verify);
criterion_main!(benches);
