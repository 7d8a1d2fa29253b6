//! Named scenarios on the simulator, and broken-rule builds the checkers
//! must catch.

use yuchain_consensus::BrokenRule;
use yuchain_tests::{Behaviour, Cluster, EpochChange, Report, SimConfig, Violation};

fn run(config: SimConfig) -> Report {
    Cluster::new(config).run()
}

fn assert_live(report: &Report) {
    assert!(
        report.violation.is_none(),
        "violation {:?} with {:?}",
        report.violation,
        report.config
    );
}

/// Searches seeds until the checkers report a safety violation.
fn find_violation(make: impl Fn(u64) -> SimConfig, seeds: u64) -> Option<(u64, Violation)> {
    (0..seeds).find_map(|seed| {
        let report = run(make(seed));
        match report.violation {
            Some(
                violation @ (Violation::Agreement { .. }
                | Violation::NotOneChain { .. }
                | Violation::Halted { .. }),
            ) => Some((seed, violation)),
            _ => None,
        }
    })
}

fn byzantine(seed: u64, validators: usize, behaviour: Behaviour) -> SimConfig {
    SimConfig {
        byzantine: (validators - 1) / 3,
        behaviour,
        loss_percent: 5,
        duplicate_percent: 5,
        delay_ms: (5, 60),
        fault_phase_ms: 3_000,
        ..SimConfig::quiet(seed, validators)
    }
}

#[test]
fn n4_quiet_network_commits_steadily() {
    let report = run(SimConfig::quiet(1, 4));
    assert_live(&report);
    assert!(report.committed_height >= 10);
}

#[test]
fn n10_quiet_network_commits_steadily() {
    let report = run(SimConfig::quiet(2, 10));
    assert_live(&report);
    assert!(report.committed_height >= 10);
}

#[test]
fn n4_f1_crashes_and_restarts_still_commit() {
    for seed in 0..10 {
        let config = SimConfig {
            crashes: true,
            fault_phase_ms: 3_000,
            ..SimConfig::quiet(seed, 4)
        };
        assert_live(&run(config));
    }
}

#[test]
fn every_node_crashing_at_once_resumes_from_persisted_data() {
    for (seed, validators) in [(0, 4), (1, 7), (2, 10), (3, 4), (4, 7)] {
        for crash_at in [150, 333, 500] {
            let config = SimConfig {
                crash_all_at_ms: Some(crash_at),
                fault_phase_ms: 1_000,
                epoch_plan: EpochChange::swap_last(validators, 4),
                ..SimConfig::quiet(seed, validators)
            };
            let report = run(config);
            assert_live(&report);
            assert!(report.committed_height >= 10);
        }
    }
}

#[test]
fn n7_partitions_heal_and_every_node_commits_again() {
    for seed in 0..10 {
        let config = SimConfig {
            partitions: true,
            loss_percent: 10,
            duplicate_percent: 10,
            delay_ms: (10, 150),
            fault_phase_ms: 3_000,
            ..SimConfig::quiet(seed, 7)
        };
        assert_live(&run(config));
    }
}

#[test]
fn epoch_change_swaps_a_validator_and_keeps_committing() {
    for (seed, validators) in [(0, 4), (1, 7), (2, 10)] {
        let config = SimConfig {
            epoch_plan: EpochChange::swap_last(validators, 5),
            blocks_after_heal: 10,
            ..SimConfig::quiet(seed, validators)
        };
        let report = run(config);
        assert_live(&report);
        assert_eq!(report.epochs, 1, "the epoch must change");
    }
}

#[test]
fn f_byzantine_nodes_of_every_kind_cannot_break_agreement() {
    let behaviours = [
        Behaviour {
            equivocate: true,
            ..Behaviour::default()
        },
        Behaviour {
            double_vote: true,
            ..Behaviour::default()
        },
        Behaviour {
            invalid_payloads: true,
            ..Behaviour::default()
        },
        Behaviour {
            withhold: true,
            ..Behaviour::default()
        },
        Behaviour {
            replay: true,
            ..Behaviour::default()
        },
        Behaviour {
            fork: true,
            ..Behaviour::default()
        },
        Behaviour {
            stale_timeouts: true,
            withhold: true,
            ..Behaviour::default()
        },
    ];
    for (i, behaviour) in behaviours.into_iter().enumerate() {
        for validators in [4, 7, 10] {
            assert_live(&run(byzantine(i as u64, validators, behaviour)));
        }
    }
}

/// The seeds up to the first violation with `broken`, and then the same
/// seeds with the rule intact, which must all pass: the violation is the
/// broken rule's doing, not the scenario's.
fn caught_and_control(broken: BrokenRule, make: impl Fn(u64) -> SimConfig, seeds: u64) {
    let with_rule = |seed| SimConfig {
        broken_rule: Some(broken),
        ..make(seed)
    };
    let (seed, violation) = find_violation(with_rule, seeds)
        .unwrap_or_else(|| panic!("{broken:?} must be caught within {seeds} seeds"));
    println!("{broken:?} caught at seed {seed}: {violation}");
    for control in 0..=seed {
        assert_live(&run(make(control)));
    }
}

#[test]
fn broken_lock_is_caught_by_the_checkers() {
    caught_and_control(
        BrokenRule::IgnoreLock,
        |seed| {
            byzantine(
                seed,
                4,
                Behaviour {
                    fork: true,
                    ..Behaviour::default()
                },
            )
        },
        50,
    );
}

#[test]
fn broken_commit_rule_is_caught_by_the_checkers() {
    caught_and_control(
        BrokenRule::CommitOneChain,
        |seed| SimConfig {
            partitions: true,
            ..byzantine(
                seed,
                4,
                Behaviour {
                    withhold: true,
                    stale_timeouts: true,
                    ..Behaviour::default()
                },
            )
        },
        200,
    );
}
