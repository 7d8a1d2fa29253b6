//! Replay: the verifier ([`super::verify`]) on a thread of its own feeds
//! verified blocks, through a bounded queue, to the executor here, which
//! re-executes each with the pure ledger and compares everything the source
//! stored with what execution gives: the ledger header, every receipt, the
//! state root, the executed state the validators certified, and
//! conservation (the sum of all balances equals issued minus redeemed) at
//! every block. While block N executes, block N + 1's signatures are being
//! verified on the other cores.
//!
//! At the end, a data directory's stored account state is compared entry
//! by entry with the replayed state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde::Serialize;
use yuchain_ledger::{AppliedBlock, Ledger, StateKey};
use yuchain_proto::tx::{Action, VerifiedTx};
use yuchain_proto::{Address, Hash32, pb};

use super::checkpoint::Checkpoint;
use super::error::{AuditError, Discrepancy, Result};
use super::genesis::AuditGenesis;
use super::source::{BlockSource, SourceBlock};
use super::verify::{VerifiedBlock, Verifier, VerifierStart, VerifyCounts};

/// Verified blocks waiting for the executor: verification runs at most
/// this far ahead (a block holds at most 20,000 transactions).
const VERIFIED_AHEAD_BLOCKS: usize = 2;
/// The executed states kept to check the claims later blocks certify
/// (the node claims 8 blocks behind).
const RECENT_STATES: usize = 1_024;

/// What replay does besides checking.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Stop after this height (default: the source's head).
    pub to: Option<u64>,
    /// Resume from, and save progress to, this file.
    pub checkpoint: Option<std::path::PathBuf>,
    /// Save the checkpoint every this many blocks (0: only at the end).
    pub checkpoint_every: u64,
    /// Keep every state entry (for balances, supply by operator and
    /// checkpoints).
    pub track_state: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Money issued into and redeemed from one operator's reserve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperatorSupply {
    /// Issued, in fen.
    pub issued: u64,
    /// Redeemed, in fen.
    pub redeemed: u64,
}

/// One executed block, for exports.
pub struct Executed<'a> {
    /// Its height.
    pub height: u64,
    /// Its time.
    pub timestamp_ms: u64,
    /// Its transactions.
    pub transactions: &'a [VerifiedTx],
    /// Their receipts (checked equal to the stored ones).
    pub receipts: &'a [pb::Receipt],
    /// The accounts each transaction involved.
    pub history: &'a [(Address, u32, Hash32)],
    /// The ledger after the block.
    pub ledger: &'a Ledger,
}

/// What an export does with each executed block.
pub trait Sink {
    /// Called once per executed block, in height order.
    fn block(&mut self, executed: &Executed<'_>) -> Result<()>;
}

/// A sink that keeps nothing.
pub struct NoSink;

impl Sink for NoSink {
    fn block(&mut self, _executed: &Executed<'_>) -> Result<()> {
        Ok(())
    }
}

/// The executed state at one height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutedAt {
    /// The height.
    pub height: u64,
    /// The ledger block hash.
    pub block_hash: Hash32,
    /// The state root after it.
    pub state_root: Hash32,
}

/// Replay's second stage: the ledger and what it is checked against.
pub struct Executor {
    ledger: Ledger,
    /// The consensus hash of the last executed block.
    consensus_hash: Hash32,
    recent: VecDeque<ExecutedAt>,
    balances: HashMap<Address, u64>,
    balance_sum: u128,
    /// Every state entry, when tracked.
    state: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Batches executed, when tracked (for a checkpoint).
    ordered: Option<HashMap<Hash32, u64>>,
    operators: BTreeMap<Address, OperatorSupply>,
    /// Blocks, transactions and payments executed in this run.
    pub stats: Stats,
}

/// Counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Blocks executed.
    pub blocks: u64,
    /// Transactions executed.
    pub transactions: u64,
    /// Of which payments (transfers and merchant payments).
    pub payments: u64,
    /// Transactions whose receipt is a failure.
    pub failed: u64,
}

