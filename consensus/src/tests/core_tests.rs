//! Step-level tests of the core: a tiny in-memory network of cores, and
//! hand-made inputs that must be rejected without effect.

use std::collections::VecDeque;

use yuchain_proto::{Hash32, PublicKey, SigningKey};

use super::*;
use crate::types::{ChainTag, MESSAGE_SIZE_BYTES_MAX, TimeoutEntry};

const START_MS: u64 = 1_000_000;

fn keys(count: usize) -> Vec<SigningKey> {
    (0..count)
        .map(|i| SigningKey::for_test(&format!("core-test-{i}")))
        .collect()
}

fn genesis(keys: &[SigningKey]) -> Genesis {
    Genesis {
        chain: ChainTag::for_test(),
        hash: Hash32([9; 32]),
        timestamp_ms: START_MS - 1,
        validators: keys.iter().map(SigningKey::public_key).collect(),
    }
}

/// A perfect synchronous network of cores: every message is delivered in
/// order, payloads are answered at once and are always valid.
struct Net {
    keys: Vec<SigningKey>,
    cores: Vec<Core>,
    now_ms: u64,
    queue: VecDeque<(usize, Input)>,
    committed: Vec<Vec<Block>>,
    entries: Vec<Vec<CommittedBlock>>,
    persisted: Vec<Option<SafetyData>>,
    log: Vec<(usize, Action)>,
}

impl Net {
    fn new(count: usize) -> Net {
        let keys = keys(count);
        let cores = keys
            .iter()
            .map(|key| {
                Core::new(
                    key.clone(),
                    Config::default(),
                    genesis(&keys),
                    Restored::default(),
                )
                .expect("core")
            })
            .collect();
        Net {
            keys,
            cores,
            now_ms: START_MS,
            queue: VecDeque::new(),
            committed: vec![Vec::new(); count],
            entries: vec![Vec::new(); count],
            persisted: vec![None; count],
            log: Vec::new(),
        }
    }

    fn index(&self, key: &PublicKey) -> usize {
        self.keys
            .iter()
            .position(|k| k.public_key() == *key)
            .expect("known key")
    }

    fn perform(&mut self, node: usize, actions: Vec<Action>) {
        for action in actions {
            match &action {
                Action::PersistSafety(safety) => self.persisted[node] = Some((**safety).clone()),
                Action::Broadcast(bytes) => {
                    for to in 0..self.cores.len() {
                        if to != node {
                            self.deliver(node, to, bytes.clone());
                        }
                    }
                }
                Action::Send { to, bytes } => {
                    let to = self.index(to);
                    self.deliver(node, to, bytes.clone());
                }
                Action::GetPayload { round, .. } => self.queue.push_back((
                    node,
                    Input::PayloadReady {
                        round: *round,
                        payload: round.0.to_le_bytes().to_vec(),
                        next_validators: None,
                    },
                )),
                Action::CheckProposal(block) => self.queue.push_back((
                    node,
                    Input::ProposalChecked {
                        block: block.hash(),
                        valid: true,
                    },
                )),
                Action::Commit(entry) => {
                    self.committed[node].push(entry.block.clone());
                    self.entries[node].push((**entry).clone());
                }
                _ => {}
            }
            self.log.push((node, action));
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        let from = self.keys[from].public_key();
        let now_ms = self.now_ms;
        self.queue.push_back((
            to,
            Input::Message {
                from,
                bytes,
                now_ms,
            },
        ));
    }

    fn input(&mut self, node: usize, input: Input) -> Vec<Action> {
        let actions = self.cores[node].step(input);
        self.perform(node, actions.clone());
        actions
    }

    /// Delivers everything queued, then ticks every core 100 ms later.
    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for node in 0..self.cores.len() {
                let now_ms = self.now_ms;
                self.input(node, Input::Tick { now_ms });
            }
            // One hop per round: what was sent now arrives next time.
            for _ in 0..self.queue.len() {
                if let Some((node, input)) = self.queue.pop_front() {
                    self.input(node, input);
                }
            }
            self.now_ms += 100;
        }
    }
}

/// Validator `index`'s core at genesis, after its first tick.
fn started_core(keys: &[SigningKey], index: usize) -> Core {
    let mut core = Core::new(
        keys[index].clone(),
        Config::default(),
        genesis(keys),
        Restored::default(),
    )
    .expect("core");
    core.step(Input::Tick { now_ms: START_MS });
    core
}

