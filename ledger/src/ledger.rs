//! The ledger: state, genesis, block application and proofs.

use std::collections::HashMap;

use rayon::prelude::*;

use prost::Message as _;
use yuchain_proto::hash::merkle_root;
use yuchain_proto::pb::{self, AccountKind, ResultCode};
use yuchain_proto::tx::{self, VerifiedTx};
use yuchain_proto::{Address, Domain, Hash32};

use crate::error::{BlockError, GenesisError, LoadError};
use crate::params::{ChainParams, Genesis, fee_account};
use crate::state::{Account, ChainTotals, Payment, StateKey, StateValue, decode_entry, encode};
use crate::time::{civil_year, shanghai_day};
use crate::tree::{StateTree, TreeDiff};

/// The most transactions one block may carry.
pub const TRANSACTIONS_PER_BLOCK_MAX: usize = 20_000;

/// The hash of a block header: what consensus certifies and children name.
pub fn block_hash(header: &pb::BlockHeader) -> Hash32 {
    Domain::BlockHeader.hash(&header.encode_to_vec())
}

/// The root over a block's transaction ids, in order.
pub fn tx_root(ids: &[Hash32]) -> Hash32 {
    merkle_root(Domain::TxRoot, ids)
}

/// The root over a block's receipts, in order.
pub fn receipts_root(receipts: &[pb::Receipt]) -> Hash32 {
    let leaves: Vec<Hash32> = receipts
        .iter()
        .map(|receipt| Domain::ReceiptsRoot.hash(&receipt.encode_to_vec()))
        .collect();
    merkle_root(Domain::ReceiptsRoot, &leaves)
}

/// Whether a receipt code means the transaction took effect on the sender
/// (consumed its sequence number). The others change nothing at all, so
/// the same transaction may still be included later.
pub fn consumes_sequence(code: ResultCode) -> bool {
    !matches!(
        code,
        ResultCode::UnknownSender
            | ResultCode::BadSequence
            | ResultCode::Expired
            | ResultCode::WrongKey
            | ResultCode::SenderClosed
    )
}

/// State entries written by a block: key bytes → encoded record (None
/// deletes).
pub type StateChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What applying one block produced: receipts, the new root, and every change
/// to persist in the block's atomic write.
#[derive(Clone, Debug)]
pub struct AppliedBlock {
    /// The block's height.
    pub height: u64,
    /// The block's hash.
    pub block_hash: Hash32,
    /// The state root after the block.
    pub state_root: Hash32,
    /// The root over `receipts`.
    pub receipts_root: Hash32,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<pb::Receipt>,
    /// State entries written: key bytes → encoded record.
    pub state_changes: StateChanges,
    /// Tree nodes written and pruned.
    pub tree_diff: TreeDiff,
    /// Account history: (account, index in block, tx id) for every
    /// transaction that used its sender's sequence (took effect, or failed
    /// with a receipt code that still consumes it), for each account it
    /// involved.
    pub history: Vec<(Address, u32, Hash32)>,
}

/// The ledger of one chain: a deterministic state machine. Same genesis and
/// same blocks give the same receipts and roots on every node.
pub struct Ledger {
    pub(crate) chain_id: String,
    pub(crate) params: ChainParams,
    pub(crate) accounts: HashMap<Address, Account>,
    pub(crate) payments: HashMap<Hash32, Payment>,
    pub(crate) totals: ChainTotals,
    pub(crate) tree: StateTree,
}

/// Accounts and payments a block touched (with repeats; sorted and
/// deduplicated when the block is committed), and the value each had before
/// the block first changed it: what the block's conservation check compares
/// against, and what undoes a refused block.
#[derive(Default)]
pub(crate) struct Touched {
    pub(crate) accounts: Vec<Address>,
    pub(crate) payments: Vec<Hash32>,
    /// Looked up by key only; never iterated where order matters.
    prior_accounts: HashMap<Address, Option<Account>>,
    prior_payments: HashMap<Hash32, Option<Payment>>,
}

