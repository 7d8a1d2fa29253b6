//! The CI sweep: many seeds, each with its own mix of faults, split into
//! several tests so nextest runs them in parallel.
//!
//! - `SIM_SEEDS=N`: each sweep test runs N / SWEEP_PARTS seeds instead of
//!   the default (a longer sweep); `SIM_SEED_BASE=B` starts at seed B.
//! - `SIM_SEED=N`: `replay_seed` runs exactly that seed with a full event log.

use yuchain_tests::{Cluster, SimConfig, replay_command, sweep};

/// Seeds per CI run, over all parts.
const CI_SEEDS: u64 = 2_400;
/// How many tests the sweep is split into.
const SWEEP_PARTS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

fn sweep_part(part: u64) {
    let total = env_u64("SIM_SEEDS").unwrap_or(CI_SEEDS);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
    let per_part = total.div_ceil(SWEEP_PARTS);
    let first = base + part * per_part;
    match sweep(first..first + per_part) {
        Ok(count) => println!("seeds {first}..{}: {count} passed", first + per_part),
        Err(report) => panic!(
            "simulation failed for seed {}: {}\nconfig: {:?}\nreplay: {}",
            report.config.seed,
            report
                .violation
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            report.config,
            replay_command(report.config.seed),
        ),
    }
}

#[test]
fn sweep_part_0() {
    sweep_part(0);
}

#[test]
fn sweep_part_1() {
    sweep_part(1);
}

#[test]
fn sweep_part_2() {
    sweep_part(2);
}

#[test]
fn sweep_part_3() {
    sweep_part(3);
}

#[test]
fn sweep_part_4() {
    sweep_part(4);
}

#[test]
fn sweep_part_5() {
    sweep_part(5);
}

#[test]
fn sweep_part_6() {
    sweep_part(6);
}

#[test]
fn sweep_part_7() {
    sweep_part(7);
}

/// Replays `SIM_SEED` (seed 0 when unset) with every event printed.
#[test]
fn replay_seed() {
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let config = SimConfig::from_seed(seed);
    println!("seed {seed}: {config:?}");
    let mut cluster = Cluster::new(config);
    cluster.set_log(std::env::var("SIM_SEED").is_ok());
    let report = cluster.run();
    println!("{report:?}");
    assert!(
        report.violation.is_none(),
        "seed {seed} failed: {:?}\nreplay: {}",
        report.violation,
        replay_command(seed)
    );
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17, 101] {
        let first = yuchain_tests::run_seed(seed);
        let second = yuchain_tests::run_seed(seed);
        assert_eq!(
            (first.end_ms, first.events, first.committed_height),
            (second.end_ms, second.events, second.committed_height),
            "seed {seed} must replay exactly"
        );
    }
}
