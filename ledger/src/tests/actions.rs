//! Every action's success path and every failure code, one scenario each.

use yuchain_proto::pb::{AccountStatus, FreezeMode, KycTier, MerchantCategory, ResultCode};
use yuchain_proto::{Address, SigningKey};

use crate::StateKey;
use crate::params::{ChainParams, FeeRule, fee_account};
use crate::testkit::*;

const YUAN: u64 = 100;

/// A chain with a funded bank, two class-2 wallets (alice with 1,000 yuan)
/// and a merchant.
struct Fixture {
    chain: TestChain,
    bank: SigningKey,
    alice: SigningKey,
    bob: SigningKey,
    shop: SigningKey,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_params(ChainParams::default())
    }

    fn with_params(params: ChainParams) -> Fixture {
        let mut chain = TestChain::with_params(2, params);
        let bank = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let alice = SigningKey::for_test("alice");
        let bob = SigningKey::for_test("bob");
        let shop = SigningKey::for_test("shop");
        let txs = vec![
            chain.tx(&issuer, issue(address_of(&bank), 1_000_000 * YUAN)),
            chain.tx(&bank, register_personal(&alice, KycTier::Class2)),
            chain.tx(&bank, register_personal(&bob, KycTier::Class2)),
            chain.tx(&bank, register_merchant(&shop, MerchantCategory::Catering)),
            chain.tx(&bank, transfer(address_of(&alice), 1_000 * YUAN, "top-up")),
        ];
        let applied = chain.apply(txs).expect("setup block");
        assert!(
            TestChain::codes(&applied)
                .iter()
                .all(|c| *c == ResultCode::Ok)
        );
        Fixture {
            chain,
            bank,
            alice,
            bob,
            shop,
        }
    }

    /// Applies one transaction and returns its code, checking conservation
    /// and that a failure changed nothing but the sender's sequence.
    fn run(
        &mut self,
        signer: &SigningKey,
        action: yuchain_proto::pb::transaction_body::Action,
    ) -> ResultCode {
        let sender = address_of(signer);
        self.run_for(sender, signer, action)
    }

    fn run_for(
        &mut self,
        sender: Address,
        signer: &SigningKey,
        action: yuchain_proto::pb::transaction_body::Action,
    ) -> ResultCode {
        let before = snapshot(&self.chain);
        let tx = self.chain.tx_for(sender, signer, action);
        let applied = self.chain.apply(vec![tx]).expect("block applies");
        let code = TestChain::codes(&applied)[0];
        self.chain
            .ledger
            .check_conservation()
            .expect("conservation");
        if code != ResultCode::Ok {
            let after = snapshot(&self.chain);
            assert_eq!(before.0, after.0, "a failed transaction moves no money");
            assert_eq!(before.2, after.2, "a failed transaction changes no payment");
            for (address, (status, key, sequence)) in &before.1 {
                let (status_after, key_after, sequence_after) = after.1[address];
                assert_eq!(*status, status_after, "{code:?} changed a status");
                assert_eq!(*key, key_after, "{code:?} changed a key");
                let consumed = crate::ledger::consumes_sequence(code) && *address == sender;
                assert_eq!(sequence + u64::from(consumed), sequence_after);
            }
            if !crate::ledger::consumes_sequence(code) {
                self.chain.unbump(sender);
            }
        }
        code
    }

    fn balance(&self, key: &SigningKey) -> u64 {
        self.chain.balance(&address_of(key))
    }
}

type Snapshot = (
    Vec<(Address, u64)>,
    std::collections::HashMap<Address, (AccountStatus, [u8; 32], u64)>,
    Vec<(yuchain_proto::Hash32, u64)>,
);

fn snapshot(chain: &TestChain) -> Snapshot {
    let mut balances: Vec<(Address, u64)> = chain
        .ledger
        .accounts
        .values()
        .map(|a| (a.address, a.balance))
        .collect();
    balances.sort();
    let meta = chain
        .ledger
        .accounts
        .values()
        .map(|a| (a.address, (a.status, a.auth_key.0, a.next_sequence)))
        .collect();
    let mut payments: Vec<_> = chain
        .ledger
        .payments
        .iter()
        .map(|(id, p)| (*id, p.refunded))
        .collect();
    payments.sort();
    (balances, meta, payments)
}

#[test]
fn issue_and_redeem_move_the_supply() {
    let mut f = Fixture::new();
    let issuer = f.chain.issuer.clone();
    let bank = address_of(&f.bank);
    assert_eq!(f.run(&issuer, issue(bank, 500)), ResultCode::Ok);
    assert_eq!(f.run(&issuer, redeem(bank, 200)), ResultCode::Ok);
    let totals = f.chain.ledger.totals();
    assert_eq!(totals.issued, 1_000_000 * YUAN + 500);
    assert_eq!(totals.redeemed, 200);
    // Only the issuer issues, only into operators, never more than held.
    let alice = f.alice.clone();
    assert_eq!(f.run(&alice, issue(bank, 1)), ResultCode::Unauthorized);
    assert_eq!(
        f.run(&issuer, issue(address_of(&f.alice), 1)),
        ResultCode::NotAnOperator
    );
    assert_eq!(
        f.run(&issuer, issue(Address::system("nobody"), 1)),
        ResultCode::UnknownAccount
    );
    let held = f.chain.balance(&bank);
    assert_eq!(
        f.run(&issuer, redeem(bank, held + 1)),
        ResultCode::InsufficientFunds
    );
    assert_eq!(f.run(&issuer, issue(bank, u64::MAX)), ResultCode::Overflow);
}