fn describe_receipt(receipt: &pb::Receipt) -> String {
    let code = super::export::code_name(receipt);
    format!(
        "{code}, fee {} fen, height {}, index {}",
        receipt.fee, receipt.height, receipt.index
    )
}

fn describe_account(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "no entry".to_string(),
        Some(bytes) => match pb::Account::decode(bytes) {
            Ok(account) => format!(
                "balance {} fen, next sequence {}, status {}, tier {}",
                account.balance,
                account.next_sequence,
                account.status().as_str_name(),
                account.tier().as_str_name()
            ),
            Err(_) => format!("{} bytes that are not an account", bytes.len()),
        },
    }
}

fn hash_of(bytes: &[u8]) -> String {
    Hash32::from_slice(bytes)
        .map_or_else(|| format!("{} bytes", bytes.len()), |hash| hash.to_string())
}

impl Executor {
    /// The state at genesis.
    pub fn genesis(genesis: &AuditGenesis, track_state: bool) -> Result<(Executor, AppliedBlock)> {
        let (ledger, applied) =
            Ledger::genesis(genesis.ledger()).map_err(|error| AuditError::Genesis {
                path: genesis.path.clone(),
                reason: error.to_string(),
            })?;
        let mut executor = Executor {
            consensus_hash: genesis.hash,
            recent: VecDeque::from([ExecutedAt {
                height: 0,
                block_hash: applied.block_hash,
                state_root: applied.state_root,
            }]),
            ledger,
            balances: HashMap::new(),
            balance_sum: 0,
            state: track_state.then(BTreeMap::new),
            ordered: track_state.then(HashMap::new),
            operators: BTreeMap::new(),
            stats: Stats::default(),
        };
        executor.absorb(0, &applied)?;
        Ok((executor, applied))
    }