fn rejected(actions: &[Action]) -> Vec<ConsensusError> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Reject { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn message(from: &SigningKey, message: &Message) -> Input {
    Input::Message {
        from: from.public_key(),
        bytes: message.encode(),
        now_ms: START_MS,
    }
}

#[test]
fn four_cores_on_a_perfect_network_commit_the_same_chain() {
    let mut net = Net::new(4);
    net.run(40);
    let reference = &net.committed[0];
    assert!(reference.len() >= 5, "committed {}", reference.len());
    for node in 1..4 {
        let common = reference.len().min(net.committed[node].len());
        assert_eq!(reference[..common], net.committed[node][..common]);
    }
    for pair in reference.windows(2) {
        assert_eq!(pair[1].parent, pair[0].hash(), "one chain");
        assert!(
            pair[1].timestamp_ms > pair[0].timestamp_ms,
            "monotonic time"
        );
    }
}

#[test]
fn safety_data_is_persisted_before_every_vote_and_timeout_leaves() {
    let mut net = Net::new(4);
    net.run(20);
    // Let round timers fire with no delivery: timeouts go out.
    net.now_ms += 10 * 60_000;
    for node in 0..4 {
        let now_ms = net.now_ms;
        net.input(node, Input::Tick { now_ms });
    }
    let mut voted_or_timed_out = 0;
    for node in 0..4 {
        let mut persisted_round = Round(0);
        for (who, action) in &net.log {
            if *who != node {
                continue;
            }
            match action {
                Action::PersistSafety(safety) => persisted_round = safety.last_voted_round,
                Action::Send { bytes, .. } | Action::Broadcast(bytes) => {
                    let round = match Message::decode(bytes).expect("own message") {
                        Message::Vote(vote) => vote.data.round,
                        Message::Timeout(timeout) => timeout.round,
                        _ => continue,
                    };
                    voted_or_timed_out += 1;
                    assert!(
                        round <= persisted_round,
                        "node {node} sent round {round} before persisting it"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(voted_or_timed_out > 10);
}

#[test]
fn a_restarted_validator_does_not_vote_twice_in_a_round() {
    let mut net = Net::new(4);
    net.run(12);
    let safety = net.persisted[1].clone().expect("voted");
    let voted = safety.last_voted_round;
    let last_vote = safety.last_vote.expect("a vote");
    let checkpoint =
        Checkpoint::from_chain(&genesis(&net.keys), &net.entries[1], 16).expect("a checkpoint");
    let mut restarted = Core::new(
        net.keys[1].clone(),
        Config::default(),
        genesis(&net.keys),
        Restored {
            safety: Some(safety),
            checkpoint: Some(checkpoint),
            blocks: Vec::new(),
        },
    )
    .expect("restart");
    assert!(
        restarted.round() >= voted,
        "resumes at or after its last vote"
    );
    // Offer it the very proposal it voted for: it must not vote again.
    let block = net.cores[0]
        .block(&last_vote.data.block)
        .cloned()
        .expect("block");
    let leader = &net.keys[usize::from(block.proposer.0)];
    let proposal = Proposal {
        signature: leader.sign(&proposal_digest(&ChainTag::for_test(), &block.hash()).0),
        block: block.clone(),
        last_tc: None,
    };
    let actions = restarted.step(message(leader, &Message::Proposal(proposal)));
    let checked = restarted.step(Input::ProposalChecked {
        block: block.hash(),
        valid: true,
    });
    for action in actions.iter().chain(&checked) {
        if let Action::Send { bytes, .. } = action {
            assert!(
                !matches!(Message::decode(bytes), Ok(Message::Vote(_))),
                "voted again after restart"
            );
        }
    }
}

#[test]
fn garbage_oversized_and_truncated_bytes_are_rejected_without_effect() {
    let mut net = Net::new(4);
    net.run(2);
    let core = &mut net.cores[2];
    let round = core.round();
    let head = core.committed_head();
    let from = net.keys[0].public_key();
    for bytes in [
        vec![],
        vec![1],
        vec![1, 2, 0, 0],
        vec![0xFF; 100],
        vec![1; MESSAGE_SIZE_BYTES_MAX + 1],
    ] {
        let actions = core.step(Input::Message {
            from,
            bytes,
            now_ms: START_MS,
        });
        assert_eq!(rejected(&actions).len(), 1);
        assert_eq!(actions.len(), 1, "nothing but the rejection");
    }
    assert_eq!(core.round(), round);
    assert_eq!(core.committed_head(), head);
}

#[test]
fn votes_from_outsiders_forged_or_conflicting_are_rejected() {
    let mut net = Net::new(4);
    let keys = net.keys.clone();
    let core = &mut net.cores[2];
    core.step(Input::Tick { now_ms: START_MS });
    let data = VoteData {
        epoch: Epoch(0),
        round: Round(1),
        block: Hash32([1; 32]),
        height: Height(1),
        parent: Hash32([9; 32]),
        parent_round: Round(0),
    };
    // Index 7 is not a member.
    let outsider = Vote::sign(&keys[0], &ChainTag::for_test(), data, ValidatorId(7));
    assert_eq!(
        rejected(&core.step(message(&keys[0], &Message::Vote(outsider)))),
        vec![ConsensusError::UnknownValidator(7)]
    );
    // Signed by validator 0 but claiming to be validator 1.
    let forged = Vote::sign(&keys[0], &ChainTag::for_test(), data, ValidatorId(1));
    assert!(matches!(
        rejected(&core.step(message(&keys[0], &Message::Vote(forged))))[..],
        [ConsensusError::BadSignature(_)]
    ));
    let honest = Vote::sign(&keys[1], &ChainTag::for_test(), data, ValidatorId(1));
    assert!(rejected(&core.step(message(&keys[1], &Message::Vote(honest)))).is_empty());
    assert!(matches!(
        rejected(&core.step(message(&keys[1], &Message::Vote(honest))))[..],
        [ConsensusError::Duplicate(_)]
    ));
    let mut other = data;
    other.block = Hash32([2; 32]);
    let double = Vote::sign(&keys[1], &ChainTag::for_test(), other, ValidatorId(1));
    assert!(matches!(
        rejected(&core.step(message(&keys[1], &Message::Vote(double))))[..],
        [ConsensusError::Conflicting { .. }]
    ));
    // A vote far ahead is not buffered.
    let mut ahead = data;
    ahead.round = Round(1_000);
    let far = Vote::sign(&keys[1], &ChainTag::for_test(), ahead, ValidatorId(1));
    assert!(matches!(
        rejected(&core.step(message(&keys[1], &Message::Vote(far))))[..],
        [ConsensusError::RoundNotAcceptable { .. }]
    ));
    // u64::MAX rounds never overflow.
    ahead.round = Round(u64::MAX);
    let max = Vote::sign(&keys[2], &ChainTag::for_test(), ahead, ValidatorId(2));
    assert_eq!(
        rejected(&core.step(message(&keys[2], &Message::Vote(max)))).len(),
        1
    );
}

/// Validator 1 leads round 1; a well-formed proposal from it.
fn round_one_proposal(keys: &[SigningKey], timestamp_ms: u64, payload: &[u8]) -> Proposal {
    let block = Block {
        epoch: Epoch(0),
        round: Round(1),
        height: Height(1),
        parent: Hash32([9; 32]),
        justify: QuorumCert::root(Epoch(0), Hash32([9; 32]), Height(0)),
        timestamp_ms,
        proposer: ValidatorId(1),
        payload: payload.to_vec(),
        next_validators: None,
    };
    Proposal {
        signature: keys[1].sign(&proposal_digest(&ChainTag::for_test(), &block.hash()).0),
        block,
        last_tc: None,
    }
}

/// Validator 2's proposal in `round` of a child of the genesis root (it
/// leads rounds 2 and 6 of four), justified by `last_tc`.
fn root_child_proposal(
    keys: &[SigningKey],
    round: Round,
    last_tc: Option<TimeoutCert>,
) -> Proposal {
    let block = Block {
        epoch: Epoch(0),
        round,
        height: Height(1),
        parent: Hash32([9; 32]),
        justify: QuorumCert::root(Epoch(0), Hash32([9; 32]), Height(0)),
        timestamp_ms: START_MS,
        proposer: ValidatorId(2),
        payload: b"x".to_vec(),
        next_validators: None,
    };
    Proposal {
        signature: keys[2].sign(&proposal_digest(&ChainTag::for_test(), &block.hash()).0),
        block,
        last_tc,
    }
}

#[test]
fn a_valid_proposal_is_checked_then_voted_and_an_equivocation_is_refused() {
    let keys = keys(4);
    // Validator 3: its vote for round 1 goes to validator 2, round 2's leader.
    let mut core = started_core(&keys, 3);
    let proposal = round_one_proposal(&keys, START_MS, b"a");
    let actions = core.step(message(&keys[1], &Message::Proposal(proposal.clone())));
    assert!(matches!(actions[..], [Action::CheckProposal(_)]));
    let other = round_one_proposal(&keys, START_MS, b"b");
    assert_eq!(
        rejected(&core.step(message(&keys[1], &Message::Proposal(other)))),
        vec![ConsensusError::Equivocation { round: Round(1) }]
    );
    let actions = core.step(Input::ProposalChecked {
        block: proposal.block.hash(),
        valid: true,
    });
    // The block and the safety data are persisted, then the vote leaves.
    assert!(matches!(actions[0], Action::PersistBlock(_)), "{actions:?}");
    assert!(
        matches!(actions[1], Action::PersistSafety(_)),
        "{actions:?}"
    );
    assert!(matches!(actions[2], Action::Send { .. }), "{actions:?}");
}

#[test]
fn a_proposal_with_a_bad_timestamp_or_invalid_payload_gets_no_vote() {
    let keys = keys(4);
    let fresh = || {
        let mut core = Core::new(
            keys[2].clone(),
            Config::default(),
            genesis(&keys),
            Restored::default(),
        )
        .expect("core");
        core.step(Input::Tick { now_ms: START_MS });
        core
    };
    let drift = Config::default().timestamp_drift_ms_max;
    for (timestamp_ms, reason) in [
        (START_MS + drift + 1, "ahead"),
        (START_MS - 1, "not after the parent"),
    ] {
        let mut core = fresh();
        let proposal = round_one_proposal(&keys, timestamp_ms, b"a");
        let errors = rejected(&core.step(message(&keys[1], &Message::Proposal(proposal))));
        assert!(
            matches!(errors[..], [ConsensusError::Timestamp { .. }]),
            "{reason}: {errors:?}"
        );
    }
    let mut core = fresh();
    let proposal = round_one_proposal(&keys, START_MS, b"a");
    core.step(message(&keys[1], &Message::Proposal(proposal.clone())));
    let actions = core.step(Input::ProposalChecked {
        block: proposal.block.hash(),
        valid: false,
    });
    assert_eq!(rejected(&actions).len(), 1);
    assert_eq!(actions.len(), 1, "no vote, nothing persisted");
}

#[test]
fn a_proposal_not_from_the_leader_or_badly_signed_is_rejected() {
    let keys = keys(4);
    let mut core = started_core(&keys, 2);
    let mut proposal = round_one_proposal(&keys, START_MS, b"a");
    proposal.block.proposer = ValidatorId(3);
    assert_eq!(
        rejected(&core.step(message(&keys[3], &Message::Proposal(proposal)))),
        vec![ConsensusError::NotLeader { round: Round(1) }]
    );
    let mut proposal = round_one_proposal(&keys, START_MS, b"a");
    proposal.signature = keys[3].sign(b"something else");
    assert!(matches!(
        rejected(&core.step(message(&keys[1], &Message::Proposal(proposal))))[..],
        [ConsensusError::BadSignature(_)]
    ));
}

#[test]
fn certificates_with_too_few_or_repeated_signers_move_nothing() {
    let mut net = Net::new(4);
    net.run(12);
    let keys = net.keys.clone();
    let qc = net.cores[0].safety().high_qc.clone();
    assert!(qc.signatures.len() >= 3);
    let core = &mut net.cores[3];
    let round = core.round();
    let mut short = qc.clone();
    short.vote.round = Round(round.0 + 5);
    short.signatures.truncate(2);
    let timeout = Timeout::sign(
        &keys[0],
        &ChainTag::for_test(),
        Epoch(0),
        Round(round.0 + 6),
        short,
        None,
        ValidatorId(0),
    );
    assert!(matches!(
        rejected(&core.step(message(&keys[0], &Message::Timeout(timeout))))[..],
        [ConsensusError::TooFewSigners { .. }]
    ));
    let mut repeated = qc.clone();
    repeated.vote.round = Round(round.0 + 5);
    repeated.signatures[1] = repeated.signatures[0];
    let timeout = Timeout::sign(
        &keys[0],
        &ChainTag::for_test(),
        Epoch(0),
        Round(round.0 + 6),
        repeated,
        None,
        ValidatorId(0),
    );
    assert_eq!(
        rejected(&core.step(message(&keys[0], &Message::Timeout(timeout)))),
        vec![ConsensusError::RepeatedSigner]
    );
    // A timeout certificate whose entries repeat a signer.
    let entry = TimeoutEntry {
        signer: ValidatorId(0),
        high_qc_round: qc.round(),
        signature: keys[0].sign(b"x"),
    };
    let tc = TimeoutCert {
        epoch: Epoch(0),
        round: Round(round.0 + 5),
        entries: vec![entry, entry, entry],
        high_qc: qc.clone(),
    };
    let timeout = Timeout::sign(
        &keys[1],
        &ChainTag::for_test(),
        Epoch(0),
        Round(round.0 + 6),
        qc,
        Some(tc),
        ValidatorId(1),
    );
    assert_eq!(
        rejected(&core.step(message(&keys[1], &Message::Timeout(timeout)))),
        vec![ConsensusError::RepeatedSigner]
    );
    assert_eq!(core.round(), round, "nothing moved");
}

#[test]
fn messages_of_other_epochs_are_rejected() {
    let keys = keys(4);
    let mut core = started_core(&keys, 2);
    let mut proposal = round_one_proposal(&keys, START_MS, b"a");
    proposal.block.epoch = Epoch(5);
    let actions = core.step(message(&keys[1], &Message::Proposal(proposal)));
    assert!(matches!(
        rejected(&actions)[..],
        [ConsensusError::FutureEpoch { .. }]
    ));
    // It asks the sender for the blocks it missed.
    assert!(actions.iter().any(|action| matches!(
        action,
        Action::Send { bytes, .. } if matches!(Message::decode(bytes), Ok(Message::SyncRequest(_)))
    )));
}

#[test]
fn a_lagging_core_catches_up_through_sync() {
    let mut net = Net::new(4);
    net.run(40);
    let behind = Core::new(
        net.keys[3].clone(),
        Config::default(),
        genesis(&net.keys),
        Restored::default(),
    )
    .expect("core");
    net.cores[3] = behind;
    net.committed[3].clear();
    net.run(30);
    let ahead = net.committed[0].len();
    assert!(ahead >= 10);
    assert!(
        net.committed[3].len() + 3 >= ahead,
        "caught up to {} of {ahead}",
        net.committed[3].len()
    );
    assert_eq!(
        net.committed[3][..],
        net.committed[0][..net.committed[3].len()]
    );
}

#[test]
fn a_forged_timeout_certificate_is_refused_even_for_a_round_already_certified() {
    let keys = keys(4);
    let mut core = started_core(&keys, 3);
    let root = QuorumCert::root(Epoch(0), Hash32([9; 32]), Height(0));
    let entry = |i: usize| TimeoutEntry {
        signer: ValidatorId(i as u16),
        high_qc_round: Round(0),
        signature: keys[i]
            .sign(&timeout_digest(&ChainTag::for_test(), Epoch(0), Round(1), Round(0)).0),
    };
    let genuine = TimeoutCert {
        epoch: Epoch(0),
        round: Round(1),
        entries: vec![entry(0), entry(1), entry(2)],
        high_qc: root.clone(),
    };
    // A timeout for round 2 carrying the genuine TC of round 1.
    let timeout = Timeout::sign(
        &keys[0],
        &ChainTag::for_test(),
        Epoch(0),
        Round(2),
        root.clone(),
        Some(genuine.clone()),
        ValidatorId(0),
    );
    let actions = core.step(message(&keys[0], &Message::Timeout(timeout)));
    assert!(rejected(&actions).is_empty(), "{actions:?}");
    assert_eq!(core.round(), Round(2));
    // Round 2's leader (validator 2) attaches a TC of round 1 with a forged
    // entry: the voting rule would trust its high_qc_round, so it must be
    // verified although this node already holds a TC of round 1.
    let mut forged = genuine;
    forged.entries[1].signature = keys[3].sign(b"forged");
    let proposal = root_child_proposal(&keys, Round(2), Some(forged));
    assert!(matches!(
        rejected(&core.step(message(&keys[2], &Message::Proposal(proposal))))[..],
        [ConsensusError::BadSignature(_)]
    ));
}

#[test]
fn mutated_messages_never_panic_the_core() {
    let mut net = Net::new(4);
    net.run(40);
    // Every message the cluster sent, as bytes.
    let sent: Vec<Vec<u8>> = net
        .log
        .iter()
        .filter_map(|(_, action)| match action {
            Action::Broadcast(bytes) | Action::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect();
    assert!(sent.len() > 20, "{} messages", sent.len());
    let from = net.keys[0].public_key();
    let core = &mut net.cores[3];
    // A fixed linear congruential stream: deterministic, no rng crate.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for i in 0..3_000usize {
        let mut bytes = sent[i % sent.len()].clone();
        for _ in 0..=(next() % 4) {
            let position = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[position] ^= 1 << (next() % 8),
                1 => bytes[position] = 0xFF,
                _ => bytes.truncate(position.max(1)),
            }
        }
        // Either accepted (a flip in a field that is not checked) or
        // rejected; never a panic.
        let _ = core.step(Input::Message {
            from,
            bytes,
            now_ms: START_MS + 2_000,
        });
    }
    assert!(!core.is_halted());
}

#[test]
fn sync_answers_per_peer_are_rate_limited() {
    let mut net = Net::new(4);
    net.run(20);
    let asker = net.keys[1].clone();
    let core = &mut net.cores[0];
    let request = Message::SyncRequest(crate::types::SyncRequest {
        epoch: Epoch(0),
        from_height: Height(1),
        block: None,
    });
    let mut answered = 0;
    let mut refused = 0;
    for _ in 0..40 {
        let actions = core.step(message(&asker, &request));
        answered += actions
            .iter()
            .filter(|action| matches!(action, Action::Send { .. }))
            .count();
        refused += rejected(&actions).len();
    }
    assert!(answered >= 1, "a catching-up peer is served");
    assert!(answered <= 16, "answered {answered}");
    assert_eq!(answered + refused, 40);
}

/// A Byzantine peer sends answers nobody asked for, each with a fabricated
/// high-round child of the high-QC block (its justify is the real high QC)
/// and a forged final certificate, after every round. None of it may enter
/// the block tree: the honest core must keep voting and committing real
/// proposals.
#[test]
fn unrequested_and_forged_sync_answers_store_nothing() {
    let mut net = Net::new(4);
    net.run(20);
    let before = net.committed[3].len();
    let byzantine = net.keys[0].clone();
    for _ in 0..6 {
        net.run(1);
        let high_qc = net.cores[3].safety().high_qc.clone();
        let Some(parent_ts) = net.cores[3]
            .block(&high_qc.vote.block)
            .map(|block| block.timestamp_ms)
        else {
            continue;
        };
        let base_round = net.cores[3].round().0 + 100;
        for i in 0..1_030u64 {
            let round = Round(base_round + i);
            let block = Block {
                epoch: Epoch(0),
                round,
                height: high_qc.vote.height.next().expect("height"),
                parent: high_qc.vote.block,
                justify: high_qc.clone(),
                timestamp_ms: parent_ts + 1,
                proposer: net.cores[3].validators().leader(round),
                payload: i.to_le_bytes().to_vec(),
                next_validators: None,
            };
            let data = VoteData {
                epoch: Epoch(0),
                round,
                block: block.hash(),
                height: block.height,
                parent: block.parent,
                parent_round: high_qc.round(),
            };
            let forged = QuorumCert {
                vote: data,
                signatures: (0..3)
                    .map(|signer| (ValidatorId(signer), byzantine.sign(b"forged")))
                    .collect(),
            };
            let hash = block.hash();
            let answer = Message::SyncResponse(crate::types::SyncResponse {
                blocks: vec![block],
                qc: forged,
            });
            let actions = net.cores[3].step(message(&byzantine, &answer));
            assert!(!rejected(&actions).is_empty(), "answer {i} was accepted");
            assert!(
                net.cores[3].block(&hash).is_none(),
                "fabricated block {i} was stored"
            );
        }
    }
    net.run(20);
    // It keeps pace with the others (who were not attacked).
    assert!(
        net.committed[3].len() > before && net.committed[3].len() + 2 >= net.committed[0].len(),
        "node 3 committed {} blocks (was {before}), node 0 {}",
        net.committed[3].len(),
        net.committed[0].len()
    );
}

/// A leader that proposed, crashed and restarted must not propose a second,
/// different block in the same round (it would equivocate).
#[test]
fn a_restarted_leader_does_not_propose_twice_in_a_round() {
    let keys = keys(4);
    let boot = |safety: Option<SafetyData>| {
        Core::new(
            keys[1].clone(),
            Config::default(),
            genesis(&keys),
            Restored {
                safety,
                ..Restored::default()
            },
        )
        .expect("core")
    };
    let mut proposals = Vec::new();
    let mut persisted = None;
    for (life, payload) in [(0u8, b"first".to_vec()), (1, b"second".to_vec())] {
        let mut core = boot(persisted.clone());
        let mut actions = core.step(Input::Tick {
            now_ms: START_MS + u64::from(life),
        });
        actions.extend(core.step(Input::PayloadReady {
            round: Round(1),
            payload,
            next_validators: None,
        }));
        for action in actions {
            match action {
                Action::PersistSafety(safety) => persisted = Some(*safety),
                Action::Broadcast(bytes) => {
                    if let Ok(Message::Proposal(proposal)) = Message::decode(&bytes) {
                        proposals.push(proposal.block.hash());
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(proposals.len(), 1, "proposals in round 1: {proposals:?}");
}

/// One Byzantine signer claims a high-QC round that no certificate backs;
/// with two honest timeouts that makes a TC. Honest voters must not let it
/// block every later proposal: the TC must be refused.
#[test]
fn a_timeout_certificate_with_an_unbacked_high_qc_claim_is_refused() {
    let keys = keys(4);
    let mut core = started_core(&keys, 3);
    let root = QuorumCert::root(Epoch(0), Hash32([9; 32]), Height(0));
    // Validator 0 is Byzantine: it claims a QC of round 4 that nobody has.
    let entry5 = |i: usize, claim: u64| TimeoutEntry {
        signer: ValidatorId(i as u16),
        high_qc_round: Round(claim),
        signature: keys[i]
            .sign(&timeout_digest(&ChainTag::for_test(), Epoch(0), Round(5), Round(claim)).0),
    };
    let inflated = TimeoutCert {
        epoch: Epoch(0),
        round: Round(5),
        entries: vec![entry5(0, 4), entry5(1, 0), entry5(2, 0)],
        // The best it can carry is a real certificate: the root's.
        high_qc: root.clone(),
    };
    // Round 6's leader (validator 2) proposes on the root, the highest QC
    // anybody holds, justified by that TC.
    let proposal = root_child_proposal(&keys, Round(6), Some(inflated));
    let actions = core.step(message(&keys[2], &Message::Proposal(proposal)));
    let errors = rejected(&actions);
    // The TC is refused outright: it moves this node nowhere.
    assert!(
        matches!(errors[..], [ConsensusError::Invalid { .. }]),
        "{errors:?}"
    );
    assert_eq!(core.round(), Round(1));
}

/// Every committed block comes with the two-chain certificate that made it
/// final: it verifies under the epoch's set and commits the block itself or
/// a later block of the chain.
#[test]
fn commits_carry_the_certificate_that_makes_them_final() {
    let mut net = Net::new(4);
    net.run(40);
    let entries = &net.entries[0];
    assert!(entries.len() >= 5, "committed {}", entries.len());
    let hashes: Vec<BlockHash> = entries.iter().map(|entry| entry.block.hash()).collect();
    for (index, entry) in entries.iter().enumerate() {
        let target = entry.finalized_by().expect("a two-chain certificate");
        let position = hashes
            .iter()
            .position(|hash| *hash == target)
            .expect("it commits a committed block");
        assert!(
            position >= index,
            "block {index} finalized by an earlier block"
        );
        net.cores[0]
            .validators()
            .verify_qc(&entry.commit_qc, crate::VerifyMode::OneByOne, true)
            .expect("the certificate verifies");
    }
}

/// A core boots from a checkpoint holding only the last few committed
/// blocks, and serves older blocks by asking the driver to read them.
#[test]
fn a_core_boots_from_a_checkpoint_and_serves_older_blocks_through_the_driver() {
    let mut net = Net::new(4);
    net.run(60);
    let entries = net.entries[1].clone();
    assert!(entries.len() >= 8, "committed {}", entries.len());
    let checkpoint = Checkpoint::from_chain(&genesis(&net.keys), &entries, 4).expect("checkpoint");
    assert_eq!(checkpoint.recent.len(), 4);
    let mut core = Core::new(
        net.keys[1].clone(),
        Config::default(),
        genesis(&net.keys),
        Restored {
            safety: net.persisted[1].clone(),
            checkpoint: Some(checkpoint),
            blocks: Vec::new(),
        },
    )
    .expect("boots from the checkpoint");
    let last = entries.last().expect("a head");
    assert_eq!(
        core.committed_head(),
        (last.block.height, last.block.hash())
    );
    // A peer asks from height 1: below the window, so the driver reads it.
    let asker = net.keys[3].clone();
    let request = Message::SyncRequest(crate::types::SyncRequest {
        epoch: Epoch(0),
        from_height: Height(1),
        block: None,
    });
    let actions = core.step(message(&asker, &request));
    let Some(Action::ReadCommitted {
        peer,
        from_height,
        count,
    }) = actions
        .iter()
        .find(|action| matches!(action, Action::ReadCommitted { .. }))
        .cloned()
    else {
        panic!("no store read: {actions:?}");
    };
    assert_eq!((peer, from_height), (asker.public_key(), Height(1)));
    let blocks: Vec<CommittedBlock> = entries.iter().take(count).cloned().collect();
    let actions = core.step(Input::CommittedRead {
        peer,
        from_height,
        blocks,
    });
    let answer = actions
        .iter()
        .find_map(|action| match action {
            Action::Send { to, bytes } if *to == asker.public_key() => Message::decode(bytes).ok(),
            _ => None,
        })
        .expect("an answer");
    let Message::SyncResponse(response) = answer else {
        panic!("not an answer: {answer:?}");
    };
    assert_eq!(response.blocks[0].height, Height(1));
    let last = response.blocks.last().expect("blocks");
    assert!(
        response.qc.vote.block == last.hash() || response.qc.vote.commits() == Some(last.hash()),
        "the answer's certificate covers its last block"
    );
}

/// A checkpoint that is not one chain, or whose head's certificate is of
/// another epoch, is refused.
#[test]
fn an_inconsistent_checkpoint_is_refused() {
    let mut net = Net::new(4);
    net.run(40);
    let entries = net.entries[1].clone();
    let boot = |checkpoint: Checkpoint| {
        Core::new(
            net.keys[1].clone(),
            Config::default(),
            genesis(&net.keys),
            Restored {
                safety: None,
                checkpoint: Some(checkpoint),
                blocks: Vec::new(),
            },
        )
    };
    let good = Checkpoint::from_chain(&genesis(&net.keys), &entries, 4).expect("checkpoint");
    assert!(boot(good.clone()).is_ok());
    let mut gap = good.clone();
    gap.recent.remove(1);
    assert!(boot(gap).is_err(), "a gap");
    let mut foreign = good.clone();
    if let Some(last) = foreign.recent.last_mut() {
        last.commit_qc.signatures[0].1 = net.keys[3].sign(b"forged");
    }
    assert!(boot(foreign).is_err(), "a forged head certificate");
    let mut other_epoch = good;
    if let Some(last) = other_epoch.recent.last_mut() {
        last.commit_qc.vote.epoch = Epoch(7);
    }
    assert!(boot(other_epoch).is_err(), "a certificate of another epoch");
}

/// A validator whose timeout arrives for a round this node already left is
/// sent this node's certificates (once per interval), and a node behind in
/// rounds moves on when it verifies them.
#[test]
fn a_peer_behind_in_rounds_is_sent_the_certificates_that_move_it_on() {
    let mut net = Net::new(4);
    net.run(10);
    // Node 3 falls a round behind: the others time out without it.
    let behind = Core::new(
        net.keys[3].clone(),
        Config::default(),
        genesis(&net.keys),
        Restored {
            safety: net.persisted[3].clone(),
            checkpoint: Some(
                Checkpoint::from_chain(&genesis(&net.keys), &net.entries[3], 16)
                    .expect("checkpoint"),
            ),
            blocks: Vec::new(),
        },
    )
    .expect("core");
    // A timeout of node 3 for an older round (justified by the certificate
    // before node 0's highest) reaches node 0.
    let high_qc = net.cores[0].safety().high_qc.clone();
    let older_qc = net.cores[0]
        .block(&high_qc.vote.block)
        .map(|block| block.justify.clone())
        .expect("the high-QC block");
    let old_round = older_qc.round().next().expect("round");
    assert!(old_round < net.cores[0].round());
    let stale = Timeout::sign(
        &net.keys[3],
        &ChainTag::for_test(),
        Epoch(0),
        old_round,
        older_qc,
        None,
        ValidatorId(3),
    );
    let actions = net.cores[0].step(message(&net.keys[3], &Message::Timeout(stale.clone())));
    let info = actions
        .iter()
        .find_map(|action| match action {
            Action::Send { to, bytes } if *to == net.keys[3].public_key() => {
                match Message::decode(bytes) {
                    Ok(Message::SyncInfo(info)) => Some(info),
                    _ => None,
                }
            }
            _ => None,
        })
        .expect("the behind peer is sent the certificates");
    // Rate-limited: the same stale timeout again gets nothing new.
    let again = net.cores[0].step(message(&net.keys[3], &Message::Timeout(stale)));
    assert!(
        !again
            .iter()
            .any(|action| matches!(action, Action::Send { .. })),
        "{again:?}"
    );
    // The behind node verifies them and reaches the sender's round.
    let mut behind = behind;
    behind.step(Input::Tick { now_ms: START_MS });
    let before = behind.round();
    behind.step(message(&net.keys[0], &Message::SyncInfo(info)));
    assert!(behind.round() >= before);
    assert!(behind.safety().high_qc.round() >= net.cores[0].safety().high_qc.round());
}

/// The round of the proposal an input carries, if it is one.
fn proposal_round(input: &Input) -> Option<Round> {
    match input {
        Input::Message { bytes, .. } => match Message::decode(bytes) {
            Ok(Message::Proposal(proposal)) => Some(proposal.block.round),
            _ => None,
        },
        _ => None,
    }
}

/// Delivers queued inputs, at most `hops`, without letting time pass (no
/// ticks, so no round can time out), except that `victim` receives the
/// proposal of `late_round` only just after the proposal of the round
/// after it: a child overtaking its parent, as happens between different
/// senders' connections under load. With `lost`, never.
fn run_with_a_late_proposal(
    net: &mut Net,
    victim: usize,
    late_round: Round,
    lost: bool,
    hops: usize,
) {
    let child_round = late_round.next().expect("round");
    let mut held = None;
    let mut released = false;
    for _ in 0..hops {
        let Some((node, input)) = net.queue.pop_front() else {
            break;
        };
        let round = proposal_round(&input);
        if node == victim && !released && held.is_none() && round == Some(late_round) {
            held = Some(input);
            continue;
        }
        net.input(node, input);
        if node == victim
            && round == Some(child_round)
            && let Some(late) = held.take()
        {
            released = true;
            if !lost {
                net.input(victim, late);
            }
        }
    }
    assert!(released, "the late proposal was never released");
}

#[test]
fn a_proposal_overtaken_by_its_child_costs_no_round() {
    a_missed_parent_costs_no_round(false);
}

#[test]
fn a_lost_proposal_is_fetched_without_costing_a_round() {
    a_missed_parent_costs_no_round(true);
}

/// A validator sees a proposal's child before the proposal (or never sees
/// the proposal) and then leads: no round may time out for it.
fn a_missed_parent_costs_no_round(lost: bool) {
    let mut net = Net::new(4);
    net.run(4);
    let start = net.cores.iter().map(Core::round).max().expect("cores");
    let late_round = Round(start.0 + 2);
    // The victim misses the parent of the next two proposals and then
    // leads: it must extend a block it first saw without its parent.
    let victim = usize::from(net.cores[0].validators.leader(Round(late_round.0 + 3)).0);
    let logged = net.log.len();
    run_with_a_late_proposal(&mut net, victim, late_round, lost, 2_000);
    let timeouts = net.log[logged..]
        .iter()
        .filter(|(_, action)| {
            matches!(action, Action::Broadcast(bytes)
                if matches!(Message::decode(bytes), Ok(Message::Timeout(_))))
        })
        .count();
    assert_eq!(timeouts, 0, "a round timed out");
    // Kept, the child and the late proposal are not refused: they must not
    // count in the node's rejection metrics (they once did, as an unknown
    // parent and a stale round).
    let refused: Vec<&ConsensusError> = net.log[logged..]
        .iter()
        .filter_map(|(node, action)| match action {
            Action::Reject { error, .. } if *node == victim => Some(error),
            _ => None,
        })
        .filter(|error| {
            matches!(
                error,
                ConsensusError::StaleRound { .. } | ConsensusError::UnknownParent
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "kept proposals reported as refused: {refused:?}"
    );
    for (index, core) in net.cores.iter().enumerate() {
        assert!(
            core.round().0 >= late_round.0 + 8,
            "validator {index} stalled in round {} (the late proposal was round {late_round})",
            core.round()
        );
    }
    let shortest = net.committed.iter().map(Vec::len).min().expect("cores");
    for committed in &net.committed {
        assert_eq!(committed[..shortest], net.committed[0][..shortest]);
    }
}

#[test]
fn certificates_for_unknown_blocks_cannot_crowd_out_the_outstanding_sync_request() {
    let mut net = Net::new(4);
    net.run(100);
    let blocks = net.committed[0].clone();
    assert!(blocks.len() > 12);
    let mut behind = started_core(&net.keys, 3);
    let requests = |actions: &[Action]| {
        actions
            .iter()
            .filter(|action| {
                matches!(action, Action::Send { bytes, .. }
                    if matches!(Message::decode(bytes), Ok(Message::SyncRequest(_))))
            })
            .count()
    };
    // An honest peer shows a certificate for a block this node lacks: it
    // asks for that block.
    let info = |block: &Block| {
        Message::SyncInfo(crate::types::SyncInfo {
            high_qc: block.justify.clone(),
            high_tc: None,
        })
    };
    let first = behind.step(message(&net.keys[0], &info(&blocks[4])));
    assert!(requests(&first) >= 1, "{first:?}");
    // A faulty peer then names one real certified block after another:
    // at most one more request goes out, and the first stays outstanding.
    let mut sent = 0;
    for block in &blocks[5..12] {
        sent += requests(&behind.step(message(&net.keys[1], &info(block))));
    }
    assert!(sent <= 1, "{sent} more sync requests went out");
    let honest = net.keys[0].public_key();
    assert!(
        behind.sync.iter().any(|sync| sync.peer == honest),
        "the honest peer's request was dropped"
    );
}

/// A node asks for a certified block it lacks, and the peer it asks has
/// committed that block already (the others certified it while the asker
/// missed it): the peer answers from its committed blocks. It once
/// answered only from its uncommitted tree, so the asker waited for its
/// retry and asked again.
#[test]
fn a_block_just_committed_is_served_to_a_peer_that_asks_for_it() {
    let mut net = Net::new(4);
    net.run(100);
    let blocks = net.committed[0].clone();
    assert!(blocks.len() > 12);
    let want = &blocks[blocks.len() - 3];
    let certifying = &blocks[blocks.len() - 2];
    assert_eq!(certifying.justify.vote.block, want.hash());
    let mut behind = started_core(&net.keys, 3);
    let info = Message::SyncInfo(crate::types::SyncInfo {
        high_qc: certifying.justify.clone(),
        high_tc: None,
    });
    let asked = behind.step(message(&net.keys[0], &info));
    let request = asked
        .iter()
        .find_map(|action| match action {
            Action::Send { to, bytes } if *to == net.keys[0].public_key() => {
                match Message::decode(bytes) {
                    Ok(Message::SyncRequest(request)) if request.block.is_some() => {
                        Some(Message::SyncRequest(request))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .expect("a request for the block (beside one for the heights it lacks)");
    let Message::SyncRequest(inner) = &request else {
        unreachable!()
    };
    assert_eq!(inner.block, Some(want.hash()), "asked by hash");
    let answered = net.cores[0].step(message(&net.keys[3], &request));
    let response = answered
        .iter()
        .find_map(|action| match action {
            Action::Send { to, bytes } if *to == net.keys[3].public_key() => {
                Message::decode(bytes).ok()
            }
            _ => None,
        })
        .expect("an answer from the committed blocks");
    let Message::SyncResponse(body) = &response else {
        panic!("not an answer: {response:?}");
    };
    assert_eq!(body.blocks.last().map(Block::hash), Some(want.hash()));
    let applied = behind.step(message(&net.keys[0], &response));
    assert!(rejected(&applied).is_empty(), "{:?}", rejected(&applied));
    assert!(
        behind.block(&want.hash()).is_some(),
        "the asker holds the block it asked for"
    );
}