impl Touched {
    /// Room for a block of `transactions` (about two accounts each).
    pub(crate) fn with_capacity(transactions: usize) -> Touched {
        let accounts = transactions.saturating_mul(2);
        Touched {
            accounts: Vec::with_capacity(accounts.saturating_mul(2)),
            payments: Vec::new(),
            prior_accounts: HashMap::with_capacity(accounts),
            prior_payments: HashMap::new(),
        }
    }

    /// Records that `address` is about to change, and its value before the
    /// block's first change (`None`: the block creates it).
    pub(crate) fn remember_account(
        &mut self,
        accounts: &HashMap<Address, Account>,
        address: Address,
    ) {
        self.accounts.push(address);
        self.prior_accounts
            .entry(address)
            .or_insert_with(|| accounts.get(&address).cloned());
    }

    /// Records that the payment `id` is about to change, likewise.
    pub(crate) fn remember_payment(&mut self, payments: &HashMap<Hash32, Payment>, id: Hash32) {
        self.payments.push(id);
        self.prior_payments
            .entry(id)
            .or_insert_with(|| payments.get(&id).cloned());
    }
}

impl Ledger {
    /// The state at height 0 from a genesis document, and what to persist.
    pub fn genesis(genesis: &Genesis) -> Result<(Ledger, AppliedBlock), GenesisError> {
        let wallets: Vec<(yuchain_proto::PublicKey, u64)> = match &genesis.load_test {
            None => Vec::new(),
            Some(load_test) => load_test
                .public_keys()?
                .into_iter()
                .map(|key| (key, load_test.balance))
                .collect(),
        };
        Ledger::genesis_with_wallets(genesis, &wallets)
    }

    /// Genesis plus class-1 personal wallets of the first operator, each
    /// funded by issuance into that operator's books. For benchmarks and
    /// load tests that need a million funded accounts without a million
    /// registrations; a real chain starts from [`Ledger::genesis`].
    #[doc(hidden)]
    pub fn genesis_with_wallets(
        genesis: &Genesis,
        wallets: &[(yuchain_proto::PublicKey, u64)],
    ) -> Result<(Ledger, AppliedBlock), GenesisError> {
        genesis.validate()?;
        let issuer_key = genesis.issuer_key()?;
        issuer_key
            .check_usable()
            .map_err(|e| GenesisError::Invalid(format!("issuer_public_key: {e}")))?;
        let mut ledger = Ledger {
            chain_id: genesis.chain_id.clone(),
            params: genesis.params.clone(),
            accounts: HashMap::new(),
            payments: HashMap::new(),
            totals: ChainTotals {
                height: 0,
                timestamp_ms: genesis.genesis_time_ms,
                issued: 0,
                redeemed: 0,
                block_hash: Hash32::ZERO,
                receipts_root: Hash32::ZERO,
            },
            tree: StateTree::default(),
        };
        let mut touched = Touched::default();
        let issuer = Account::new(issuer_key, AccountKind::Issuer);
        touched.accounts.push(issuer.address);
        ledger.accounts.insert(issuer.address, issuer);
        // The fee account belongs to the city treasury: the issuer's key signs
        // for it.
        let mut fees = Account::new(issuer_key, AccountKind::Fee);
        fees.address = fee_account();
        touched.accounts.push(fees.address);
        ledger.accounts.insert(fees.address, fees);
        for (name, key) in genesis.operator_keys()? {
            key.check_usable()
                .map_err(|e| GenesisError::Invalid(format!("operator {name:?}: {e}")))?;
            let mut operator = Account::new(key, AccountKind::Operator);
            operator.name = name;
            touched.accounts.push(operator.address);
            ledger.accounts.insert(operator.address, operator);
        }
        let first_operator = genesis
            .operator_keys()?
            .first()
            .map(|(_, key)| Address::from_public_key(key));
        for (key, balance) in wallets {
            let operator = first_operator
                .ok_or_else(|| GenesisError::Invalid("funded wallets need an operator".into()))?;
            let mut wallet = Account::new(*key, AccountKind::Personal);
            wallet.tier = yuchain_proto::pb::KycTier::Class1;
            wallet.operator = Some(operator);
            wallet.balance = *balance;
            ledger.totals.issued = ledger.totals.issued.checked_add(*balance).ok_or_else(|| {
                GenesisError::Invalid("funded wallets overflow the supply".into())
            })?;
            touched.accounts.push(wallet.address);
            ledger.accounts.insert(wallet.address, wallet);
        }
        let genesis_hash = genesis.hash()?;
        ledger.totals.block_hash = genesis_hash;
        let (state_changes, tree_diff) = ledger.commit_state(0, touched);
        let applied = AppliedBlock {
            height: 0,
            block_hash: genesis_hash,
            state_root: ledger.tree.root(),
            receipts_root: Hash32::ZERO,
            receipts: Vec::new(),
            state_changes,
            tree_diff,
            history: Vec::new(),
        };
        Ok((ledger, applied))
    }