#[test]
fn registrations_need_the_right_authority_and_a_new_address() {
    let mut f = Fixture::new();
    let issuer = f.chain.issuer.clone();
    let new_bank = SigningKey::for_test("new bank");
    assert_eq!(
        f.run(&issuer, register_operator(&new_bank, "New Bank")),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&issuer, register_operator(&new_bank, "Again")),
        ResultCode::AccountExists
    );
    let carol = SigningKey::for_test("carol");
    assert_eq!(
        f.run(&new_bank, register_corporate(&carol, "Carol Ltd")),
        ResultCode::Ok
    );
    let account = f
        .chain
        .ledger
        .account(&address_of(&carol))
        .expect("registered");
    assert_eq!(account.operator, Some(address_of(&new_bank)));
    let bank = f.bank.clone();
    assert_eq!(
        f.run(&bank, register_personal(&carol, KycTier::Class4)),
        ResultCode::AccountExists
    );
    let alice = f.alice.clone();
    let dave = SigningKey::for_test("dave");
    assert_eq!(
        f.run(&alice, register_personal(&dave, KycTier::Class4)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&bank, register_operator(&dave, "x")),
        ResultCode::Unauthorized
    );
}

#[test]
fn transfers_move_money_and_respect_every_rule() {
    let mut f = Fixture::new();
    let (alice, bob) = (f.alice.clone(), f.bob.clone());
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 250 * YUAN, "dinner")),
        ResultCode::Ok
    );
    assert_eq!(f.balance(&alice), 750 * YUAN);
    assert_eq!(f.balance(&bob), 250 * YUAN);
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 751 * YUAN, "")),
        ResultCode::InsufficientFunds
    );
    assert_eq!(
        f.run(&alice, transfer(address_of(&alice), 1, "")),
        ResultCode::SelfTransfer
    );
    assert_eq!(
        f.run(&alice, transfer(Address::system("ghost"), 1, "")),
        ResultCode::UnknownAccount
    );
    let issuer = address_of(&f.chain.issuer);
    assert_eq!(
        f.run(&alice, transfer(issuer, 1, "")),
        ResultCode::InvalidArgument
    );
    assert_eq!(
        f.run(&alice, transfer(fee_account(), 1, "")),
        ResultCode::InvalidArgument
    );
}

#[test]
fn tier_limits_apply_to_sender_and_receiver() {
    let mut f = Fixture::new();
    let bank = f.bank.clone();
    let small = SigningKey::for_test("class 4");
    assert_eq!(
        f.run(&bank, register_personal(&small, KycTier::Class4)),
        ResultCode::Ok
    );
    let small_address = address_of(&small);
    // Receiver: class 4 holds at most 10,000 yuan.
    assert_eq!(
        f.run(&bank, transfer(small_address, 10_001 * YUAN, "")),
        ResultCode::BalanceLimitExceeded
    );
    assert_eq!(
        f.run(&bank, transfer(small_address, 10_000 * YUAN, "")),
        ResultCode::Ok
    );
    // Sender: 2,000 per payment, 5,000 per day.
    let bob = address_of(&f.bob);
    assert_eq!(
        f.run(&small, transfer(bob, 2_001 * YUAN, "")),
        ResultCode::PerPaymentLimitExceeded
    );
    assert_eq!(
        f.run(&small, transfer(bob, 2_000 * YUAN, "")),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&small, transfer(bob, 2_000 * YUAN, "")),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&small, transfer(bob, 1_001 * YUAN, "")),
        ResultCode::DailyLimitExceeded
    );
    assert_eq!(
        f.run(&small, transfer(bob, 1_000 * YUAN, "")),
        ResultCode::Ok
    );
    // The next Beijing day the daily counter starts again.
    f.chain.time_ms += 24 * 3600 * 1000;
    assert_eq!(
        f.run(&small, transfer(bob, 1_000 * YUAN, "")),
        ResultCode::Ok
    );
    // Moving to class 4 is refused while the balance is above its cap.
    let alice = address_of(&f.alice);
    assert_eq!(
        f.run(&bank, transfer(alice, 15_000 * YUAN, "")),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&bank, set_tier(alice, KycTier::Class4)),
        ResultCode::BalanceLimitExceeded
    );
    assert_eq!(
        f.run(&bank, set_tier(alice, KycTier::Class1)),
        ResultCode::Ok
    );
    assert_eq!(
        f.chain.ledger.account(&alice).map(|a| a.tier),
        Some(KycTier::Class1)
    );
}

