//! The cluster simulator: n consensus cores over a simulated network, driven
//! by one seeded generator, with checkers after every step.
//!
//! Time is simulated milliseconds. Every event (a message delivery, a
//! scheduled tick, a payload answer, a crash, a restart, a partition, the
//! heal) sits in one queue ordered by (time, sequence number), so a seed
//! fixes the whole run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;

use yuchain_consensus::{
    Action, Block, BlockHash, BrokenRule, CommittedBlock, Config, Core, Genesis, Input, Message,
    Proposal, SafetyData, Testing, Timeout, ValidatorId,
};
use yuchain_proto::{Hash32, PublicKey, SigningKey};

use crate::rng::SimRng;

mod byzantine;

/// What a Byzantine node does (any combination).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Proposes two different blocks in its rounds, to different halves.
    pub equivocate: bool,
    /// Sends a second, conflicting vote with each vote.
    pub double_vote: bool,
    /// Proposes invalid payloads, and votes for every payload.
    pub invalid_payloads: bool,
    /// Drops half its messages; its proposals reach one node only.
    pub withhold: bool,
    /// Resends old messages it received to random nodes.
    pub replay: bool,
    /// Proposes blocks that extend an old certificate (a fork).
    pub fork: bool,
    /// Times out claiming an older highest certificate than it has.
    pub stale_timeouts: bool,
    /// Answers sync requests, and sends unrequested answers to honest nodes,
    /// with fabricated blocks: high-round children of its highest
    /// certificate's block under garbage or badly signed certificates, and
    /// blocks of another epoch.
    pub forged_sync: bool,
    /// Signs timeout entries claiming a certificate of the round just below
    /// the timed-out one (far above any it holds), aggregates them with the
    /// honest timeouts it received into timeout certificates, and spreads
    /// them in its own timeouts (withholding its honest ones, and never
    /// proposing, so that rounds time out).
    pub inflated_tc: bool,
    /// As leader, proposes two blocks (to two halves), and every Byzantine
    /// validator signs votes for both, to the next leader.
    pub equivocate_and_vote_both: bool,
    /// Sends proposals, timeouts, votes and sync requests of epochs far in
    /// the future, signed with its key.
    pub future_epoch_spam: bool,
    /// Floods valid-looking messages: re-signed duplicate proposals with
    /// other payloads, votes for random blocks, timeouts for far rounds
    /// (a few per step, so runs stay fast).
    pub flood: bool,
}

impl Behaviour {
    fn random(rng: &mut SimRng) -> Behaviour {
        let behaviour = Behaviour {
            equivocate: rng.percent(40),
            double_vote: rng.percent(40),
            invalid_payloads: rng.percent(30),
            withhold: rng.percent(30),
            replay: rng.percent(40),
            fork: rng.percent(30),
            stale_timeouts: rng.percent(30),
            // Drawn even while not used, so fixing the core does not
            // reshuffle every seed.
            forged_sync: rng.percent(20),
            inflated_tc: rng.percent(20),
            equivocate_and_vote_both: rng.percent(25),
            future_epoch_spam: rng.percent(25),
            flood: rng.percent(20),
        };
        if behaviour == Behaviour::default() {
            Behaviour {
                equivocate: true,
                ..behaviour
            }
        } else {
            behaviour
        }
    }
}

/// One run's options, all derived from the seed unless set by a scenario.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Validators per epoch.
    pub validators: usize,
    /// Byzantine validators (indices 0..byzantine), at most f.
    pub byzantine: usize,
    /// What the Byzantine validators do.
    pub behaviour: Behaviour,
    /// Percent of messages lost (during the fault phase).
    pub loss_percent: u64,
    /// Percent of messages delivered twice.
    pub duplicate_percent: u64,
    /// One-way delay bounds (delays are uniform, so messages reorder).
    pub delay_ms: (u64, u64),
    /// Partitions during the fault phase.
    pub partitions: bool,
    /// Crashes and restarts of honest validators during the fault phase.
    pub crashes: bool,
    /// Crash every node at this time (they restart 200 ms later).
    pub crash_all_at_ms: Option<u64>,
    /// The last node (which joins at the first epoch change) starts only at
    /// the heal, with an empty store, and must catch up through sync (across
    /// the epoch boundary when the change is already committed).
    pub late_joiner: bool,
    /// Successive validator sets: the i-th change ends epoch i (see
    /// [`EpochChange`]). Every node that is ever a validator exists from the
    /// start and runs as an observer while not in the current set.
    pub epoch_plan: Vec<EpochChange>,
    /// Each node's clock is ahead of simulated time by up to this much
    /// (drawn per node).
    pub clock_skew_ms_max: u64,
    /// Percent of messages lost after the heal.
    pub loss_after_heal_percent: u64,
    /// Partitions cut one way only: group 0 cannot reach group 1, but group
    /// 1 still reaches group 0.
    pub one_way_partitions: bool,
    /// Bounds of the driver's answer time to payload and check requests.
    pub driver_delay_ms: (u64, u64),
    /// Every message of one honest validator (the last initial one) takes
    /// this much longer: a straggler.
    pub straggler_ms: u64,
    /// The last honest initial validator is down from the start until the
    /// cluster has committed this many blocks; then the liveness phase
    /// starts and it must catch up to the head (sync beyond the core's
    /// committed window).
    pub down_for_blocks: Option<u64>,
    /// From this time on, crash an honest leader right after its next
    /// proposal and restart it at once (a restarted leader must not
    /// propose a second block in that round).
    pub restart_leader_after_propose_from_ms: Option<u64>,
    /// Honest cores skip their halt on a fork (to show the simulator's own
    /// agreement checks catch a broken rule).
    pub halt_on_fork_disabled: bool,
    /// How long faults last; then partitions heal and crashed nodes restart.
    pub fault_phase_ms: u64,
    /// After the heal, every honest node must commit this many new blocks...
    pub blocks_after_heal: u64,
    /// ...within this much simulated time.
    pub liveness_bound_ms: u64,
    /// Every honest core breaks this rule (to show the checkers work).
    pub broken_rule: Option<BrokenRule>,
    /// Skip signature checks (throughput benchmarks).
    pub skip_signature_checks: bool,
    /// The base round timeout.
    pub round_timeout_ms: u64,
}

