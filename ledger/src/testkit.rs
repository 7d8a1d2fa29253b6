//! A small chain driver for tests, benchmarks and the demo: fixture keys,
//! transaction building with sequence tracking, and blocks applied in order.
//! Not for production keys: every key derives from a public label.

use std::collections::HashMap;

use yuchain_proto::pb::{self, transaction_body::Action};
use yuchain_proto::{Address, Hash32, SigningKey, tx};

use crate::error::BlockError;
use crate::ledger::{AppliedBlock, Ledger};
use crate::params::{ChainParams, Genesis, GenesisOperator};

/// The chain id of test chains.
pub const TEST_CHAIN_ID: &str = "yuchain-test";
/// 2026-11-26 09:00 in Beijing, as milliseconds since the Unix epoch.
pub const TEST_GENESIS_TIME_MS: u64 = 1_795_654_800_000;
/// How far ahead of the current height test transactions expire.
pub const EXPIRY_WINDOW: u64 = 100;

/// A chain under test.
pub struct TestChain {
    /// The ledger.
    pub ledger: Ledger,
    /// The genesis document.
    pub genesis: Genesis,
    /// What genesis wrote, to persist as height 0.
    pub genesis_applied: AppliedBlock,
    /// The issuer's key.
    pub issuer: SigningKey,
    /// The operators' keys, in genesis order.
    pub operators: Vec<SigningKey>,
    /// The timestamp the next block gets.
    pub time_ms: u64,
    /// How much block time advances per block.
    pub block_interval_ms: u64,
    sequences: HashMap<Address, u64>,
}

/// The address of a key.
pub fn address_of(key: &SigningKey) -> Address {
    Address::from_public_key(&key.public_key())
}

impl TestChain {
    /// A chain with the default parameters and `operators` banks.
    pub fn new(operators: usize) -> TestChain {
        TestChain::with_params(operators, ChainParams::default())
    }

    /// A chain with the given parameters.
    pub fn with_params(operators: usize, params: ChainParams) -> TestChain {
        let names: Vec<String> = (0..operators).map(|i| format!("Bank {i}")).collect();
        TestChain::with_operators(&names, params)
    }

    /// A chain whose operators have these names.
    pub fn with_operators(names: &[String], params: ChainParams) -> TestChain {
        let issuer = SigningKey::for_test("issuer");
        let operators: Vec<SigningKey> = (0..names.len())
            .map(|i| SigningKey::for_test(&format!("operator-{i}")))
            .collect();
        let genesis = Genesis {
            chain_id: TEST_CHAIN_ID.to_string(),
            genesis_time_ms: TEST_GENESIS_TIME_MS,
            issuer_public_key: hex::encode(issuer.public_key().0),
            operators: operators
                .iter()
                .enumerate()
                .map(|(i, key)| GenesisOperator {
                    name: names[i].clone(),
                    public_key: hex::encode(key.public_key().0),
                })
                .collect(),
            params,
            load_test: None,
        };
        let (ledger, genesis_applied) =
            Ledger::genesis(&genesis).expect("the test genesis is valid");
        TestChain {
            ledger,
            genesis,
            genesis_applied,
            issuer,
            operators,
            time_ms: TEST_GENESIS_TIME_MS + 1_000,
            block_interval_ms: 1_000,
            sequences: HashMap::new(),
        }
    }

    /// A body from `signer` with the next tracked sequence number, a fee
    /// ceiling of `max_fee`, expiring [`EXPIRY_WINDOW`] blocks ahead.
    pub fn body(&self, signer: &SigningKey, action: Action) -> pb::TransactionBody {
        let sender = address_of(signer);
        pb::TransactionBody {
            chain_id: self.ledger.chain_id().to_string(),
            sender: sender.0.to_vec(),
            public_key: signer.public_key().0.to_vec(),
            sequence: self.sequences.get(&sender).copied().unwrap_or(0),
            expiry_height: self.ledger.height() + EXPIRY_WINDOW,
            max_fee: u64::MAX,
            action: Some(action),
        }
    }

    /// Signs `action` from `signer`'s own account, tracking its sequence.
    pub fn tx(&mut self, signer: &SigningKey, action: Action) -> pb::SignedTransaction {
        let body = self.body(signer, action);
        self.bump(address_of(signer));
        tx::sign(&body, signer)
    }

    /// Signs `action` for the account at `sender` (whose key may have been
    /// rotated) with `signer`, tracking the account's sequence.
    pub fn tx_for(
        &mut self,
        sender: Address,
        signer: &SigningKey,
        action: Action,
    ) -> pb::SignedTransaction {
        let mut body = self.body(signer, action);
        body.sender = sender.0.to_vec();
        body.sequence = self.sequences.get(&sender).copied().unwrap_or(0);
        self.bump(sender);
        tx::sign(&body, signer)
    }

    /// Forgets one use of `sender`'s sequence (after a transaction that did
    /// not consume it).
    pub fn unbump(&mut self, sender: Address) {
        if let Some(sequence) = self.sequences.get_mut(&sender) {
            *sequence = sequence.saturating_sub(1);
        }
    }