#[test]
fn annual_limits_count_the_calendar_year() {
    let mut params = ChainParams::default();
    params.class_3.annual_max = Some(3_000 * YUAN);
    let mut f = Fixture::with_params(params);
    let bank = f.bank.clone();
    let saver = SigningKey::for_test("saver");
    assert_eq!(
        f.run(&bank, register_personal(&saver, KycTier::Class3)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&bank, transfer(address_of(&saver), 10_000 * YUAN, "")),
        ResultCode::Ok
    );
    let bob = address_of(&f.bob);
    for _ in 0..3 {
        assert_eq!(
            f.run(&saver, transfer(bob, 1_000 * YUAN, "")),
            ResultCode::Ok
        );
        f.chain.time_ms += 24 * 3600 * 1000;
    }
    assert_eq!(
        f.run(&saver, transfer(bob, 1, "")),
        ResultCode::AnnualLimitExceeded
    );
    // 2027-01-01 in Beijing.
    f.chain.time_ms = 1_798_732_800_000;
    assert_eq!(f.run(&saver, transfer(bob, 1, "")), ResultCode::Ok);
}

#[test]
fn freezes_stop_sending_and_receiving_as_set() {
    let mut f = Fixture::new();
    let (bank, alice, bob) = (f.bank.clone(), f.alice.clone(), f.bob.clone());
    let (alice_address, bob_address) = (address_of(&alice), address_of(&bob));
    assert_eq!(
        f.run(&bank, freeze(alice_address, FreezeMode::ReceiveOnly)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&alice, transfer(bob_address, 1, "")),
        ResultCode::SenderFrozen
    );
    assert_eq!(f.run(&bank, transfer(alice_address, 1, "")), ResultCode::Ok);
    assert_eq!(
        f.run(&bank, freeze(alice_address, FreezeMode::Full)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&bank, transfer(alice_address, 1, "")),
        ResultCode::RecipientFrozen
    );
    assert_eq!(f.run(&bank, unfreeze(alice_address)), ResultCode::Ok);
    assert_eq!(f.run(&alice, transfer(bob_address, 1, "")), ResultCode::Ok);
    // Only the wallet's own operator manages it.
    let other_bank = f.chain.operators[1].clone();
    assert_eq!(
        f.run(&other_bank, freeze(alice_address, FreezeMode::Full)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&bank, freeze(Address::system("ghost"), FreezeMode::Full)),
        ResultCode::UnknownAccount
    );
}

#[test]
fn a_lost_phone_is_recovered_by_rotating_the_key() {
    let mut f = Fixture::new();
    let (bank, alice) = (f.bank.clone(), f.alice.clone());
    let alice_address = address_of(&alice);
    let new_phone = SigningKey::for_test("alice new phone");
    assert_eq!(
        f.run(&bank, rotate_key(alice_address, &new_phone)),
        ResultCode::Ok
    );
    // The old key no longer signs for the account; the new one does, and
    // the address and balance stay.
    assert_eq!(
        f.run(&alice, transfer(address_of(&f.bob), 1, "")),
        ResultCode::WrongKey
    );
    let bob = address_of(&f.bob);
    assert_eq!(
        f.run_for(alice_address, &new_phone, transfer(bob, 1, "")),
        ResultCode::Ok
    );
    assert_eq!(f.chain.balance(&alice_address), 1_000 * YUAN - 1);
}

#[test]
fn wallets_close_only_at_zero_and_then_take_nothing() {
    let mut f = Fixture::new();
    let (bank, alice, bob) = (f.bank.clone(), f.alice.clone(), f.bob.clone());
    let alice_address = address_of(&alice);
    assert_eq!(
        f.run(&bank, close_wallet(alice_address)),
        ResultCode::NonzeroBalance
    );
    let all = f.balance(&alice);
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), all, "emptying")),
        ResultCode::Ok
    );
    assert_eq!(f.run(&bank, close_wallet(alice_address)), ResultCode::Ok);
    assert_eq!(
        f.run(&bank, transfer(alice_address, 1, "")),
        ResultCode::RecipientClosed
    );
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 1, "")),
        ResultCode::SenderClosed
    );
    assert_eq!(
        f.run(&bank, unfreeze(alice_address)),
        ResultCode::RecipientClosed
    );
    assert_eq!(
        f.run(&bank, set_tier(address_of(&f.shop), KycTier::Class1)),
        ResultCode::NotPersonal
    );
}