    /// Resumes from a checkpoint.
    pub fn resume(
        genesis: &AuditGenesis,
        checkpoint: Checkpoint,
    ) -> Result<(Executor, VerifierStart)> {
        let last = checkpoint
            .recent
            .last()
            .copied()
            .ok_or_else(|| AuditError::Checkpoint {
                path: String::new(),
                reason: "it holds no executed state".into(),
            })?;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = checkpoint.state.clone();
        let ledger = Ledger::load(genesis.ledger(), entries, last.state_root).map_err(|error| {
            AuditError::Checkpoint {
                path: String::new(),
                reason: format!("its state does not rebuild the ledger: {error}"),
            }
        })?;
        if ledger.height() != checkpoint.height || last.height != checkpoint.height {
            return Err(AuditError::Checkpoint {
                path: String::new(),
                reason: format!(
                    "its state is of height {}, it says {}",
                    ledger.height(),
                    checkpoint.height
                ),
            });
        }
        let mut balances = HashMap::new();
        let mut balance_sum: u128 = 0;
        for (key, value) in &checkpoint.state {
            if let Some(StateKey::Account(address)) = StateKey::from_bytes(key) {
                let account =
                    pb::Account::decode(value.as_slice()).map_err(|_| AuditError::Checkpoint {
                        path: String::new(),
                        reason: format!("the entry of {address} is not an account"),
                    })?;
                balances.insert(address, account.balance);
                balance_sum = balance_sum.saturating_add(u128::from(account.balance));
            }
        }
        let start = VerifierStart {
            height: checkpoint.height.saturating_add(1),
            parent: checkpoint.consensus_hash,
            ordered: checkpoint.ordered.iter().copied().collect(),
        };
        let executor = Executor {
            ledger,
            consensus_hash: checkpoint.consensus_hash,
            recent: checkpoint.recent.into_iter().collect(),
            balances,
            balance_sum,
            state: Some(checkpoint.state.into_iter().collect()),
            ordered: Some(checkpoint.ordered.into_iter().collect()),
            operators: checkpoint.operators.into_iter().collect(),
            stats: Stats::default(),
        };
        executor.check_conservation(checkpoint.height)?;
        Ok((executor, start))
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Issued and redeemed by operator.
    pub fn operators(&self) -> &BTreeMap<Address, OperatorSupply> {
        &self.operators
    }

    /// Every state entry, when tracked.
    pub fn state(&self) -> Option<&BTreeMap<Vec<u8>, Vec<u8>>> {
        self.state.as_ref()
    }

    /// What a checkpoint at this height holds (state must be tracked).
    pub fn checkpoint(&self, genesis_hash: Hash32) -> Option<Checkpoint> {
        Some(Checkpoint {
            genesis_hash,
            height: self.ledger.height(),
            consensus_hash: self.consensus_hash,
            recent: self.recent.iter().copied().collect(),
            ordered: self
                .ordered
                .as_ref()?
                .iter()
                .map(|(d, h)| (*d, *h))
                .collect(),
            operators: self.operators.iter().map(|(a, s)| (*a, *s)).collect(),
            state: self
                .state
                .as_ref()?
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        })
    }

    /// Checks the source's genesis record against the genesis file's.
    pub fn check_genesis(&self, applied: &AppliedBlock, stored: &SourceBlock) -> Result<()> {
        if stored.state_root != applied.state_root.0 {
            return Err(Discrepancy::at(
                0,
                "the state root after genesis",
                format!("{} (from the genesis file)", applied.state_root),
                hash_of(&stored.state_root),
            )
            .into());
        }
        if stored.block.is_some() || !stored.receipts.is_empty() || !stored.certified.is_empty() {
            return Err(Discrepancy::at(
                0,
                "the genesis record",
                "no block, receipts or certificate",
                "a block, receipts or a certificate",
            )
            .into());
        }
        Ok(())
    }

    /// Takes in what a block changed: balances (for conservation), the
    /// tracked state, the executed states kept for claims.
    fn absorb(&mut self, height: u64, applied: &AppliedBlock) -> Result<()> {
        for (key, value) in &applied.state_changes {
            if let Some(StateKey::Account(address)) = StateKey::from_bytes(key) {
                let after = self
                    .ledger
                    .account(&address)
                    .map_or(0, |account| account.balance);
                let before = self.balances.insert(address, after).unwrap_or(0);
                self.balance_sum = self
                    .balance_sum
                    .saturating_sub(u128::from(before))
                    .saturating_add(u128::from(after));
            }
            if let Some(state) = self.state.as_mut() {
                match value {
                    Some(value) => state.insert(key.clone(), value.clone()),
                    None => state.remove(key),
                };
            }
        }
        self.check_conservation(height)
    }

    fn check_conservation(&self, height: u64) -> Result<()> {
        let totals = self.ledger.totals();
        let outstanding = u128::from(totals.issued).checked_sub(u128::from(totals.redeemed));
        if outstanding != Some(self.balance_sum) {
            return Err(Discrepancy::at(
                height,
                "conservation: the sum of all balances",
                format!(
                    "{} fen (issued {} minus redeemed {})",
                    outstanding.map_or("negative".to_string(), |o| o.to_string()),
                    totals.issued,
                    totals.redeemed
                ),
                format!("{} fen", self.balance_sum),
            )
            .into());
        }
        Ok(())
    }

    /// Checks the executed state a block's quorum certified against
    /// replay's own.
    fn check_claim(&self, height: u64, claim: Option<&pb::ExecutedState>) -> Result<()> {
        let claim = claim.ok_or_else(|| {
            Discrepancy::at(
                height,
                "the certified executed state",
                "a claim in the payload",
                "none",
            )
        })?;
        if claim.height != 0 && claim.height.saturating_add(2) > height {
            return Err(Discrepancy::at(
                height,
                "the certified executed state's height",
                format!("at most {}", height.saturating_sub(2)),
                claim.height.to_string(),
            )
            .into());
        }
        let ours = self
            .recent
            .iter()
            .find(|executed| executed.height == claim.height)
            .ok_or_else(|| {
                Discrepancy::at(
                    height,
                    "the certified executed state's height",
                    format!("one of the last {RECENT_STATES} heights replayed"),
                    claim.height.to_string(),
                )
            })?;
        for (field, certified, replayed) in [
            ("state root", &claim.state_root, ours.state_root),
            ("block hash", &claim.block_hash, ours.block_hash),
        ] {
            if certified.as_slice() != replayed.0.as_slice() {
                return Err(Discrepancy::at(
                    height,
                    format!(
                        "the {field} of height {} that the validators certified",
                        claim.height
                    ),
                    format!("{replayed} (replayed)"),
                    hash_of(certified),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Executes one verified block and compares what the source stored.
    pub fn apply(&mut self, block: VerifiedBlock, sink: &mut dyn Sink) -> Result<()> {
        let height = block.height;
        self.check_claim(height, block.claim.as_ref())?;
        let ids: Vec<Hash32> = block.transactions.iter().map(|tx| tx.id).collect();
        let header = self.ledger.build_header(&ids, block.timestamp_ms);
        let stored = block.header.unwrap_or_default();
        let fields: [(&str, String, String); 8] = [
            ("chain_id", header.chain_id.clone(), stored.chain_id.clone()),
            (
                "height",
                header.height.to_string(),
                stored.height.to_string(),
            ),
            (
                "parent_hash",
                hash_of(&header.parent_hash),
                hash_of(&stored.parent_hash),
            ),
            (
                "timestamp_ms",
                header.timestamp_ms.to_string(),
                stored.timestamp_ms.to_string(),
            ),
            (
                "parent_state_root",
                hash_of(&header.parent_state_root),
                hash_of(&stored.parent_state_root),
            ),
            (
                "parent_receipts_root",
                hash_of(&header.parent_receipts_root),
                hash_of(&stored.parent_receipts_root),
            ),
            (
                "tx_root",
                hash_of(&header.tx_root),
                hash_of(&stored.tx_root),
            ),
            (
                "tx_count",
                header.tx_count.to_string(),
                stored.tx_count.to_string(),
            ),
        ];
        for (field, expected, actual) in fields {
            if expected != actual {
                return Err(Discrepancy::at(
                    height,
                    format!("the ledger header's {field}"),
                    expected,
                    actual,
                )
                .into());
            }
        }
        let applied = self
            .ledger
            .apply_checked(&header, &block.transactions)
            .map_err(|error| {
                Discrepancy::at(
                    height,
                    "executing the block",
                    "a block the ledger applies",
                    error.to_string(),
                )
            })?;
        if applied.receipts.len() != block.receipts.len() {
            return Err(Discrepancy::at(
                height,
                "receipts in the block",
                applied.receipts.len().to_string(),
                block.receipts.len().to_string(),
            )
            .into());
        }
        for (index, (ours, stored)) in applied.receipts.iter().zip(&block.receipts).enumerate() {
            if ours != stored {
                return Err(Discrepancy::at(
                    height,
                    "the receipt",
                    describe_receipt(ours),
                    format!(
                        "{}{}",
                        describe_receipt(stored),
                        if ours.tx_id != stored.tx_id {
                            " (for another transaction id)"
                        } else {
                            ""
                        }
                    ),
                )
                .in_tx(index, ids.get(index).copied())
                .into());
            }
        }
        if block.state_root != applied.state_root.0 {
            return Err(Discrepancy::at(
                height,
                "the state root after the block",
                format!("{} (replayed)", applied.state_root),
                hash_of(&block.state_root),
            )
            .into());
        }
        self.absorb(height, &applied)?;
        self.recent.push_back(ExecutedAt {
            height,
            block_hash: applied.block_hash,
            state_root: applied.state_root,
        });
        while self.recent.len() > RECENT_STATES {
            self.recent.pop_front();
        }
        self.consensus_hash = block.consensus_hash;
        if let Some(ordered) = self.ordered.as_mut() {
            for digest in &block.digests {
                ordered.insert(*digest, height);
            }
        }
        for (tx, receipt) in block.transactions.iter().zip(&applied.receipts) {
            let success = receipt.code == pb::ResultCode::Ok as i32;
            self.stats.transactions += 1;
            if !success {
                self.stats.failed += 1;
            }
            match &tx.action {
                Action::Transfer { .. } | Action::MerchantPayment { .. } => {
                    self.stats.payments += 1
                }
                Action::Issue { operator, amount } if success => {
                    let entry = self.operators.entry(*operator).or_default();
                    entry.issued = entry.issued.saturating_add(*amount);
                }
                Action::Redeem { operator, amount } if success => {
                    let entry = self.operators.entry(*operator).or_default();
                    entry.redeemed = entry.redeemed.saturating_add(*amount);
                }
                _ => {}
            }
        }
        self.stats.blocks += 1;
        sink.block(&Executed {
            height,
            timestamp_ms: block.timestamp_ms,
            transactions: &block.transactions,
            receipts: &applied.receipts,
            history: &applied.history,
            ledger: &self.ledger,
        })
    }

    /// Compares the source's stored state (of height `height`, which must
    /// be replay's) with the replayed state, entry by entry, and checks the
    /// stored entries give the replayed root (so none is missing or extra).
    pub fn compare_state(&self, source: &mut dyn BlockSource) -> Result<Option<u64>> {
        let height = self.ledger.height();
        // The stored state is of the source's head: only comparable when
        // replay got there.
        if source.head()? != height {
            return Ok(None);
        }
        let mut entries: Vec<(StateKey, Vec<u8>)> = Vec::new();
        let mut accounts = 0usize;
        let ledger = &self.ledger;
        let stored_height = source.for_each_state(&mut |key, value| {
            let state_key = StateKey::from_bytes(key).ok_or_else(|| {
                Discrepancy::at(
                    height,
                    "a stored state key",
                    "an account, payment or chain key",
                    hex::encode(key),
                )
            })?;
            let (what, ours) = match state_key {
                StateKey::Account(address) => {
                    accounts += 1;
                    (
                        format!("the stored state of account {address}"),
                        ledger
                            .account(&address)
                            .map(|a| a.to_proto().encode_to_vec()),
                    )
                }
                StateKey::Payment(id) => (
                    format!("the stored state of merchant payment {id}"),
                    ledger.payment(&id).map(|p| p.to_proto().encode_to_vec()),
                ),
                StateKey::Chain => (
                    "the stored chain totals".to_string(),
                    Some(ledger.totals().to_proto().encode_to_vec()),
                ),
            };
            if ours.as_deref() != Some(value) {
                let (expected, actual) = match state_key {
                    StateKey::Account(_) => (
                        describe_account(ours.as_deref()),
                        describe_account(Some(value)),
                    ),
                    _ => (
                        ours.map_or("no entry".to_string(), |bytes| {
                            format!("{} bytes {}", bytes.len(), hex::encode(&bytes))
                        }),
                        format!("{} bytes {}", value.len(), hex::encode(value)),
                    ),
                };
                return Err(Discrepancy::at(height, what, expected, actual).into());
            }
            entries.push((state_key, value.to_vec()));
            Ok(())
        });
        let Some(stored_height) = stored_height? else {
            return Ok(None);
        };
        if stored_height != height {
            return Ok(None);
        }
        if accounts != ledger.account_count() {
            return Err(Discrepancy::at(
                height,
                "accounts in the stored state",
                ledger.account_count().to_string(),
                accounts.to_string(),
            )
            .into());
        }
        if let Err(error) = yuchain_ledger::tree::StateTree::load(entries, ledger.state_root()) {
            return Err(Discrepancy::at(
                height,
                "the stored state's entries",
                format!("entries whose root is {} (replayed)", ledger.state_root()),
                error.to_string(),
            )
            .into());
        }
        Ok(Some(height))
    }
}

/// What a replay found and how fast.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The source.
    pub source: String,
    /// The first height replayed in this run.
    pub from_height: u64,
    /// The last height executed.
    pub to_height: u64,
    /// The source's head when replay started.
    pub source_head: u64,
    /// Counts of this run.
    pub executed: Stats,
    /// What the verifier checked.
    pub verified: VerifyCounts,
    /// Heights verified but not proven final (their certificate commits a
    /// block the source does not have yet): not executed.
    pub unproven: Option<(u64, u64)>,
    /// The height whose stored state was compared entry by entry (none:
    /// the source has no state, or replay stopped below its head).
    pub state_compared_at: Option<u64>,
    /// The state root after the last block.
    pub state_root: String,
    /// Issued, in fen.
    pub issued: u64,
    /// Redeemed, in fen.
    pub redeemed: u64,
    /// Accounts.
    pub accounts: usize,
    /// Seconds this run took.
    pub elapsed_s: f64,
    /// Blocks executed per second.
    pub blocks_per_s: f64,
    /// Transactions executed per second.
    pub transactions_per_s: f64,
    /// Payments executed per second.
    pub payments_per_s: f64,
    /// Whether a checkpoint was resumed from.
    pub resumed: bool,
}

/// Messages from the verifier thread.
enum Stage {
    Block(Box<VerifiedBlock>),
    End(VerifyCounts, Option<(u64, u64)>),
}

/// Replays `source` against `genesis` (see the module docs). Returns the
/// summary and the executor (the replayed state).
pub fn replay(
    mut source: Box<dyn BlockSource>,
    genesis: &AuditGenesis,
    options: &ReplayOptions,
    sink: &mut dyn Sink,
) -> Result<(Summary, Executor)> {
    let started = Instant::now();
    let checkpoint = match &options.checkpoint {
        Some(path) if path.exists() => Some(Checkpoint::load(path, genesis.hash)?),
        _ => None,
    };
    let resumed = checkpoint.is_some();
    let head = source.head()?;
    let (mut executor, start) = match checkpoint {
        Some(checkpoint) => {
            let (executor, start) = Executor::resume(genesis, checkpoint)?;
            source.start(start.height)?;
            (executor, start)
        }
        None => {
            let track = options.track_state || options.checkpoint.is_some();
            let (executor, applied) = Executor::genesis(genesis, track)?;
            source.start(0)?;
            let stored = source.next_block()?.ok_or_else(|| AuditError::Source {
                source_name: source.name(),
                reason: "it has no genesis record (height 0)".into(),
            })?;
            executor.check_genesis(&applied, &stored)?;
            let start = VerifierStart {
                height: 1,
                parent: genesis.hash,
                ordered: HashMap::new(),
            };
            (executor, start)
        }
    };
    let from_height = start.height;
    let to = options.to.unwrap_or(head).min(head);
    let progress = progress_bar(
        options.progress,
        to.saturating_sub(from_height.saturating_sub(1)),
    );
    let chain_id = genesis.ledger().chain_id.clone();
    let validators = genesis.validators.clone();
    let (sender, receiver) = sync_channel::<Result<Stage>>(VERIFIED_AHEAD_BLOCKS);
    // Verification gets a thread pool of its own, one thread per core:
    // sharing the global pool, the executor's parallel state-root work
    // queued behind verification's jobs and execution stalled (measured:
    // 15 µs of executor time per payment instead of 8).
    let verify_pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("audit-verify-{index}"))
        .build()
        .map_err(|error| AuditError::Source {
            source_name: "the verification thread pool".into(),
            reason: error.to_string(),
        })?;
    let verifier_thread = std::thread::Builder::new()
        .name("audit-verify".into())
        .spawn(move || {
            let mut verifier = Verifier::new(&chain_id, validators, start);
            // Past `to`, blocks are read only to prove earlier ones final,
            // and never past the head seen at the start (a stream would
            // wait there for new blocks).
            while verifier.next_height() <= to
                || (verifier.is_waiting() && verifier.next_height() <= head)
            {
                let released = source.next_block().and_then(|block| match block {
                    Some(block) => verify_pool.install(|| verifier.push(block)).map(Some),
                    None => Ok(None),
                });
                match released {
                    Ok(Some(blocks)) => {
                        for block in blocks.into_iter().filter(|block| block.height <= to) {
                            if sender.send(Ok(Stage::Block(Box::new(block)))).is_err() {
                                return source;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return source;
                    }
                }
            }
            let unproven = verifier.unproven().filter(|(first, _)| *first <= to);
            let _ = sender.send(Ok(Stage::End(verifier.counts(), unproven)));
            source
        })
        .map_err(|error| AuditError::Source {
            source_name: "the verifier thread".into(),
            reason: error.to_string(),
        })?;
    let mut outcome: Result<(VerifyCounts, Option<(u64, u64)>)> = Err(AuditError::Source {
        source_name: "the verifier thread".into(),
        reason: "it stopped without a word".into(),
    });
    let mut since_checkpoint = 0u64;
    for message in &receiver {
        match message {
            Ok(Stage::Block(block)) => {
                let payments = executor.stats.payments;
                if let Err(error) = executor.apply(*block, sink) {
                    outcome = Err(error);
                    break;
                }
                progress.inc(1);
                if executor.stats.blocks % 64 == 0 || executor.stats.payments != payments {
                    let seconds = started.elapsed().as_secs_f64().max(1e-9);
                    progress.set_message(format!(
                        "height {} · {:.0} blocks/s · {:.0} payments/s",
                        executor.ledger.height(),
                        executor.stats.blocks as f64 / seconds,
                        executor.stats.payments as f64 / seconds
                    ));
                }
                since_checkpoint += 1;
                if options.checkpoint_every > 0 && since_checkpoint >= options.checkpoint_every {
                    if let Err(error) = save_checkpoint(&executor, genesis, options) {
                        outcome = Err(error);
                        break;
                    }
                    since_checkpoint = 0;
                }
            }
            Ok(Stage::End(counts, unproven)) => {
                outcome = Ok((counts, unproven));
                break;
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    drop(receiver);
    let mut source = verifier_thread.join().map_err(|_| AuditError::Source {
        source_name: "the verifier thread".into(),
        reason: "it panicked".into(),
    })?;
    progress.finish_and_clear();
    let (verified, unproven) = outcome?;
    save_checkpoint(&executor, genesis, options)?;
    let state_compared_at = executor.compare_state(source.as_mut())?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let per_second = |count: u64| count as f64 / elapsed_s.max(1e-9);
    let totals = executor.ledger.totals();
    let summary = Summary {
        source: source.name(),
        from_height,
        to_height: executor.ledger.height(),
        source_head: head,
        executed: executor.stats,
        verified,
        unproven,
        state_compared_at,
        state_root: executor.ledger.state_root().to_string(),
        issued: totals.issued,
        redeemed: totals.redeemed,
        accounts: executor.ledger.account_count(),
        elapsed_s,
        blocks_per_s: per_second(executor.stats.blocks),
        transactions_per_s: per_second(executor.stats.transactions),
        payments_per_s: per_second(executor.stats.payments),
        resumed,
    };
    Ok((summary, executor))
}

fn save_checkpoint(
    executor: &Executor,
    genesis: &AuditGenesis,
    options: &ReplayOptions,
) -> Result<()> {
    let Some(path) = &options.checkpoint else {
        return Ok(());
    };
    let checkpoint = executor
        .checkpoint(genesis.hash)
        .ok_or_else(|| AuditError::Checkpoint {
            path: path.display().to_string(),
            reason: "replay did not keep the state a checkpoint needs".into(),
        })?;
    checkpoint.save(path)
}

fn progress_bar(shown: bool, blocks: u64) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(blocks),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} blocks · {msg} · ETA {eta}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