    fn bump(&mut self, sender: Address) {
        *self.sequences.entry(sender).or_insert(0) += 1;
    }

    /// Builds the next block from `transactions` and applies it.
    pub fn apply(
        &mut self,
        transactions: Vec<pb::SignedTransaction>,
    ) -> Result<AppliedBlock, BlockError> {
        self.apply_returning_block(transactions)
            .map(|(_, applied)| applied)
    }

    /// Like [`TestChain::apply`], also returning the block.
    pub fn apply_returning_block(
        &mut self,
        transactions: Vec<pb::SignedTransaction>,
    ) -> Result<(pb::Block, AppliedBlock), BlockError> {
        let block = self.ledger.build_block(transactions, self.time_ms);
        let applied = self.ledger.apply_block(&block)?;
        self.time_ms += self.block_interval_ms;
        Ok((block, applied))
    }

    /// The receipt codes of a block's transactions.
    pub fn codes(applied: &AppliedBlock) -> Vec<pb::ResultCode> {
        applied
            .receipts
            .iter()
            .map(|receipt| {
                pb::ResultCode::try_from(receipt.code).unwrap_or(pb::ResultCode::Unspecified)
            })
            .collect()
    }

    /// Balance of an account (0 if it does not exist).
    pub fn balance(&self, address: &Address) -> u64 {
        self.ledger
            .account(address)
            .map_or(0, |account| account.balance)
    }
}

/// `Issue` action.
pub fn issue(operator: Address, amount: u64) -> Action {
    Action::Issue(pb::Issue {
        operator: operator.0.to_vec(),
        amount,
    })
}

/// `Redeem` action.
pub fn redeem(operator: Address, amount: u64) -> Action {
    Action::Redeem(pb::Redeem {
        operator: operator.0.to_vec(),
        amount,
    })
}

/// `RegisterOperator` action.
pub fn register_operator(key: &SigningKey, name: &str) -> Action {
    Action::RegisterOperator(pb::RegisterOperator {
        public_key: key.public_key().0.to_vec(),
        name: name.to_string(),
    })
}

/// `RegisterWallet` action for a personal wallet.
pub fn register_personal(key: &SigningKey, tier: pb::KycTier) -> Action {
    Action::RegisterWallet(pb::RegisterWallet {
        public_key: key.public_key().0.to_vec(),
        kind: Some(pb::register_wallet::Kind::Personal(tier as i32)),
    })
}

/// `RegisterWallet` action for a merchant.
pub fn register_merchant(key: &SigningKey, category: pb::MerchantCategory) -> Action {
    Action::RegisterWallet(pb::RegisterWallet {
        public_key: key.public_key().0.to_vec(),
        kind: Some(pb::register_wallet::Kind::Merchant(category as i32)),
    })
}

/// `RegisterWallet` action for a company.
pub fn register_corporate(key: &SigningKey, name: &str) -> Action {
    Action::RegisterWallet(pb::RegisterWallet {
        public_key: key.public_key().0.to_vec(),
        kind: Some(pb::register_wallet::Kind::Corporate(pb::CorporateWallet {
            name: name.to_string(),
        })),
    })
}

/// `SetTier` action.
pub fn set_tier(wallet: Address, tier: pb::KycTier) -> Action {
    Action::SetTier(pb::SetTier {
        wallet: wallet.0.to_vec(),
        tier: tier as i32,
    })
}

/// `Freeze` action.
pub fn freeze(wallet: Address, mode: pb::FreezeMode) -> Action {
    Action::Freeze(pb::Freeze {
        wallet: wallet.0.to_vec(),
        mode: mode as i32,
    })
}

/// `Unfreeze` action.
pub fn unfreeze(wallet: Address) -> Action {
    Action::Unfreeze(pb::Unfreeze {
        wallet: wallet.0.to_vec(),
    })
}

/// `RotateKey` action.
pub fn rotate_key(wallet: Address, new_key: &SigningKey) -> Action {
    Action::RotateKey(pb::RotateKey {
        wallet: wallet.0.to_vec(),
        new_public_key: new_key.public_key().0.to_vec(),
    })
}

/// `CloseWallet` action.
pub fn close_wallet(wallet: Address) -> Action {
    Action::CloseWallet(pb::CloseWallet {
        wallet: wallet.0.to_vec(),
    })
}

/// `Transfer` action.
pub fn transfer(to: Address, amount: u64, memo: &str) -> Action {
    Action::Transfer(pb::Transfer {
        to: to.0.to_vec(),
        amount,
        memo: memo.to_string(),
    })
}

/// `MerchantPayment` action.
pub fn merchant_payment(merchant: Address, amount: u64, order_id: &str) -> Action {
    Action::MerchantPayment(pb::MerchantPayment {
        merchant: merchant.0.to_vec(),
        amount,
        order_id: order_id.to_string(),
    })
}

/// `Refund` action.
pub fn refund(payment_id: Hash32, amount: u64) -> Action {
    Action::Refund(pb::Refund {
        payment_id: payment_id.0.to_vec(),
        amount,
    })
}