#[test]
fn merchant_payments_refund_partially_and_never_beyond_the_payment() {
    let mut f = Fixture::new();
    let (alice, shop, bob) = (f.alice.clone(), f.shop.clone(), f.bob.clone());
    let shop_address = address_of(&shop);
    let payment = f.chain.tx(
        &alice,
        merchant_payment(shop_address, 300 * YUAN, "order-42"),
    );
    let payment_id = id_of(&payment);
    let applied = f.chain.apply(vec![payment]).expect("block");
    assert_eq!(TestChain::codes(&applied), vec![ResultCode::Ok]);
    let record = f
        .chain
        .ledger
        .payment(&payment_id)
        .expect("recorded")
        .clone();
    assert_eq!(record.order_id, "order-42");
    assert_eq!(
        f.run(&alice, merchant_payment(address_of(&bob), 1, "x")),
        ResultCode::NotAMerchant
    );
    assert_eq!(f.run(&shop, refund(payment_id, 100 * YUAN)), ResultCode::Ok);
    assert_eq!(
        f.run(&shop, refund(payment_id, 201 * YUAN)),
        ResultCode::RefundExceedsPayment
    );
    assert_eq!(f.run(&bob, refund(payment_id, 1)), ResultCode::Unauthorized);
    assert_eq!(
        f.run(&shop, refund(yuchain_proto::Hash32([1; 32]), 1)),
        ResultCode::UnknownPayment
    );
    assert_eq!(f.run(&shop, refund(payment_id, 200 * YUAN)), ResultCode::Ok);
    assert_eq!(f.balance(&alice), 1_000 * YUAN);
    assert_eq!(f.balance(&shop), 0);
    assert_eq!(
        f.chain.ledger.payment(&payment_id).map(|p| p.refunded),
        Some(300 * YUAN)
    );
}

#[test]
fn fees_follow_the_schedule_and_the_fee_ceiling() {
    let mut params = ChainParams::default();
    params.fees.transfer = FeeRule {
        flat: 1,
        basis_points: 10,
        max: Some(50),
    };
    params.fees.administrative = FeeRule {
        flat: 7,
        basis_points: 0,
        max: None,
    };
    let mut f = Fixture::with_params(params);
    let (alice, bob, bank) = (f.alice.clone(), f.bob.clone(), f.bank.clone());
    let fees_before = f.chain.balance(&fee_account());
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 10_000, "")),
        ResultCode::Ok
    );
    // 1 + 10,000 × 10 / 10,000 = 11 fen.
    assert_eq!(f.balance(&alice), 1_000 * YUAN - 10_000 - 11);
    assert_eq!(f.chain.balance(&fee_account()), fees_before + 11);
    // A sender whose ceiling is below the fee is refused and pays nothing.
    let mut body = f.chain.body(&alice, transfer(address_of(&bob), 10_000, ""));
    body.max_fee = 10;
    let tx = yuchain_proto::tx::sign(&body, &alice);
    let applied = f.chain.apply(vec![tx]).expect("block");
    assert_eq!(TestChain::codes(&applied), vec![ResultCode::FeeTooLow]);
    assert_eq!(f.balance(&alice), 1_000 * YUAN - 10_000 - 11);
    // Administrative fees are charged to the operator.
    let reserve = f.balance(&bank);
    let eve = SigningKey::for_test("eve");
    assert_eq!(
        f.run(&bank, register_personal(&eve, KycTier::Class3)),
        ResultCode::Ok
    );
    assert_eq!(f.balance(&bank), reserve - 7);
}

#[test]
fn sequence_expiry_and_key_checks_change_nothing_at_all() {
    let mut f = Fixture::new();
    let (alice, bob) = (f.alice.clone(), f.bob.clone());
    let bob_address = address_of(&bob);
    // Replay: the same signed transaction twice.
    let tx = f.chain.tx(&alice, transfer(bob_address, 5, ""));
    let first = f.chain.apply(vec![tx.clone()]).expect("block");
    assert_eq!(TestChain::codes(&first), vec![ResultCode::Ok]);
    let replay = f.chain.apply(vec![tx]).expect("block");
    assert_eq!(TestChain::codes(&replay), vec![ResultCode::BadSequence]);
    // A future sequence.
    let mut body = f.chain.body(&alice, transfer(bob_address, 5, ""));
    body.sequence += 3;
    let future = f
        .chain
        .apply(vec![yuchain_proto::tx::sign(&body, &alice)])
        .expect("block");
    assert_eq!(TestChain::codes(&future), vec![ResultCode::BadSequence]);
    // Expired.
    let mut body = f.chain.body(&alice, transfer(bob_address, 5, ""));
    body.expiry_height = f.chain.ledger.height();
    let expired = f
        .chain
        .apply(vec![yuchain_proto::tx::sign(&body, &alice)])
        .expect("block");
    assert_eq!(TestChain::codes(&expired), vec![ResultCode::Expired]);
    // Unknown sender.
    let stranger = SigningKey::for_test("stranger");
    assert_eq!(
        f.run(&stranger, transfer(bob_address, 1, "")),
        ResultCode::UnknownSender
    );
    // Sequence numbers were not consumed: the next one still works.
    assert_eq!(f.run(&alice, transfer(bob_address, 5, "")), ResultCode::Ok);
    assert_eq!(f.balance(&bob), 10);
}

#[test]
fn a_block_with_an_invalid_transaction_is_refused_whole() {
    let mut f = Fixture::new();
    let (alice, bob) = (f.alice.clone(), f.bob.clone());
    let good = f.chain.tx(&alice, transfer(address_of(&bob), 5, ""));
    let mut forged = f.chain.tx(&alice, transfer(address_of(&bob), 5, ""));
    forged.signature[10] ^= 1;
    let root = f.chain.ledger.state_root();
    let height = f.chain.ledger.height();
    let result = f.chain.apply(vec![good, forged]);
    assert!(matches!(
        result,
        Err(crate::BlockError::InvalidTransaction { index: 1, .. })
    ));
    assert_eq!(f.chain.ledger.state_root(), root);
    assert_eq!(f.chain.ledger.height(), height);
    assert_eq!(f.balance(&bob), 0);
}