impl SimConfig {
    /// The options for a seed ("swarm testing": each seed draws its own mix
    /// of faults, so a sweep covers many combinations).
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut rng = SimRng::new(seed ^ 0x005E_ED0F_C0DE);
        let validators = match rng.range(0, 9) {
            0..=4 => 4,
            5..=7 => 7,
            _ => 10,
        };
        let f = (validators - 1) / 3;
        let byzantine = rng.range(0, f as u64) as usize;
        let behaviour = Behaviour::random(&mut rng);
        SimConfig {
            seed,
            validators,
            byzantine,
            behaviour,
            loss_percent: [0, 0, 5, 15][rng.index(4)],
            duplicate_percent: [0, 5, 20][rng.index(3)],
            delay_ms: [(1, 20), (5, 60), (10, 150)][rng.index(3)],
            partitions: rng.percent(50),
            crashes: rng.percent(50),
            crash_all_at_ms: None,
            late_joiner: rng.percent(50),
            epoch_plan: match rng.percent(50).then(|| rng.range(2, 8)) {
                None => Vec::new(),
                // 4 -> 7 -> 5 -> 4 (larger sets only in the named scenarios,
                // to keep the sweep's time).
                Some(at) if validators == 4 && rng.percent(40) => {
                    EpochChange::grow_and_shrink(validators, at)
                }
                Some(at) => EpochChange::swap_last(validators, at),
            },
            fault_phase_ms: rng.range(1_000, 3_000),
            blocks_after_heal: 3,
            liveness_bound_ms: 60_000,
            broken_rule: None,
            skip_signature_checks: false,
            round_timeout_ms: 300,
            clock_skew_ms_max: [100, 500, DRIFT_MS_MAX / 2][rng.index(3)],
            loss_after_heal_percent: [0, 0, 0, 2][rng.index(4)],
            one_way_partitions: rng.percent(30),
            driver_delay_ms: [(1, 1), (1, 1), (1, 50), (1, 300)][rng.index(4)],
            straggler_ms: [0, 0, 0, 100][rng.index(4)],
            down_for_blocks: None,
            restart_leader_after_propose_from_ms: None,
            halt_on_fork_disabled: false,
        }
    }

    /// A quiet network with no faults (for scenarios and benchmarks).
    pub fn quiet(seed: u64, validators: usize) -> SimConfig {
        SimConfig {
            seed,
            validators,
            byzantine: 0,
            behaviour: Behaviour::default(),
            loss_percent: 0,
            duplicate_percent: 0,
            delay_ms: (5, 20),
            partitions: false,
            crashes: false,
            crash_all_at_ms: None,
            late_joiner: false,
            epoch_plan: Vec::new(),
            fault_phase_ms: 0,
            blocks_after_heal: 10,
            liveness_bound_ms: 60_000,
            broken_rule: None,
            skip_signature_checks: false,
            round_timeout_ms: 300,
            clock_skew_ms_max: 100,
            loss_after_heal_percent: 0,
            one_way_partitions: false,
            driver_delay_ms: (1, 1),
            straggler_ms: 0,
            down_for_blocks: None,
            restart_leader_after_propose_from_ms: None,
            halt_on_fork_disabled: false,
        }
    }
}

/// One planned validator-set change: the first block proposed in epoch i at
/// or above `at_height` (by the proposer's committed height) carries the
/// i-th set, and committing it starts epoch i + 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochChange {
    /// The height from which the change is proposed.
    pub at_height: u64,
    /// The next set, as node indices.
    pub validators: Vec<usize>,
}