/// `SuspendOperator` action.
pub fn suspend_operator(operator: Address) -> Action {
    Action::SuspendOperator(pb::SuspendOperator {
        operator: operator.0.to_vec(),
    })
}

/// `ReinstateOperator` action.
pub fn reinstate_operator(operator: Address) -> Action {
    Action::ReinstateOperator(pb::ReinstateOperator {
        operator: operator.0.to_vec(),
    })
}

/// `RotateOperatorKey` action.
pub fn rotate_operator_key(operator: Address, new_key: &SigningKey) -> Action {
    Action::RotateOperatorKey(pb::RotateOperatorKey {
        operator: operator.0.to_vec(),
        new_public_key: new_key.public_key().0.to_vec(),
    })
}

/// `RotateIssuerKey` action.
pub fn rotate_issuer_key(new_key: &SigningKey) -> Action {
    Action::RotateIssuerKey(pb::RotateIssuerKey {
        new_public_key: new_key.public_key().0.to_vec(),
    })
}

/// The id of a signed transaction.
pub fn id_of(signed: &pb::SignedTransaction) -> Hash32 {
    tx::tx_id(&signed.body, &signed.signature)
}

/// A synthetic transfer load over many funded accounts, for benchmarks (with
/// the `bench-load` feature only, because it passes unsigned transactions
/// off as verified): a
/// ledger from [`Ledger::genesis_with_wallets`] and blocks of already-decoded
/// transfers between distinct accounts (a fixed-stride walk, no rng). The
/// keys are not curve points and nothing is signed: signatures are checked
/// before execution and measured on their own.
#[cfg(feature = "bench-load")]
pub struct TransferLoad {
    /// The ledger, at the height of the last block applied.
    pub ledger: Ledger,
    /// The genesis document.
    pub genesis: Genesis,
    /// What genesis wrote.
    pub genesis_applied: AppliedBlock,
    keys: Vec<yuchain_proto::PublicKey>,
    addresses: Vec<Address>,
    sequences: Vec<u64>,
    next: u64,
    /// The next block's timestamp.
    pub time_ms: u64,
}

#[cfg(feature = "bench-load")]
impl TransferLoad {
    /// `accounts` class-1 wallets holding `balance` fen each.
    pub fn new(accounts: usize, balance: u64) -> TransferLoad {
        let genesis = TestChain::new(1).genesis;
        let keys: Vec<yuchain_proto::PublicKey> = (0..accounts)
            .map(|index| {
                let mut bytes = [0u8; 32];
                bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
                bytes[31] = 0x42;
                yuchain_proto::PublicKey(bytes)
            })
            .collect();
        let wallets: Vec<(yuchain_proto::PublicKey, u64)> =
            keys.iter().map(|key| (*key, balance)).collect();
        let (ledger, genesis_applied) =
            Ledger::genesis_with_wallets(&genesis, &wallets).expect("the load's genesis is valid");
        TransferLoad {
            ledger,
            addresses: keys.iter().map(Address::from_public_key).collect(),
            sequences: vec![0; accounts],
            keys,
            next: 0,
            time_ms: genesis.genesis_time_ms + 1_000,
            genesis,
            genesis_applied,
        }
    }

    /// The next block: its header and `count` transfers of 1 fen.
    pub fn block(&mut self, count: usize) -> (pb::BlockHeader, Vec<tx::VerifiedTx>) {
        let accounts = self.keys.len() as u64;
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let from = (self.next.wrapping_mul(7_919) % accounts) as usize;
            let to = (self.next.wrapping_mul(7_919).wrapping_add(accounts / 2) % accounts) as usize;
            self.next += 1;
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&self.next.to_le_bytes());
            txs.push(tx::VerifiedTx::assume_verified_for_benchmarks(
                tx::DecodedTx {
                    id: Hash32(id),
                    sender: self.addresses[from],
                    public_key: self.keys[from],
                    signature: yuchain_proto::Signature([0; 64]),
                    sequence: self.sequences[from],
                    expiry_height: u64::MAX,
                    max_fee: 0,
                    action: tx::Action::Transfer {
                        to: self.addresses[to],
                        amount: 1,
                        memo: String::new(),
                    },
                },
            ));
            self.sequences[from] += 1;
        }
        let ids: Vec<Hash32> = txs.iter().map(|tx| tx.id).collect();
        let header = self.ledger.build_header(&ids, self.time_ms);
        self.time_ms += 1_000;
        (header, txs)
    }

    /// The address of account `index`.
    pub fn address(&self, index: usize) -> Address {
        self.addresses[index]
    }
}

/// `count` valid signatures by distinct keys on distinct messages, for the
/// benchmarks' same-run reference rate: (key, signature, message).
pub fn signed_messages(
    count: usize,
) -> Vec<(yuchain_proto::PublicKey, yuchain_proto::Signature, Vec<u8>)> {
    (0..count)
        .map(|index| {
            let key = SigningKey::for_test(&format!("reference {index}"));
            let message = format!("transfer {index}").into_bytes();
            (key.public_key(), key.sign(&message), message)
        })
        .collect()
}