#[test]
fn headers_that_do_not_follow_the_chain_are_refused() {
    let f = Fixture::new();
    let ledger = &f.chain.ledger;
    let base = ledger.build_block(Vec::new(), f.chain.time_ms);
    let header = base.header.clone().expect("header");
    type Mutation = Box<dyn Fn(&mut yuchain_proto::pb::BlockHeader)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|h| h.height += 1), "WrongHeight"),
        (Box::new(|h| h.chain_id = "other".into()), "WrongChain"),
        (Box::new(|h| h.parent_hash = vec![0; 32]), "WrongParent"),
        (Box::new(|h| h.timestamp_ms = 0), "TimeWentBack"),
        (
            Box::new(|h| h.parent_state_root = vec![1; 32]),
            "RootMismatch",
        ),
        (Box::new(|h| h.tx_root = vec![1; 32]), "RootMismatch"),
        (Box::new(|h| h.tx_count = 3), "TxCountMismatch"),
    ];
    for (mutate, expected) in cases {
        let mut block = base.clone();
        let mut bad = header.clone();
        mutate(&mut bad);
        block.header = Some(bad);
        let error = ledger.check_block(&block).expect_err(expected);
        assert!(
            format!("{error:?}").starts_with(expected),
            "{error:?} is not {expected}"
        );
    }
    let no_header = yuchain_proto::pb::Block {
        header: None,
        transactions: vec![],
    };
    assert_eq!(
        ledger.check_block(&no_header),
        Err(crate::BlockError::MissingHeader)
    );
}

#[test]
fn proofs_show_balances_and_absences_against_the_root() {
    let f = Fixture::new();
    let root = f.chain.ledger.state_root();
    let alice = address_of(&f.alice);
    let proof = f.chain.ledger.prove(&StateKey::Account(alice));
    let value = crate::verify_proof(&root, &proof)
        .expect("valid proof")
        .expect("present");
    let account =
        <yuchain_proto::pb::Account as prost::Message>::decode(value.as_slice()).expect("account");
    assert_eq!(account.balance, 1_000 * YUAN);

    let absent = f
        .chain
        .ledger
        .prove(&StateKey::Account(Address::system("nobody")));
    assert_eq!(crate::verify_proof(&root, &absent), Ok(None));

    // Tampering with the value, the key, the path or the root is caught.
    let mut richer = proof.clone();
    let mut fake = account.clone();
    fake.balance *= 10;
    richer.value = Some(prost::Message::encode_to_vec(&fake));
    assert!(matches!(
        crate::verify_proof(&root, &richer),
        Err(crate::ProofError::Invalid(_))
    ));
    let mut hidden = proof.clone();
    hidden.value = None;
    assert!(crate::verify_proof(&root, &hidden).is_err());
    let mut moved = proof.clone();
    moved.key = StateKey::Account(address_of(&f.bob)).to_bytes();
    assert!(crate::verify_proof(&root, &moved).is_err());
    let mut broken = proof.clone();
    broken.siblings[15][31] ^= 1;
    assert!(crate::verify_proof(&root, &broken).is_err());
    broken.siblings.truncate(3);
    assert!(matches!(
        crate::verify_proof(&root, &broken),
        Err(crate::ProofError::Malformed(_))
    ));
    let other_root = yuchain_proto::Hash32([9; 32]);
    assert!(matches!(
        crate::verify_proof(&other_root, &proof),
        Err(crate::ProofError::WrongRoot { .. })
    ));
}

#[test]
fn a_ledger_reloaded_from_its_persisted_changes_continues_identically() {
    let mut chain = TestChain::new(1);
    let (_, genesis_applied) = crate::Ledger::genesis(&chain.genesis).expect("genesis");
    let mut stored: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
        std::collections::BTreeMap::new();
    let mut persist = |applied: &crate::AppliedBlock| {
        for (key, value) in &applied.state_changes {
            match value {
                Some(value) => stored.insert(key.clone(), value.clone()),
                None => stored.remove(key),
            };
        }
    };
    persist(&genesis_applied);
    let bank = chain.operators[0].clone();
    let issuer = chain.issuer.clone();
    let alice = SigningKey::for_test("alice");
    let txs = vec![
        chain.tx(&issuer, issue(address_of(&bank), 10_000)),
        chain.tx(&bank, register_personal(&alice, KycTier::Class3)),
        chain.tx(&bank, transfer(address_of(&alice), 700, "")),
    ];
    persist(&chain.apply(txs).expect("block 1"));
    let shop_payment = chain.tx(&alice, transfer(address_of(&bank), 100, "back"));
    persist(&chain.apply(vec![shop_payment]).expect("block 2"));

    let root = chain.ledger.state_root();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = stored.clone().into_iter().collect();
    let mut reloaded = crate::Ledger::load(&chain.genesis, entries.clone(), root).expect("reload");
    assert_eq!(reloaded.state_root(), root);
    assert_eq!(reloaded.height(), 2);
    assert_eq!(reloaded.last_block_hash(), chain.ledger.last_block_hash());
    assert_eq!(
        reloaded.account(&address_of(&alice)),
        chain.ledger.account(&address_of(&alice))
    );

    // Both continue with the same next block.
    let next = chain.tx(&alice, transfer(address_of(&bank), 1, ""));
    let block = chain.ledger.build_block(vec![next], chain.time_ms);
    let a = chain.ledger.apply_block(&block).expect("original");
    let b = reloaded.apply_block(&block).expect("reloaded");
    assert_eq!(a.state_root, b.state_root);
    assert_eq!(a.receipts, b.receipts);

    // A stored root that does not match is corruption, not a silent start.
    assert!(matches!(
        crate::Ledger::load(&chain.genesis, entries, yuchain_proto::Hash32([3; 32])),
        Err(crate::LoadError::RootMismatch { .. })
    ));
}