impl EpochChange {
    /// One change at `at`: validator n - 1 leaves, node n joins.
    pub fn swap_last(validators: usize, at: u64) -> Vec<EpochChange> {
        vec![EpochChange {
            at_height: at,
            validators: (0..validators - 1).chain([validators]).collect(),
        }]
    }

    /// Three changes that change the set's size: n -> n + 3 -> n + 1 -> n
    /// (4 -> 7 -> 5 -> 4), the last three nodes joining at the first change
    /// and initial validators leaving at the others. Indices below n - 2
    /// (the Byzantine ones among them) stay throughout.
    pub fn grow_and_shrink(validators: usize, at: u64) -> Vec<EpochChange> {
        let n = validators;
        vec![
            EpochChange {
                at_height: at,
                validators: (0..n + 3).collect(),
            },
            EpochChange {
                at_height: at + 3,
                validators: (0..n - 1).chain([n + 1, n + 2]).collect(),
            },
            EpochChange {
                at_height: at + 6,
                validators: (0..n - 2).chain([n + 2, n + 1]).collect(),
            },
        ]
    }
}

/// What a checker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest nodes committed different blocks at one height.
    Agreement {
        /// The height.
        height: u64,
        /// The node that disagreed.
        node: usize,
    },
    /// An honest node's commits do not form one chain (a gap, a fork or a
    /// commit undone).
    NotOneChain {
        /// The node.
        node: usize,
        /// What was wrong.
        detail: String,
    },
    /// An honest node signed two different votes, timeouts (different
    /// highest-certificate rounds) or proposals in one round of an epoch,
    /// across restarts.
    DoubleSign {
        /// The node.
        node: usize,
        /// "vote", "timeout" or "proposal".
        what: &'static str,
        /// The epoch.
        epoch: u64,
        /// The round.
        round: u64,
    },
    /// An honest core halted on a conflicting certified chain.
    Halted {
        /// The node.
        node: usize,
        /// Its reason.
        reason: String,
    },
    /// After the heal some honest node did not commit enough new blocks in
    /// time.
    Liveness {
        /// The node.
        node: usize,
        /// Blocks it committed after the heal.
        committed: u64,
    },
    /// The run did not finish within its event budget.
    Stuck,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A run's outcome.
#[derive(Clone, Debug)]
pub struct Report {
    /// The options.
    pub config: SimConfig,
    /// Simulated time at the end.
    pub end_ms: u64,
    /// The highest height committed by any honest node.
    pub committed_height: u64,
    /// The highest epoch any node reached.
    pub epochs: u64,
    /// Events processed.
    pub events: u64,
    /// The most sync requests one honest node sent in one sync interval.
    pub sync_requests_per_interval_max: u64,
    /// What failed, if anything.
    pub violation: Option<Violation>,
}

/// The persisted part of a node: exactly what survives a crash.
#[derive(Clone, Default)]
struct Store {
    safety: Option<SafetyData>,
    committed: Vec<CommittedBlock>,
    blocks: Vec<Block>,
}

struct Node {
    key: SigningKey,
    core: Option<Core>,
    store: Store,
    byzantine: Option<Behaviour>,
    clock_offset_ms: u64,
    seen: VecDeque<Vec<u8>>,
    payload_counter: u64,
    /// Byzantine (`inflated_tc`): the timeouts received, by (epoch, round),
    /// for the last few rounds, and the last round it forged a certificate
    /// for.
    timeouts_seen: BTreeMap<(u64, u64), BTreeMap<ValidatorId, Timeout>>,
    inflated_for: Option<(u64, u64)>,
    /// Byzantine (`flood`): its last own proposal, re-signed with other
    /// payloads.
    last_proposal: Option<Proposal>,
}

/// What one honest node signed in one (epoch, round), by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Signed {
    Vote,
    Timeout,
    Proposal,
}

impl Signed {
    fn name(self) -> &'static str {
        match self {
            Signed::Vote => "vote",
            Signed::Timeout => "timeout",
            Signed::Proposal => "proposal",
        }
    }
}

enum Event {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Tick {
        node: usize,
    },
    Checked {
        node: usize,
        block: BlockHash,
        valid: bool,
    },
    Payload {
        node: usize,
        input: Input,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Partition {
        groups: Vec<u8>,
        one_way: bool,
    },
    Heal,
}

struct Queued {
    at_ms: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.sequence) == (other.at_ms, other.sequence)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.sequence).cmp(&(other.at_ms, other.sequence))
    }
}

/// Events beyond this end a run as stuck (a livelock guard).
const EVENTS_MAX: u64 = 3_000_000;
/// The cores' bound on how far a block's time may be from a node's clock.
const DRIFT_MS_MAX: u64 = 2_000;
/// The genesis time of every simulated chain.
const GENESIS_MS: u64 = 1_700_000_000_000;

