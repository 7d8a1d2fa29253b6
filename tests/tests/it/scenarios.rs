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

/// Searches seeds until the checkers report a safety violation (the core's
/// halt counts).
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
            equivocate_and_vote_both: true,
            ..Behaviour::default()
        },
        Behaviour {
            future_epoch_spam: true,
            ..Behaviour::default()
        },
        Behaviour {
            flood: true,
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
/// broken rule's doing, not the scenario's. The cores' halt on a fork is
/// off, so the violation must come from the simulator's own checkers.
fn caught_and_control(broken: BrokenRule, make: impl Fn(u64) -> SimConfig, seeds: u64) {
    let with_rule = |seed| SimConfig {
        broken_rule: Some(broken),
        halt_on_fork_disabled: true,
        ..make(seed)
    };
    let (seed, violation) = find_violation(with_rule, seeds)
        .unwrap_or_else(|| panic!("{broken:?} must be caught within {seeds} seeds"));
    println!("{broken:?} caught at seed {seed}: {violation}");
    assert!(
        matches!(
            violation,
            Violation::Agreement { .. } | Violation::NotOneChain { .. }
        ),
        "{broken:?} must be caught by the simulator's checkers, not the core: {violation}"
    );
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
        400,
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

#[test]
fn byzantine_votes_for_both_equivocating_blocks_keep_agreement() {
    let behaviour = Behaviour {
        equivocate_and_vote_both: true,
        ..Behaviour::default()
    };
    for seed in 0..4 {
        for validators in [4, 7, 10] {
            let config = SimConfig {
                partitions: seed % 2 == 1,
                ..byzantine(seed, validators, behaviour)
            };
            assert_live(&run(config));
        }
    }
}

/// At most this many sync requests per sync interval per honest node.
const SYNC_REQUESTS_PER_INTERVAL_MAX: u64 = 4;

/// Before the sync hardening (issue 6) the bound failed: every future-epoch
/// message sent a request, seed 2, n = 4 sent 8 in one interval (at most 3
/// in these runs without spam).
#[test]
fn future_epoch_spam_does_not_amplify_sync_requests() {
    let behaviour = Behaviour {
        future_epoch_spam: true,
        ..Behaviour::default()
    };
    for seed in 0..4 {
        for validators in [4, 7] {
            let report = run(byzantine(seed, validators, behaviour));
            assert_live(&report);
            println!(
                "seed {seed}, n = {validators}: at most {} sync requests per interval",
                report.sync_requests_per_interval_max
            );
            assert!(
                report.sync_requests_per_interval_max <= SYNC_REQUESTS_PER_INTERVAL_MAX,
                "seed {seed}, n = {validators}: {} sync requests in one interval",
                report.sync_requests_per_interval_max
            );
        }
    }
}

#[test]
fn floods_do_not_stop_commits() {
    let behaviour = Behaviour {
        flood: true,
        replay: true,
        ..Behaviour::default()
    };
    for seed in 0..4 {
        for validators in [4, 7] {
            assert_live(&run(byzantine(seed, validators, behaviour)));
        }
    }
}

/// Failed before the sync hardening (issue 6): seed 0, n = 7 ended in
/// `Liveness { node: 2, committed: 1 }`, the victims rejecting real
/// proposals with "block tree buffer is full".
#[test]
fn forged_sync_answers_cannot_fill_the_block_tree() {
    let behaviour = Behaviour {
        forged_sync: true,
        ..Behaviour::default()
    };
    for seed in 0..4 {
        for validators in [4, 7] {
            assert_live(&run(byzantine(seed, validators, behaviour)));
        }
    }
}

/// Failed before timeout certificates carried their QC (issue 6): seed 0,
/// n = 7, a 100 ms straggler ended in `Liveness { node: 2, committed: 5 }`, honest voters refusing
/// proposals with "block extends a certificate lower than the timeout
/// certificate reports".
#[test]
fn inflated_timeout_certificates_cannot_stall_rounds() {
    let behaviour = Behaviour {
        inflated_tc: true,
        ..Behaviour::default()
    };
    for seed in 0..4 {
        for validators in [4, 7] {
            for straggler_ms in [0, 100] {
                let config = SimConfig {
                    straggler_ms,
                    ..byzantine(seed, validators, behaviour)
                };
                assert_live(&run(config));
            }
        }
    }
}

/// Failed before the persisted proposer guard (issue 6): seed 0 ended in
/// `DoubleSign { node: 1, what: "proposal", epoch: 0, round: 5 }`.
#[test]
fn a_leader_restarted_in_its_round_does_not_propose_twice() {
    for seed in 0..4 {
        let config = SimConfig {
            restart_leader_after_propose_from_ms: Some(100 + 20 * seed),
            blocks_after_heal: 30,
            ..SimConfig::quiet(seed, 4)
        };
        assert_live(&run(config));
    }
}

#[test]
fn the_double_sign_checker_sees_a_restarted_leader_propose_again() {
    // With the proposer guard broken on purpose the simulator's own
    // checker (not the core) must catch the second proposal.
    let config = SimConfig {
        restart_leader_after_propose_from_ms: Some(100),
        blocks_after_heal: 30,
        broken_rule: Some(BrokenRule::NoProposerGuard),
        ..SimConfig::quiet(0, 4)
    };
    let report = run(config);
    assert!(
        matches!(
            report.violation,
            Some(Violation::DoubleSign {
                what: "proposal",
                ..
            })
        ),
        "expected a double proposal, got {:?}",
        report.violation
    );
}

/// Failed before store-served sync (issue 6): `Liveness { node: 3,
/// committed: 0 }`, its sync requests from height 1 refused below the
/// peers' 1,024-block committed window.
#[test]
fn a_node_down_for_more_than_the_committed_window_catches_up() {
    let config = SimConfig {
        down_for_blocks: Some(1_100),
        blocks_after_heal: 5,
        skip_signature_checks: true,
        delay_ms: (1, 5),
        ..SimConfig::quiet(0, 4)
    };
    let report = run(config);
    assert_live(&report);
    assert!(report.committed_height > 1_100);
}

#[test]
fn validator_sets_grow_and_shrink_over_three_epochs() {
    for (seed, validators) in [(0, 4), (1, 7)] {
        let config = SimConfig {
            epoch_plan: EpochChange::grow_and_shrink(validators, 3),
            ..SimConfig::quiet(seed, validators)
        };
        let report = run(config);
        assert_live(&report);
        assert_eq!(report.epochs, 3, "4 -> 7 -> 5 -> 4 (or 7 -> 10 -> 8 -> 7)");
    }
    // With faults, a Byzantine validator throughout and the last joiner
    // starting late.
    for seed in 0..4 {
        let config = SimConfig {
            epoch_plan: EpochChange::grow_and_shrink(4, 3),
            late_joiner: true,
            crashes: true,
            partitions: true,
            ..byzantine(
                seed,
                4,
                Behaviour {
                    equivocate: true,
                    ..Behaviour::default()
                },
            )
        };
        let report = run(config);
        assert_live(&report);
        assert_eq!(report.epochs, 3);
    }
}

#[test]
fn one_way_links_slow_drivers_skewed_clocks_and_loss_after_the_heal() {
    for seed in 0..6 {
        let config = SimConfig {
            partitions: true,
            one_way_partitions: true,
            driver_delay_ms: (1, 300),
            clock_skew_ms_max: 1_000,
            loss_percent: 10,
            loss_after_heal_percent: 2,
            fault_phase_ms: 3_000,
            ..SimConfig::quiet(seed, [4, 7][seed as usize % 2])
        };
        assert_live(&run(config));
    }
}