    /// Rebuilds a ledger from every stored state entry, and checks that the
    /// recomputed root is the head's `state_root`.
    pub fn load(
        genesis: &Genesis,
        state: Vec<(Vec<u8>, Vec<u8>)>,
        head_state_root: Hash32,
    ) -> Result<Ledger, LoadError> {
        let mut accounts = HashMap::new();
        let mut payments = HashMap::new();
        let mut totals = None;
        let mut values = Vec::with_capacity(state.len());
        for (key, value) in state {
            let (state_key, record) = decode_entry(&key, &value)?;
            match record {
                StateValue::Account(account) => {
                    accounts.insert(account.address, account);
                }
                StateValue::Payment(payment) => {
                    if let StateKey::Payment(id) = state_key {
                        payments.insert(id, payment);
                    }
                }
                StateValue::Chain(chain) => totals = Some(chain),
            }
            values.push((state_key, value));
        }
        let totals = totals.ok_or_else(|| LoadError::Corrupt {
            what: "chain state".into(),
            reason: "missing".into(),
        })?;
        let tree = StateTree::load(values, head_state_root)?;
        Ok(Ledger {
            chain_id: genesis.chain_id.clone(),
            params: genesis.params.clone(),
            accounts,
            payments,
            totals,
            tree,
        })
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Height of the last applied block (0: genesis).
    pub fn height(&self) -> u64 {
        self.totals.height
    }

    /// Hash of the last applied block (or of the genesis document).
    pub fn last_block_hash(&self) -> Hash32 {
        self.totals.block_hash
    }

    /// The current state root.
    pub fn state_root(&self) -> Hash32 {
        self.tree.root()
    }

    /// Issued, redeemed, height and time.
    pub fn totals(&self) -> ChainTotals {
        self.totals
    }

    /// An account.
    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    /// How many accounts exist.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// A merchant payment.
    pub fn payment(&self, id: &Hash32) -> Option<&Payment> {
        self.payments.get(id)
    }

    /// A proof of an entry (or its absence) against the current root.
    pub fn prove(&self, key: &StateKey) -> pb::StateProof {
        let value = match key {
            StateKey::Account(address) => self.accounts.get(address).map(|a| encode(&a.to_proto())),
            StateKey::Payment(id) => self.payments.get(id).map(|p| encode(&p.to_proto())),
            StateKey::Chain => Some(encode(&self.totals.to_proto())),
        };
        self.tree.prove(key, value)
    }

    /// The sum of all balances, fee account included.
    pub fn balance_sum(&self) -> u128 {
        self.accounts
            .values()
            .map(|account| u128::from(account.balance))
            .sum()
    }

    /// Checks conservation: the sum of all balances equals issued minus
    /// redeemed. A failure is a bug in the ledger, never bad input.
    pub fn check_conservation(&self) -> Result<(), String> {
        let sum = self.balance_sum();
        let outstanding = u128::from(self.totals.outstanding());
        if sum == outstanding {
            Ok(())
        } else {
            Err(format!(
                "balances sum to {sum} fen but {outstanding} fen are outstanding"
            ))
        }
    }

    /// Builds the next block from signed transactions: fills the header's
    /// height, parent, roots and counts. (The proposer's job; a real proposer
    /// takes the transactions from its mempool.)
    pub fn build_block(
        &self,
        transactions: Vec<pb::SignedTransaction>,
        timestamp_ms: u64,
    ) -> pb::Block {
        let ids: Vec<Hash32> = transactions
            .iter()
            .map(|signed| tx::tx_id(&signed.body, &signed.signature))
            .collect();
        pb::Block {
            header: Some(self.build_header(&ids, timestamp_ms)),
            transactions,
        }
    }

    /// The header of the next block, carrying the transactions with `ids`.
    pub fn build_header(&self, ids: &[Hash32], timestamp_ms: u64) -> pb::BlockHeader {
        pb::BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height().saturating_add(1),
            parent_hash: self.totals.block_hash.0.to_vec(),
            timestamp_ms,
            parent_state_root: self.state_root().0.to_vec(),
            parent_receipts_root: self.totals.receipts_root.0.to_vec(),
            tx_root: tx_root(ids).0.to_vec(),
            tx_count: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        }
    }