#[test]
fn the_fee_account_paying_with_fees_creates_no_money() {
    // The issuer's key signs for the fee account. With a non-zero fee, the
    // fee account's payment used to credit it with the fee computed from
    // its balance before the debit, so `amount + fee` fen appeared.
    let mut params = ChainParams::default();
    params.fees.transfer = FeeRule {
        flat: 5,
        basis_points: 100,
        max: None,
    };
    params.fees.merchant_payment = params.fees.transfer.clone();
    params.fees.refund = params.fees.transfer.clone();
    let mut f = Fixture::with_params(params);
    let (alice, bob, shop) = (f.alice.clone(), f.bob.clone(), f.shop.clone());
    let issuer = f.chain.issuer.clone();
    // Fill the fee account with real fees: 5 + 1% of 50,000 = 505 fen.
    let setup_fees = f.chain.balance(&fee_account());
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 50_000, "")),
        ResultCode::Ok
    );
    let fees = f.chain.balance(&fee_account());
    assert_eq!(fees, setup_fees + 505);
    let bob_before = f.balance(&bob);
    let supply = f.chain.ledger.totals().outstanding();
    let tx = f
        .chain
        .tx_for(fee_account(), &issuer, transfer(address_of(&bob), 100, ""));
    let applied = f.chain.apply(vec![tx]).expect("the block applies");
    assert_eq!(TestChain::codes(&applied), vec![ResultCode::Ok]);
    // The fee account pays no fee: it would pay it to itself.
    assert_eq!(applied.receipts[0].fee, 0);
    assert_eq!(f.balance(&bob), bob_before + 100);
    assert_eq!(f.chain.balance(&fee_account()), fees - 100);
    assert_eq!(f.chain.ledger.totals().outstanding(), supply);
    // A merchant payment by the fee account, refunded to it: the refund's
    // fee is the merchant's, the fee account is the recipient.
    let payment = f.chain.tx_for(
        fee_account(),
        &issuer,
        merchant_payment(address_of(&shop), 200, "o-1"),
    );
    let payment_id = id_of(&payment);
    let applied = f.chain.apply(vec![payment]).expect("block");
    assert_eq!(TestChain::codes(&applied), vec![ResultCode::Ok]);
    assert_eq!(applied.receipts[0].fee, 0);
    f.chain.ledger.check_conservation().expect("conservation");
    assert_eq!(f.balance(&shop), 200);
    // The merchant pays the refund fee (5 + 1 fen) to the fee account.
    assert_eq!(f.run(&shop, refund(payment_id, 100)), ResultCode::Ok);
    assert_eq!(f.balance(&shop), 200 - 100 - 6);
    assert_eq!(f.chain.balance(&fee_account()), fees - 100 - 200 + 100 + 6);
    assert_eq!(f.chain.ledger.totals().outstanding(), supply);
}

#[test]
fn a_block_that_would_break_conservation_is_refused_and_undone() {
    // No action breaks conservation any more, so a bug is simulated: after
    // executing a real block, one more fen is written into a balance.
    let mut f = Fixture::new();
    let (alice, bob, shop) = (f.alice.clone(), f.bob.clone(), f.shop.clone());
    let issuer = f.chain.issuer.clone();
    let txs = vec![
        f.chain
            .tx(&alice, merchant_payment(address_of(&shop), 300, "o-2")),
        f.chain.tx(&issuer, issue(address_of(&f.bank), 1_000)),
        f.chain.tx(&bob, register_personal(&bob, KycTier::Class1)),
    ];
    let ledger = &mut f.chain.ledger;
    let root = ledger.state_root();
    let totals = ledger.totals();
    let accounts = ledger.accounts.clone();
    let payments = ledger.payments.clone();
    let block = ledger.build_block(txs, f.chain.time_ms);
    let header = block.header.clone().expect("header");
    let decoded = ledger.check_block(&block).expect("valid block");
    let (receipts, history, mut touched) = ledger.execute_all(&header, &decoded);
    assert_eq!(receipts[0].code, ResultCode::Ok as i32);
    assert_eq!(receipts[1].code, ResultCode::Ok as i32);
    ledger.account_mut(address_of(&bob), &mut touched).balance += 1;
    let result = ledger.finish_block(&header, totals, receipts, history, touched);
    assert_eq!(
        result.map(|applied| applied.height),
        Err(crate::BlockError::ConservationViolated {
            height: header.height,
            balance_delta: 1_001,
            supply_delta: 1_000,
        })
    );
    // Nothing changed: balances, sequences, the payment record, the totals,
    // the root.
    assert_eq!(ledger.accounts, accounts);
    assert_eq!(ledger.payments, payments);
    assert_eq!(ledger.totals(), totals);
    assert_eq!(ledger.state_root(), root);
    // The same block, without the bug, applies.
    assert!(ledger.apply_block(&block).is_ok());
}

