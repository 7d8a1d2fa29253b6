//! The simulator from the command line.
//!
//! - `sim sweep [FROM [TO]]`: run seeds FROM, FROM + 1, ... (without end
//!   unless TO is given) until a failure, which prints its replay command
//!   and exits non-zero;
//! - `sim replay SEED`: run one seed with a full event log.

use std::process::ExitCode;

use yuchain_tests::{Cluster, SimConfig, replay_command, run_seed};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sweep") => {
            let from: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let to: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
            let mut seed = from;
            while seed < to {
                let report = run_seed(seed);
                if let Some(violation) = &report.violation {
                    eprintln!(
                        "seed {seed} failed: {violation}\nconfig: {:?}",
                        report.config
                    );
                    eprintln!("replay: {}", replay_command(seed));
                    return ExitCode::FAILURE;
                }
                if seed.is_multiple_of(100) {
                    println!(
                        "seed {seed} ok (height {}, {} ms simulated)",
                        report.committed_height, report.end_ms
                    );
                }
                seed += 1;
            }
            ExitCode::SUCCESS
        }
        Some("replay") => {
            let Some(seed) = args.get(1).and_then(|s| s.parse().ok()) else {
                eprintln!("usage: sim replay SEED");
                return ExitCode::FAILURE;
            };
            let config = SimConfig::from_seed(seed);
            println!("seed {seed}: {config:?}");
            let mut cluster = Cluster::new(config);
            cluster.set_log(true);
            let report = cluster.run();
            println!("{report:?}");
            if report.violation.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("usage: sim sweep [FROM] | sim replay SEED");
            ExitCode::FAILURE
        }
    }
}
