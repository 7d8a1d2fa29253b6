//! yuchain's deterministic cluster simulator and cross-crate scenarios.
//!
//! [`sim::Cluster`] runs n consensus cores over a simulated network with
//! delay, loss, duplication, reordering, partitions that heal, crashes and
//! restarts (from persisted data only), one-way links, clock skew, slow
//! driver answers, planned validator-set changes and up to f
//! Byzantine validators, all from one seed. Checkers run on every commit
//! (agreement, one chain), on every message an honest node sends (no two
//! different votes, timeouts or proposals in one round, across restarts),
//! after every step (nothing undone, no halt) and after the heal (every
//! honest node commits again within a bound). No real I/O: no sockets,
//! clocks, threads or disks.
//!
//! Replay a seed: `SIM_SEED=N cargo nextest run -p yuchain-tests --test it
//! replay_seed --no-capture`. Sweep without end: `cargo run -p yuchain-tests
//! --release --bin sim -- sweep`.

pub mod rng;
pub mod sim;

pub use sim::{
    Behaviour, Cluster, EpochChange, Report, SimConfig, Violation, replay_command, run_seed,
};

/// Runs the seeds in `seeds`, returning the first failure's report.
pub fn sweep(seeds: impl Iterator<Item = u64>) -> Result<usize, Box<Report>> {
    let mut count = 0;
    for seed in seeds {
        let report = run_seed(seed);
        if report.violation.is_some() {
            return Err(Box::new(report));
        }
        count += 1;
    }
    Ok(count)
}
