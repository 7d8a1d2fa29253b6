//! Properties over random blocks: conservation and determinism.

use proptest::prelude::*;
use yuchain_proto::SigningKey;
use yuchain_proto::pb::{self, KycTier, MerchantCategory};

use crate::testkit::*;

const WALLETS: usize = 6;

/// A random operation between the fixture's wallets.
#[derive(Clone, Debug)]
enum Op {
    Transfer { from: usize, to: usize, amount: u64 },
    Pay { from: usize, amount: u64 },
    Refund { amount: u64 },
    Issue { amount: u64 },
    Redeem { amount: u64 },
    Freeze { wallet: usize },
    Unfreeze { wallet: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![1u64..1_000, 1u64..3_000_000, Just(u64::MAX)];
    prop_oneof![
        6 => (0..WALLETS, 0..WALLETS, amount.clone()).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        3 => (0..WALLETS, amount.clone()).prop_map(|(from, amount)| Op::Pay { from, amount }),
        2 => amount.clone().prop_map(|amount| Op::Refund { amount }),
        1 => amount.clone().prop_map(|amount| Op::Issue { amount }),
        1 => amount.prop_map(|amount| Op::Redeem { amount }),
        1 => (0..WALLETS).prop_map(|wallet| Op::Freeze { wallet }),
        1 => (0..WALLETS).prop_map(|wallet| Op::Unfreeze { wallet }),
    ]
}

struct World {
    chain: TestChain,
    wallets: Vec<SigningKey>,
    shop: SigningKey,
    payments: Vec<yuchain_proto::Hash32>,
}

fn new_world() -> World {
    let mut chain = TestChain::new(1);
    let bank = chain.operators[0].clone();
    let issuer = chain.issuer.clone();
    let wallets: Vec<SigningKey> = (0..WALLETS)
        .map(|i| SigningKey::for_test(&format!("w{i}")))
        .collect();
    let shop = SigningKey::for_test("shop");
    let mut txs = vec![chain.tx(&issuer, issue(address_of(&bank), 100_000_000))];
    let tiers = [
        KycTier::Class1,
        KycTier::Class2,
        KycTier::Class3,
        KycTier::Class4,
    ];
    for (i, wallet) in wallets.iter().enumerate() {
        txs.push(chain.tx(&bank, register_personal(wallet, tiers[i % 4])));
    }
    txs.push(chain.tx(&bank, register_merchant(&shop, MerchantCategory::Retail)));
    for wallet in &wallets {
        txs.push(chain.tx(&bank, transfer(address_of(wallet), 500_000, "")));
    }
    chain.apply(txs).expect("setup");
    World {
        chain,
        wallets,
        shop,
        payments: Vec::new(),
    }
}

/// Turns ops into signed transactions. Sequence numbers are tracked
/// optimistically; ops that fail still consume them, as the ledger does.
fn sign_ops(world: &mut World, ops: &[Op]) -> Vec<pb::SignedTransaction> {
    let bank = world.chain.operators[0].clone();
    let bank_address = address_of(&bank);
    let issuer = world.chain.issuer.clone();
    let mut txs = Vec::new();
    for op in ops {
        let tx = match op {
            Op::Transfer { from, to, amount } => {
                let to = address_of(&world.wallets[*to]);
                let from = world.wallets[*from].clone();
                world.chain.tx(&from, transfer(to, *amount, ""))
            }
            Op::Pay { from, amount } => {
                let from = world.wallets[*from].clone();
                let tx = world.chain.tx(
                    &from,
                    merchant_payment(address_of(&world.shop), *amount, "o"),
                );
                world.payments.push(id_of(&tx));
                tx
            }
            Op::Refund { amount } => {
                let Some(id) = world.payments.last().copied() else {
                    continue;
                };
                let shop = world.shop.clone();
                world.chain.tx(&shop, refund(id, *amount))
            }
            Op::Issue { amount } => world.chain.tx(&issuer, issue(bank_address, *amount)),
            Op::Redeem { amount } => world.chain.tx(&issuer, redeem(bank_address, *amount)),
            Op::Freeze { wallet } => {
                let wallet = address_of(&world.wallets[*wallet]);
                world.chain.tx(&bank, freeze(wallet, pb::FreezeMode::Full))
            }
            Op::Unfreeze { wallet } => {
                let wallet = address_of(&world.wallets[*wallet]);
                world.chain.tx(&bank, unfreeze(wallet))
            }
        };
        txs.push(tx);
    }
    txs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// After every block, balances sum to issued minus redeemed.
    #[test]
    fn money_is_conserved_over_random_blocks(blocks in prop::collection::vec(prop::collection::vec(op(), 0..24), 1..6)) {
        let mut world = new_world();
        for ops in &blocks {
            let txs = sign_ops(&mut world, ops);
            world.chain.apply(txs).expect("a block of valid signatures applies");
            prop_assert!(world.chain.ledger.check_conservation().is_ok());
            for id in &world.payments {
                if let Some(payment) = world.chain.ledger.payment(id) {
                    prop_assert!(payment.refunded <= payment.amount);
                }
            }
        }
    }

    /// Two ledgers fed the same blocks end with the same roots and receipts,
    /// and a third rebuilt from the persisted changes agrees.
    #[test]
    fn ledgers_fed_the_same_blocks_agree(blocks in prop::collection::vec(prop::collection::vec(op(), 0..16), 1..5)) {
        let mut world = new_world();
        let mut twin = new_world();
        for ops in &blocks {
            let txs = sign_ops(&mut world, ops);
            let block = world.chain.ledger.build_block(txs, world.chain.time_ms);
            world.chain.time_ms += 1_000;
            let a = world.chain.ledger.apply_block(&block).expect("applies");
            let b = twin.chain.ledger.apply_block(&block).expect("applies on the twin");
            prop_assert_eq!(a.state_root, b.state_root);
            prop_assert_eq!(a.receipts, b.receipts);
            prop_assert_eq!(a.state_changes, b.state_changes);
            prop_assert_eq!(a.tree_diff, b.tree_diff);
        }
    }
}