/// A simulated cluster.
pub struct Cluster {
    config: SimConfig,
    rng: SimRng,
    nodes: Vec<Node>,
    genesis: Genesis,
    core_config: Config,
    /// The planned sets' keys, by the epoch they end.
    planned_sets: Vec<Vec<PublicKey>>,
    queue: BinaryHeap<Reverse<Queued>>,
    sequence: u64,
    now_ms: u64,
    /// Each node's group, and whether only group 0 -> group 1 is cut.
    partition: Option<(Vec<u8>, bool)>,
    /// What each honest node signed: (node, kind, epoch, round) -> a digest
    /// of the content. Lives outside the nodes, so it survives crashes.
    signed: BTreeMap<(usize, Signed, u64, u64), Hash32>,
    /// Sync requests sent by honest nodes: (node, sync interval) -> count.
    sync_requests: BTreeMap<(usize, u64), u64>,
    sync_requests_per_interval_max: u64,
    /// A leader to crash right after its proposal has been sent.
    restart_armed: bool,
    /// The first block an honest node committed at each height.
    canonical: BTreeMap<u64, BlockHash>,
    heal_ms: Option<u64>,
    heights_at_heal: Vec<u64>,
    events: u64,
    log: bool,
}

impl Cluster {
    /// A cluster for `config`: validators 0..n, plus every node that joins
    /// at a planned epoch change (an observer until then).
    pub fn new(config: SimConfig) -> Cluster {
        let mut rng = SimRng::new(config.seed);
        let total = config
            .epoch_plan
            .iter()
            .flat_map(|change| change.validators.iter().map(|&i| i + 1))
            .fold(config.validators, usize::max);
        let keys: Vec<SigningKey> = (0..total)
            .map(|i| SigningKey::for_test(&format!("sim-validator-{i}")))
            .collect();
        let initial: Vec<PublicKey> = keys[..config.validators]
            .iter()
            .map(SigningKey::public_key)
            .collect();
        let planned_sets = config
            .epoch_plan
            .iter()
            .map(|change| {
                change
                    .validators
                    .iter()
                    .map(|&i| keys[i].public_key())
                    .collect()
            })
            .collect();
        let genesis = Genesis {
            chain: yuchain_consensus::ChainTag::for_test(),
            hash: Hash32([0x6e; 32]),
            timestamp_ms: GENESIS_MS,
            validators: initial,
        };
        let core_config = Config {
            round_timeout_ms: config.round_timeout_ms,
            round_timeout_ms_max: config.round_timeout_ms * 16,
            timestamp_drift_ms_max: DRIFT_MS_MAX,
            sync_retry_ms: config.round_timeout_ms,
            testing: Testing {
                broken_rule: None,
                skip_signature_checks: config.skip_signature_checks,
                halt_on_fork_disabled: false,
            },
        };
        let behaviour = config.behaviour;
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                key,
                core: None,
                store: Store::default(),
                byzantine: (i < config.byzantine).then_some(behaviour),
                clock_offset_ms: rng.range(0, config.clock_skew_ms_max),
                seen: VecDeque::new(),
                payload_counter: 0,
                timeouts_seen: BTreeMap::new(),
                inflated_for: None,
                last_proposal: None,
            })
            .collect();
        let mut cluster = Cluster {
            config,
            rng,
            nodes,
            genesis,
            core_config,
            planned_sets,
            queue: BinaryHeap::new(),
            sequence: 0,
            now_ms: 0,
            partition: None,
            signed: BTreeMap::new(),
            sync_requests: BTreeMap::new(),
            sync_requests_per_interval_max: 0,
            restart_armed: false,
            canonical: BTreeMap::new(),
            heal_ms: None,
            heights_at_heal: Vec::new(),
            events: 0,
            log: false,
        };
        for node in 0..cluster.nodes.len() {
            cluster.boot(node);
            cluster.push(0, Event::Tick { node });
        }
        cluster.plan_faults();
        cluster
    }

    /// Prints every event (for replaying one seed).
    pub fn set_log(&mut self, log: bool) {
        self.log = log;
    }

    fn core_config_for(&self, node: usize) -> Config {
        let mut config = self.core_config.clone();
        if self.nodes[node].byzantine.is_none() {
            config.testing.broken_rule = self.config.broken_rule;
            config.testing.halt_on_fork_disabled = self.config.halt_on_fork_disabled;
        }
        config
    }

    fn boot(&mut self, node: usize) {
        // Boot from a checkpoint of the stored chain (its last window),
        // as a node does from its database.
        let checkpoint = yuchain_consensus::Checkpoint::from_chain(
            &self.genesis,
            &self.nodes[node].store.committed,
            yuchain_consensus::COMMITTED_WINDOW_BLOCKS,
        )
        .expect("a node's own store is one chain");
        let restored = yuchain_consensus::Restored {
            safety: self.nodes[node].store.safety.clone(),
            checkpoint: Some(checkpoint),
            blocks: self.nodes[node].store.blocks.clone(),
        };
        let core = Core::new(
            self.nodes[node].key.clone(),
            self.core_config_for(node),
            self.genesis.clone(),
            restored,
        )
        .expect("a node restarts from its own store");
        self.nodes[node].core = Some(core);
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse(Queued {
            at_ms,
            sequence: self.sequence,
            event,
        }));
    }

    fn honest(&self, node: usize) -> bool {
        self.nodes[node].byzantine.is_none()
    }

    /// Partitions and crashes during the fault phase, then the heal.
    fn plan_faults(&mut self) {
        let phase = self.config.fault_phase_ms;
        let n = self.nodes.len();
        if self.config.partitions && phase > 0 {
            let mut at = self.rng.range(0, phase / 2);
            while at < phase {
                let groups: Vec<u8> = (0..n).map(|_| self.rng.range(0, 1) as u8).collect();
                let one_way = self.config.one_way_partitions && self.rng.percent(50);
                self.push(at, Event::Partition { groups, one_way });
                let heal_at = (at + self.rng.range(200, 1_000)).min(phase);
                self.push(heal_at, Event::Heal);
                at = heal_at + self.rng.range(100, 800);
            }
        }
        if self.config.crashes && phase > 0 {
            let crashes = self.rng.range(1, 3);
            for _ in 0..crashes {
                let node = self.rng.range(self.config.byzantine as u64, n as u64 - 1) as usize;
                let at = self.rng.range(0, phase);
                self.push(at, Event::Crash { node });
                let back = (at + self.rng.range(100, 1_500)).min(phase);
                self.push(back, Event::Restart { node });
            }
        }
        if self.config.late_joiner && !self.config.epoch_plan.is_empty() {
            // Down from the start; the heal below boots it.
            self.push(0, Event::Crash { node: n - 1 });
        }
        if self.config.down_for_blocks.is_some() {
            // Down from the start; the heal comes with the height (in
            // `perform`), not at the end of the fault phase.
            self.push(
                0,
                Event::Crash {
                    node: self.down_node(),
                },
            );
            return;
        }
        if let Some(at) = self.config.crash_all_at_ms {
            for node in 0..n {
                self.push(at, Event::Crash { node });
                self.push(at + 200, Event::Restart { node });
            }
        }
        self.push(phase, Event::Heal);
        for node in 0..n {
            self.push(phase, Event::Restart { node });
        }
    }

    /// The node kept down by [`SimConfig::down_for_blocks`], and the
    /// straggler: the last initial validator (honest: Byzantine ones come
    /// first, at most f of them).
    fn down_node(&self) -> usize {
        self.config.validators - 1
    }

    fn local_time(&self, node: usize) -> u64 {
        GENESIS_MS + self.now_ms + self.nodes[node].clock_offset_ms
    }

    /// Sends bytes over the simulated network (loss, delay, duplication).
    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.send_later(from, to, bytes, 0);
    }

    /// Sends with `extra_ms` added to the random delay.
    fn send_later(&mut self, from: usize, to: usize, bytes: Vec<u8>, extra_ms: u64) {
        if from == to {
            return;
        }
        if self.rng.percent(self.config.loss_percent) {
            return;
        }
        let extra_ms = if from == self.down_node() {
            extra_ms + self.config.straggler_ms
        } else {
            extra_ms
        };
        let (low, high) = self.config.delay_ms;
        if self.rng.percent(self.config.duplicate_percent) {
            let delay = self.rng.range(low, high) + extra_ms;
            self.push(
                self.now_ms + delay,
                Event::Deliver {
                    to,
                    from,
                    bytes: bytes.clone(),
                },
            );
        }
        let delay = self.rng.range(low, high) + extra_ms;
        self.push(self.now_ms + delay, Event::Deliver { to, from, bytes });
    }

    fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.key.public_key() == *key)
    }

    /// Runs until the liveness goal after the heal, a violation, or the
    /// bound.
    pub fn run(mut self) -> Report {
        let violation = self.run_inner().err();
        let committed_height = self.canonical.keys().next_back().copied().unwrap_or(0);
        let epochs = self
            .nodes
            .iter()
            .filter_map(|node| node.core.as_ref())
            .map(|core| core.epoch().0)
            .max()
            .unwrap_or(0);
        Report {
            config: self.config,
            end_ms: self.now_ms,
            committed_height,
            epochs,
            events: self.events,
            sync_requests_per_interval_max: self.sync_requests_per_interval_max,
            violation,
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        while let Some(Reverse(queued)) = self.queue.pop() {
            self.events += 1;
            if self.events > EVENTS_MAX {
                return Err(Violation::Stuck);
            }
            self.now_ms = queued.at_ms;
            self.handle(queued.event)?;
            if let Some(heal) = self.heal_ms {
                if self.liveness_reached() {
                    return Ok(());
                }
                if self.now_ms > heal + self.config.liveness_bound_ms {
                    return Err(self.liveness_violation());
                }
            }
        }
        Err(Violation::Stuck)
    }

    fn committed_height(&self, node: usize) -> u64 {
        self.nodes[node]
            .store
            .committed
            .last()
            .map_or(0, |entry| entry.block.height.0)
    }

    /// Every honest node committed enough new blocks since the heal (and,
    /// when an epoch change is planned, reached the new epoch, so every run
    /// that plans one also checks liveness across it).
    fn liveness_reached(&self) -> bool {
        (0..self.nodes.len())
            .filter(|&i| self.honest(i))
            .all(|i| self.node_live(i))
    }

    fn node_live(&self, node: usize) -> bool {
        let epoch_goal = self.config.epoch_plan.len() as u64;
        // A node kept down must catch up to the head at the heal.
        let from = if self.config.down_for_blocks.is_some() {
            self.heights_at_heal.iter().copied().max().unwrap_or(0)
        } else {
            self.heights_at_heal[node]
        };
        self.committed_height(node) >= from + self.config.blocks_after_heal
            && self.nodes[node]
                .core
                .as_ref()
                .is_some_and(|core| core.epoch().0 >= epoch_goal)
    }

    fn liveness_violation(&self) -> Violation {
        let node = (0..self.nodes.len())
            .filter(|&i| self.honest(i))
            .find(|&i| !self.node_live(i))
            .unwrap_or(0);
        Violation::Liveness {
            node,
            committed: self.committed_height(node) - self.heights_at_heal[node],
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver { to, from, bytes } => {
                if let Some((groups, one_way)) = &self.partition
                    && groups[to] != groups[from]
                    && (!one_way || groups[from] == 0)
                {
                    return Ok(());
                }
                if self.nodes[to].core.is_none() {
                    return Ok(());
                }
                if let Some(behaviour) = self.nodes[to].byzantine {
                    self.byzantine_receive(to, behaviour, &bytes);
                }
                let input = Input::Message {
                    from: self.nodes[from].key.public_key(),
                    bytes,
                    now_ms: self.local_time(to),
                };
                self.step(to, input)
            }
            Event::Tick { node } => {
                let now_ms = self.local_time(node);
                self.step(node, Input::Tick { now_ms })
            }
            Event::Checked { node, block, valid } => {
                self.step(node, Input::ProposalChecked { block, valid })
            }
            Event::Payload { node, input } => self.step(node, input),
            Event::Crash { node } => {
                if self.log {
                    println!("{:>7} crash {node}", self.now_ms);
                }
                self.nodes[node].core = None;
                Ok(())
            }
            Event::Restart { node } => {
                if self.nodes[node].core.is_none() {
                    if self.log {
                        println!("{:>7} restart {node}", self.now_ms);
                    }
                    self.boot(node);
                    let now_ms = self.local_time(node);
                    self.step(node, Input::Tick { now_ms })?;
                }
                Ok(())
            }
            Event::Partition { groups, one_way } => {
                if self.log {
                    println!("{:>7} partition {groups:?} one way {one_way}", self.now_ms);
                }
                self.partition = Some((groups, one_way));
                Ok(())
            }
            Event::Heal => {
                self.partition = None;
                if self.now_ms >= self.config.fault_phase_ms && self.heal_ms.is_none() {
                    if self.log {
                        println!("{:>7} heal: liveness phase", self.now_ms);
                    }
                    self.heal_ms = Some(self.now_ms);
                    // The network heals: little or no more loss (delays,
                    // duplicates and reordering stay; Byzantine nodes keep
                    // misbehaving).
                    self.config.loss_percent = self.config.loss_after_heal_percent;
                    self.heights_at_heal = (0..self.nodes.len())
                        .map(|i| self.committed_height(i))
                        .collect();
                }
                Ok(())
            }
        }
    }

    fn step(&mut self, node: usize, input: Input) -> Result<(), Violation> {
        let Some(core) = self.nodes[node].core.as_mut() else {
            return Ok(());
        };
        let actions = core.step(input);
        for action in actions {
            self.perform(node, action)?;
        }
        self.check_step(node)
    }

    /// After every step: an honest core's committed head is exactly the last
    /// block its driver stored (nothing committed behind the driver's back,
    /// nothing undone), and the core did not halt.
    fn check_step(&self, node: usize) -> Result<(), Violation> {
        if !self.honest(node) {
            return Ok(());
        }
        let Some(core) = self.nodes[node].core.as_ref() else {
            return Ok(());
        };
        let stored = match self.nodes[node].store.committed.last() {
            Some(last) => (last.block.height, last.block.hash()),
            None => (yuchain_consensus::Height(0), self.genesis.hash),
        };
        if core.committed_head() != stored {
            return Err(Violation::NotOneChain {
                node,
                detail: format!(
                    "core head {:?} differs from the stored chain's last block {stored:?}",
                    core.committed_head()
                ),
            });
        }
        if core.is_halted() {
            return Err(Violation::Halted {
                node,
                reason: "halted".to_string(),
            });
        }
        Ok(())
    }

    fn perform(&mut self, node: usize, action: Action) -> Result<(), Violation> {
        match action {
            Action::PersistSafety(safety) => {
                self.nodes[node].store.safety = Some(*safety);
            }
            Action::PersistBlock(block) => {
                self.nodes[node].store.blocks.push(*block);
            }
            Action::Broadcast(bytes) => {
                if let Some(behaviour) = self.nodes[node].byzantine {
                    self.byzantine_broadcast(node, behaviour, bytes);
                    self.byzantine_extras(node, behaviour);
                } else {
                    self.check_signed(node, &bytes)?;
                    for to in 0..self.nodes.len() {
                        self.send(node, to, bytes.clone());
                    }
                }
            }
            Action::Send { to, bytes } => {
                if let Some(to) = self.index_of(&to) {
                    if let Some(behaviour) = self.nodes[node].byzantine {
                        self.byzantine_send(node, behaviour, to, bytes);
                        self.byzantine_extras(node, behaviour);
                    } else {
                        self.check_signed(node, &bytes)?;
                        self.send(node, to, bytes);
                    }
                }
            }
            Action::ScheduleTick { at_ms } => {
                let at = at_ms
                    .saturating_sub(GENESIS_MS + self.nodes[node].clock_offset_ms)
                    .max(self.now_ms + 1);
                self.push(at, Event::Tick { node });
            }
            Action::GetPayload { epoch, round, .. } => {
                let next_validators = usize::try_from(epoch.0)
                    .ok()
                    .and_then(|epoch| self.config.epoch_plan.get(epoch).map(|c| (epoch, c)))
                    .filter(|(_, change)| self.committed_height(node) + 1 >= change.at_height)
                    .map(|(epoch, _)| self.planned_sets[epoch].clone());
                let counter = self.nodes[node].payload_counter;
                self.nodes[node].payload_counter += 1;
                let mut payload = Vec::with_capacity(24);
                let invalid = self.nodes[node]
                    .byzantine
                    .is_some_and(|b| b.invalid_payloads && self.rng.percent(50));
                payload.push(if invalid { 0xFF } else { 0 });
                payload.extend_from_slice(&(node as u64).to_le_bytes());
                payload.extend_from_slice(&round.0.to_le_bytes());
                payload.extend_from_slice(&counter.to_le_bytes());
                let delay = self.driver_delay();
                self.push(
                    self.now_ms + delay,
                    Event::Payload {
                        node,
                        input: Input::PayloadReady {
                            round,
                            payload,
                            next_validators,
                        },
                    },
                );
            }
            Action::CheckProposal(block) => {
                let valid = self.nodes[node].byzantine.is_some() || self.payload_valid(&block);
                let delay = self.driver_delay();
                self.push(
                    self.now_ms + delay,
                    Event::Checked {
                        node,
                        block: block.hash(),
                        valid,
                    },
                );
            }
            Action::Commit(entry) => {
                if self.honest(node) {
                    self.check_commit(node, &entry)?;
                }
                if self.log {
                    println!(
                        "{:>7} node {node} commits height {} {:?}",
                        self.now_ms,
                        entry.block.height.0,
                        entry.block.hash()
                    );
                }
                let height = entry.block.height;
                let epoch = entry.block.epoch;
                let store = &mut self.nodes[node].store;
                store
                    .blocks
                    .retain(|block| block.height > height && block.epoch >= epoch);
                store.committed.push(*entry);
                if self.honest(node)
                    && self.heal_ms.is_none()
                    && self
                        .config
                        .down_for_blocks
                        .is_some_and(|blocks| height.0 >= blocks)
                {
                    let down = self.down_node();
                    self.push(self.now_ms, Event::Heal);
                    self.push(self.now_ms, Event::Restart { node: down });
                }
            }
            Action::ReadCommitted {
                peer,
                from_height,
                count,
            } => {
                // The driver answers from its store (a little later).
                let first = usize::try_from(from_height.0.saturating_sub(1)).unwrap_or(usize::MAX);
                let blocks: Vec<CommittedBlock> = self.nodes[node]
                    .store
                    .committed
                    .iter()
                    .skip(first)
                    .take(count)
                    .cloned()
                    .collect();
                self.push(
                    self.now_ms + 1,
                    Event::Payload {
                        node,
                        input: Input::CommittedRead {
                            peer,
                            from_height,
                            blocks,
                        },
                    },
                );
            }
            Action::DropUncommitted { epoch } => {
                self.nodes[node]
                    .store
                    .blocks
                    .retain(|block| block.epoch > epoch);
            }
            Action::EpochChanged { epoch, .. } => {
                if self.log {
                    println!("{:>7} node {node} enters epoch {}", self.now_ms, epoch.0);
                }
            }
            Action::Reject { error, .. } => {
                if self.log {
                    println!("{:>7} node {node} rejects: {error}", self.now_ms);
                }
            }
            Action::Halt { reason } => {
                if self.honest(node) {
                    return Err(Violation::Halted { node, reason });
                }
            }
        }
        Ok(())
    }

    /// How long the driver takes to answer a payload or check request.
    fn driver_delay(&mut self) -> u64 {
        let (low, high) = self.config.driver_delay_ms;
        self.rng.range(low, high)
    }

    /// The simulated ledger's payload rule: the first byte must not be 0xFF,
    /// and only the planned validator-set change of the block's epoch is
    /// acceptable.
    fn payload_valid(&self, block: &Block) -> bool {
        let payload_ok = block.payload.first() != Some(&0xFF);
        let change_ok = match &block.next_validators {
            None => true,
            Some(keys) => usize::try_from(block.epoch.0)
                .ok()
                .and_then(|epoch| self.planned_sets.get(epoch))
                .is_some_and(|planned| planned == keys),
        };
        payload_ok && change_ok
    }

    /// The double-sign checker, over every message an honest node sends:
    /// one vote, one timeout (one highest-certificate round) and one
    /// proposal per signer per (epoch, round), across restarts. Also counts
    /// the node's sync requests per sync interval.
    fn check_signed(&mut self, node: usize, bytes: &[u8]) -> Result<(), Violation> {
        let Ok(message) = Message::decode(bytes) else {
            return Ok(());
        };
        let (kind, epoch, round, digest) = match message {
            Message::Vote(vote) => (
                Signed::Vote,
                vote.data.epoch,
                vote.data.round,
                vote.data
                    .signing_digest(&yuchain_consensus::ChainTag::for_test()),
            ),
            Message::Timeout(timeout) => {
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&timeout.high_qc.round().0.to_le_bytes());
                (
                    Signed::Timeout,
                    timeout.epoch,
                    timeout.round,
                    Hash32(digest),
                )
            }
            Message::Proposal(proposal) => {
                if self.config.restart_leader_after_propose_from_ms.is_some()
                    && !self.restart_armed
                    && self
                        .config
                        .restart_leader_after_propose_from_ms
                        .is_some_and(|from| self.now_ms >= from)
                {
                    // Crash once the proposal is out and the leader's own vote
                    // for it persisted (after the payload check); back at
                    // once, in the round it proposed in.
                    self.restart_armed = true;
                    let voted = self.now_ms + self.config.driver_delay_ms.1 + 1;
                    self.push(voted, Event::Crash { node });
                    self.push(voted + 1, Event::Restart { node });
                }
                (
                    Signed::Proposal,
                    proposal.block.epoch,
                    proposal.block.round,
                    proposal.block.hash(),
                )
            }
            Message::SyncRequest(_) => {
                let interval = self.now_ms / self.core_config.sync_retry_ms.max(1);
                let count = self.sync_requests.entry((node, interval)).or_default();
                *count += 1;
                self.sync_requests_per_interval_max =
                    self.sync_requests_per_interval_max.max(*count);
                return Ok(());
            }
            Message::SyncResponse(_) | Message::SyncInfo(_) => return Ok(()),
        };
        match self.signed.get(&(node, kind, epoch.0, round.0)) {
            Some(previous) if *previous != digest => Err(Violation::DoubleSign {
                node,
                what: kind.name(),
                epoch: epoch.0,
                round: round.0,
            }),
            Some(_) => Ok(()),
            None => {
                self.signed.insert((node, kind, epoch.0, round.0), digest);
                Ok(())
            }
        }
    }

    /// Agreement, no commit undone, one chain: checked on every commit.
    fn check_commit(&mut self, node: usize, entry: &CommittedBlock) -> Result<(), Violation> {
        let block = &entry.block;
        let hash = block.hash();
        let (last_height, last_hash) = match self.nodes[node].store.committed.last() {
            Some(last) => (last.block.height.0, last.block.hash()),
            None => (0, self.genesis.hash),
        };
        if block.height.0 != last_height + 1 || block.parent != last_hash {
            return Err(Violation::NotOneChain {
                node,
                detail: format!(
                    "committed height {} (parent {:?}) after height {last_height} ({last_hash:?})",
                    block.height.0, block.parent
                ),
            });
        }
        match self.canonical.get(&block.height.0) {
            Some(existing) if *existing != hash => {
                return Err(Violation::Agreement {
                    height: block.height.0,
                    node,
                });
            }
            Some(_) => {}
            None => {
                self.canonical.insert(block.height.0, hash);
            }
        }
        Ok(())
    }
}

/// Runs one seed's configuration.
pub fn run_seed(seed: u64) -> Report {
    Cluster::new(SimConfig::from_seed(seed)).run()
}

/// The command that replays a seed exactly.
pub fn replay_command(seed: u64) -> String {
    format!("SIM_SEED={seed} cargo nextest run -p yuchain-tests --test it replay_seed --no-capture")
}