/// A block holding `action` from `signer` (for `sender`) is refused whole
/// because the key it names is not usable, and changes nothing.
fn assert_key_refused(
    f: &mut Fixture,
    sender: Address,
    signer: &SigningKey,
    action: yuchain_proto::pb::transaction_body::Action,
    field: &str,
) {
    let root = f.chain.ledger.state_root();
    let tx = f.chain.tx_for(sender, signer, action);
    let result = f.chain.apply(vec![tx]);
    f.chain.unbump(sender);
    match result {
        Err(crate::BlockError::InvalidTransaction {
            error: yuchain_proto::error::TxError::InvalidField { field: got, .. },
            ..
        }) => assert_eq!(got, field),
        other => panic!("expected a refused key in {field}, got {other:?}"),
    }
    assert_eq!(f.chain.ledger.state_root(), root);
}

/// Keys no one may be given: the identity (small order) and bytes that are
/// no curve point.
fn unusable_keys() -> [yuchain_proto::PublicKey; 2] {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    [
        yuchain_proto::PublicKey(identity),
        yuchain_proto::PublicKey(off_curve),
    ]
}

#[test]
fn the_issuer_suspends_and_reinstates_an_operator() {
    let mut f = Fixture::new();
    let (bank, alice, bob) = (f.bank.clone(), f.alice.clone(), f.bob.clone());
    let issuer = f.chain.issuer.clone();
    let bank_address = address_of(&bank);
    // Only the issuer, only on an operator.
    let other_bank = f.chain.operators[1].clone();
    assert_eq!(
        f.run(&other_bank, suspend_operator(bank_address)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&alice, suspend_operator(bank_address)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&issuer, suspend_operator(Address::system("nobody"))),
        ResultCode::UnknownAccount
    );
    assert_eq!(
        f.run(&issuer, suspend_operator(address_of(&alice))),
        ResultCode::NotAnOperator
    );
    assert_eq!(
        f.run(&issuer, reinstate_operator(bank_address)),
        ResultCode::NotSuspended
    );
    assert_eq!(
        f.run(&issuer, suspend_operator(bank_address)),
        ResultCode::Ok
    );
    assert_eq!(
        f.chain.ledger.account(&bank_address).map(|a| a.status),
        Some(AccountStatus::Suspended)
    );
    assert_eq!(
        f.run(&issuer, suspend_operator(bank_address)),
        ResultCode::AlreadySuspended
    );
    // A suspended operator does nothing an operator does, and gets nothing
    // issued.
    let carol = SigningKey::for_test("carol");
    let alice_address = address_of(&alice);
    for action in [
        register_personal(&carol, KycTier::Class2),
        set_tier(alice_address, KycTier::Class1),
        freeze(alice_address, FreezeMode::Full),
        unfreeze(alice_address),
        rotate_key(alice_address, &carol),
        close_wallet(address_of(&bob)),
        transfer(alice_address, 1, ""),
    ] {
        assert_eq!(f.run(&bank, action), ResultCode::OperatorSuspended);
    }
    assert_eq!(
        f.run(&issuer, issue(bank_address, 1)),
        ResultCode::OperatorSuspended
    );
    // The issuer may still redeem from it, its customers may still pay it,
    // and its wallets keep working.
    assert_eq!(f.run(&issuer, redeem(bank_address, 1)), ResultCode::Ok);
    assert_eq!(f.run(&alice, transfer(bank_address, 2, "")), ResultCode::Ok);
    assert_eq!(
        f.run(&alice, transfer(address_of(&bob), 3, "")),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&alice, merchant_payment(address_of(&f.shop), 4, "o-3")),
        ResultCode::Ok
    );
    // Reinstated, it acts again.
    assert_eq!(
        f.run(&issuer, reinstate_operator(bank_address)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&issuer, reinstate_operator(bank_address)),
        ResultCode::NotSuspended
    );
    assert_eq!(
        f.run(&bank, register_personal(&carol, KycTier::Class2)),
        ResultCode::Ok
    );
    assert_eq!(f.run(&issuer, issue(bank_address, 1)), ResultCode::Ok);
}