    /// Checks a block against this ledger and verifies every signature
    /// (batched, on all cores), without changing anything. Returns the
    /// verified transactions for [`Ledger::apply_checked`].
    pub fn check_block(&self, block: &pb::Block) -> Result<Vec<VerifiedTx>, BlockError> {
        let header = block.header.as_ref().ok_or(BlockError::MissingHeader)?;
        self.check_header(header, block.transactions.len())?;
        let results = tx::decode_and_verify_all(&block.transactions, &self.chain_id);
        let mut decoded = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            decoded.push(result.map_err(|error| BlockError::InvalidTransaction { index, error })?);
        }
        let ids: Vec<Hash32> = decoded.iter().map(|tx| tx.id).collect();
        let root = tx_root(&ids);
        let header_root = hash_field(&header.tx_root);
        if header_root != root {
            return Err(BlockError::RootMismatch {
                field: "tx_root",
                expected: root,
                got: header_root,
            });
        }
        Ok(decoded)
    }

    /// Checks and applies a block: [`Ledger::check_block`] then
    /// [`Ledger::apply_checked`]. A refused block changes nothing.
    pub fn apply_block(&mut self, block: &pb::Block) -> Result<AppliedBlock, BlockError> {
        let decoded = self.check_block(block)?;
        let header = block.header.as_ref().ok_or(BlockError::MissingHeader)?;
        self.apply_checked(header, &decoded)
    }

    /// Applies a block whose transactions were already decoded and verified
    /// (by [`Ledger::check_block`], or by the node's admission pipeline, which
    /// verifies each transaction once): a [`VerifiedTx`] only comes from
    /// signature verification. The header is checked again.
    pub fn apply_checked(
        &mut self,
        header: &pb::BlockHeader,
        transactions: &[VerifiedTx],
    ) -> Result<AppliedBlock, BlockError> {
        self.check_header(header, transactions.len())?;
        let totals_before = self.totals;
        let (receipts, history, touched) = self.execute_all(header, transactions);
        self.finish_block(header, totals_before, receipts, history, touched)
    }

    /// Checks that an executed block conserved money and commits it; a block
    /// that did not is undone and refused.
    pub(crate) fn finish_block(
        &mut self,
        header: &pb::BlockHeader,
        totals_before: ChainTotals,
        receipts: Vec<pb::Receipt>,
        history: Vec<(Address, u32, Hash32)>,
        mut touched: Touched,
    ) -> Result<AppliedBlock, BlockError> {
        touched.accounts.sort_unstable();
        touched.accounts.dedup();
        if let Err(error) = self.check_block_conservation(header.height, &touched, &totals_before) {
            self.undo(touched, totals_before);
            return Err(error);
        }
        let height = header.height;
        let block_hash = block_hash(header);
        let receipts_root = receipts_root(&receipts);
        self.totals.height = height;
        self.totals.timestamp_ms = header.timestamp_ms;
        self.totals.block_hash = block_hash;
        self.totals.receipts_root = receipts_root;
        let (state_changes, tree_diff) = self.commit_state(height, touched);
        Ok(AppliedBlock {
            height,
            block_hash,
            state_root: self.tree.root(),
            receipts_root,
            receipts,
            state_changes,
            tree_diff,
            history,
        })
    }

    /// Conservation over one block, from what it changed alone: the balances
    /// of the accounts it touched moved by exactly what it issued minus what
    /// it redeemed. (With conservation at genesis, this keeps the sum of all
    /// balances equal to issued minus redeemed at every height.)
    fn check_block_conservation(
        &self,
        height: u64,
        touched: &Touched,
        totals_before: &ChainTotals,
    ) -> Result<(), BlockError> {
        // Each term is below 2^64 and a block touches fewer than 2^63
        // accounts, so the i128 sums cannot overflow.
        let mut balance_delta: i128 = 0;
        for address in &touched.accounts {
            let after = self.accounts.get(address).map_or(0, |a| a.balance);
            let before = touched
                .prior_accounts
                .get(address)
                .and_then(|prior| prior.as_ref())
                .map_or(0, |a| a.balance);
            balance_delta += i128::from(after) - i128::from(before);
        }
        let issued = i128::from(self.totals.issued) - i128::from(totals_before.issued);
        let redeemed = i128::from(self.totals.redeemed) - i128::from(totals_before.redeemed);
        let supply_delta = issued - redeemed;
        if balance_delta == supply_delta {
            Ok(())
        } else {
            Err(BlockError::ConservationViolated {
                height,
                balance_delta,
                supply_delta,
            })
        }
    }

    /// Puts back every account, payment and total a block changed.
    fn undo(&mut self, touched: Touched, totals_before: ChainTotals) {
        // Each key is restored on its own, so the order does not matter.
        for (address, prior) in touched.prior_accounts {
            match prior {
                Some(account) => self.accounts.insert(address, account),
                None => self.accounts.remove(&address),
            };
        }
        for (id, prior) in touched.prior_payments {
            match prior {
                Some(payment) => self.payments.insert(id, payment),
                None => self.payments.remove(&id),
            };
        }
        self.totals = totals_before;
    }

    /// Executes transactions with no header checks and no state commitment,
    /// leaving the tree behind the accounts: only for measuring execution
    /// alone. A ledger used this way must not apply blocks afterwards.
    #[doc(hidden)]
    pub fn execute_without_commitment(
        &mut self,
        header: &pb::BlockHeader,
        transactions: &[VerifiedTx],
    ) -> Vec<pb::Receipt> {
        self.execute_all(header, transactions).0
    }

    /// Runs every transaction of a block, in order.
    pub(crate) fn execute_all(
        &mut self,
        header: &pb::BlockHeader,
        transactions: &[VerifiedTx],
    ) -> (Vec<pb::Receipt>, Vec<(Address, u32, Hash32)>, Touched) {
        let height = header.height;
        let day = shanghai_day(header.timestamp_ms);
        let context = crate::exec::Context {
            height,
            day,
            year: civil_year(day),
        };
        let mut touched = Touched::with_capacity(transactions.len());
        let mut receipts = Vec::with_capacity(transactions.len());
        let mut history = Vec::new();
        for (index, tx) in transactions.iter().enumerate() {
            let index = u32::try_from(index).expect("a block holds fewer than 2^32 transactions");
            let (code, fee) = self.execute(tx, &context, &mut touched);
            if consumes_sequence(code) {
                for account in crate::exec::participants(tx, self) {
                    history.push((account, index, tx.id));
                }
            }
            receipts.push(pb::Receipt {
                tx_id: tx.id.0.to_vec(),
                code: code as i32,
                fee,
                height,
                index,
            });
        }
        (receipts, history, touched)
    }

    fn check_header(&self, header: &pb::BlockHeader, tx_count: usize) -> Result<(), BlockError> {
        if header.chain_id != self.chain_id {
            return Err(BlockError::WrongChain {
                expected: self.chain_id.clone(),
                got: header.chain_id.chars().take(64).collect(),
            });
        }
        let expected_height = self.height().saturating_add(1);
        if header.height != expected_height {
            return Err(BlockError::WrongHeight {
                expected: expected_height,
                got: header.height,
            });
        }
        let parent = hash_field(&header.parent_hash);
        if parent != self.totals.block_hash {
            return Err(BlockError::WrongParent {
                expected: self.totals.block_hash,
                got: parent,
            });
        }
        if header.timestamp_ms < self.totals.timestamp_ms {
            return Err(BlockError::TimeWentBack {
                parent: self.totals.timestamp_ms,
                got: header.timestamp_ms,
            });
        }
        for (field, expected, got) in [
            (
                "parent_state_root",
                self.state_root(),
                &header.parent_state_root,
            ),
            (
                "parent_receipts_root",
                self.totals.receipts_root,
                &header.parent_receipts_root,
            ),
        ] {
            let got = hash_field(got);
            if got != expected {
                return Err(BlockError::RootMismatch {
                    field,
                    expected,
                    got,
                });
            }
        }
        if tx_count > TRANSACTIONS_PER_BLOCK_MAX {
            return Err(BlockError::TooManyTransactions {
                count: tx_count,
                limit: TRANSACTIONS_PER_BLOCK_MAX,
            });
        }
        if usize::try_from(header.tx_count).ok() != Some(tx_count) {
            return Err(BlockError::TxCountMismatch {
                header: header.tx_count,
                body: tx_count,
            });
        }
        Ok(())
    }

    /// Writes the touched entries and the chain entry into the tree as
    /// version `height`, and returns what to persist.
    fn commit_state(&mut self, height: u64, touched: Touched) -> (StateChanges, TreeDiff) {
        let Touched {
            mut accounts,
            mut payments,
            ..
        } = touched;
        accounts.sort_unstable();
        accounts.dedup();
        payments.sort_unstable();
        payments.dedup();
        let accounts: Vec<(StateKey, Option<Vec<u8>>)> = accounts
            .par_iter()
            .map(|address| {
                let account = self.accounts.get(address).expect("touched accounts exist");
                (
                    StateKey::Account(*address),
                    Some(encode(&account.to_proto())),
                )
            })
            .collect();
        let mut entries = accounts;
        entries.reserve(payments.len() + 1);
        for id in payments {
            let payment = self.payments.get(&id).expect("touched payments exist");
            entries.push((StateKey::Payment(id), Some(encode(&payment.to_proto()))));
        }
        assert!(
            height == self.totals.height,
            "the chain entry names the height"
        );
        entries.push((StateKey::Chain, Some(encode(&self.totals.to_proto()))));
        let diff = self.tree.update(&entries);
        let state_changes = entries
            .into_iter()
            .map(|(key, value)| (key.to_bytes(), value))
            .collect();
        (state_changes, diff)
    }
}

/// A 32-byte hash field of a header; anything else reads as a hash no node
/// has, so it fails the comparison that follows.
fn hash_field(bytes: &[u8]) -> Hash32 {
    Hash32::from_slice(bytes).unwrap_or(Hash32([0xff; 32]))
}