#[test]
fn the_issuer_rotates_an_operator_key() {
    let mut f = Fixture::new();
    let (bank, alice) = (f.bank.clone(), f.alice.clone());
    let issuer = f.chain.issuer.clone();
    let bank_address = address_of(&bank);
    let new_key = SigningKey::for_test("bank new key");
    assert_eq!(
        f.run(&bank, rotate_operator_key(bank_address, &new_key)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&alice, rotate_operator_key(bank_address, &new_key)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(
            &issuer,
            rotate_operator_key(Address::system("nobody"), &new_key)
        ),
        ResultCode::UnknownAccount
    );
    assert_eq!(
        f.run(&issuer, rotate_operator_key(address_of(&alice), &new_key)),
        ResultCode::NotAnOperator
    );
    let issuer_address = address_of(&issuer);
    for key in unusable_keys() {
        let action = yuchain_proto::pb::transaction_body::Action::RotateOperatorKey(
            yuchain_proto::pb::RotateOperatorKey {
                operator: bank_address.0.to_vec(),
                new_public_key: key.0.to_vec(),
            },
        );
        assert_key_refused(
            &mut f,
            issuer_address,
            &issuer,
            action,
            "rotate_operator_key.new_public_key",
        );
    }
    // A suspended operator's key may be rotated too (suspend, re-key,
    // reinstate is how a stolen bank key is handled).
    assert_eq!(
        f.run(&issuer, suspend_operator(bank_address)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&issuer, rotate_operator_key(bank_address, &new_key)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run(&issuer, reinstate_operator(bank_address)),
        ResultCode::Ok
    );
    // The old key no longer signs for the operator; the new one does, and
    // the address, reserve and wallets stay.
    let carol = SigningKey::for_test("carol");
    assert_eq!(
        f.run(&bank, register_personal(&carol, KycTier::Class2)),
        ResultCode::WrongKey
    );
    let reserve = f.chain.balance(&bank_address);
    assert_eq!(
        f.run_for(
            bank_address,
            &new_key,
            register_personal(&carol, KycTier::Class2)
        ),
        ResultCode::Ok
    );
    assert_eq!(
        f.run_for(
            bank_address,
            &new_key,
            freeze(address_of(&alice), FreezeMode::Full)
        ),
        ResultCode::Ok
    );
    assert_eq!(f.chain.balance(&bank_address), reserve);
}

#[test]
fn the_issuer_key_is_rotated_by_the_issuer_key() {
    let mut f = Fixture::new();
    let (bank, alice, bob) = (f.bank.clone(), f.alice.clone(), f.bob.clone());
    let issuer = f.chain.issuer.clone();
    let issuer_address = address_of(&issuer);
    let bank_address = address_of(&bank);
    let new_issuer = SigningKey::for_test("issuer new key");
    assert_eq!(
        f.run(&bank, rotate_issuer_key(&new_issuer)),
        ResultCode::Unauthorized
    );
    assert_eq!(
        f.run(&alice, rotate_issuer_key(&new_issuer)),
        ResultCode::Unauthorized
    );
    // The fee account shares the issuer key but is not the issuer.
    assert_eq!(
        f.run_for(fee_account(), &issuer, rotate_issuer_key(&new_issuer)),
        ResultCode::Unauthorized
    );
    // Someone else's key naming the issuer as sender has no effect at all.
    assert_eq!(
        f.run_for(issuer_address, &new_issuer, rotate_issuer_key(&new_issuer)),
        ResultCode::WrongKey
    );
    for key in unusable_keys() {
        let action = yuchain_proto::pb::transaction_body::Action::RotateIssuerKey(
            yuchain_proto::pb::RotateIssuerKey {
                new_public_key: key.0.to_vec(),
            },
        );
        assert_key_refused(
            &mut f,
            issuer_address,
            &issuer,
            action,
            "rotate_issuer_key.new_public_key",
        );
    }
    assert_eq!(
        f.run(&issuer, rotate_issuer_key(&new_issuer)),
        ResultCode::Ok
    );
    for address in [issuer_address, fee_account()] {
        assert_eq!(
            f.chain.ledger.account(&address).map(|a| a.auth_key),
            Some(new_issuer.public_key())
        );
    }
    // The old key no longer signs for the issuer or the fee account.
    assert_eq!(f.run(&issuer, issue(bank_address, 1)), ResultCode::WrongKey);
    assert_eq!(
        f.run(&issuer, register_operator(&bob, "Bob Bank")),
        ResultCode::WrongKey
    );
    assert_eq!(
        f.run_for(fee_account(), &issuer, transfer(address_of(&bob), 1, "")),
        ResultCode::WrongKey
    );
    // The new key does everything the issuer does, the address stays.
    let totals = f.chain.ledger.totals();
    assert_eq!(
        f.run_for(issuer_address, &new_issuer, issue(bank_address, 10)),
        ResultCode::Ok
    );
    assert_eq!(f.chain.ledger.totals().issued, totals.issued + 10);
    assert_eq!(
        f.run_for(issuer_address, &new_issuer, suspend_operator(bank_address)),
        ResultCode::Ok
    );
    let newer = SigningKey::for_test("issuer newer key");
    assert_eq!(
        f.run_for(issuer_address, &new_issuer, rotate_issuer_key(&newer)),
        ResultCode::Ok
    );
    assert_eq!(
        f.run_for(issuer_address, &new_issuer, issue(bank_address, 1)),
        ResultCode::WrongKey
    );
}
