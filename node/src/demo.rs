//! `yuchain-node demo`: one day of city payments in Chongqing, through the ledger
//! and a RocksDB store, told as it happens.
//!
//! Everything is deterministic (fixture keys, a seeded generator, block time
//! set by the script), so two runs print the same roots.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail, ensure};
use yuchain_ledger::testkit::{self, TEST_GENESIS_TIME_MS, TestChain, address_of};
use yuchain_ledger::{AppliedBlock, ChainParams, StateKey, verify_proof};
use yuchain_proto::amount::format_yuan;
use yuchain_proto::pb::{self, FreezeMode, KycTier, MerchantCategory, ResultCode};
use yuchain_proto::{Address, Hash32, SigningKey};
use yuchain_storage::{BlockStore, RocksStore};

use crate::persist::{block_commit, load_ledger};

const YUAN: u64 = 100;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

/// Options of `yuchain-node demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Keep the RocksDB store in this directory (created; must be empty)
    /// instead of a temporary one that is removed at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Personal wallets the banks register.
    #[arg(long, default_value_t = 300)]
    wallets: usize,
    /// Payments in each hourly block.
    #[arg(long, default_value_t = 500)]
    payments_per_block: usize,
}

/// SplitMix64: a tiny deterministic generator for the script.
struct Script(u64);

impl Script {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

struct Merchant {
    key: SigningKey,
    name: String,
    /// Typical price range, fen.
    prices: (u64, u64),
}

struct Day {
    chain: TestChain,
    store: RocksStore,
    banks: Vec<SigningKey>,
    bank_names: Vec<String>,
    wallets: Vec<SigningKey>,
    /// Wallet addresses (fixed for life, even when a key is rotated).
    addresses: Vec<Address>,
    merchants: Vec<Merchant>,
    payments: Vec<(Hash32, usize, u64)>,
    script: Script,
    blocks: u64,
    transactions: u64,
    failed: u64,
}

impl Day {
    /// Applies a block at `time_ms`, commits it to the store and prints a line.
    fn block(
        &mut self,
        time_ms: u64,
        what: &str,
        txs: Vec<pb::SignedTransaction>,
    ) -> Result<AppliedBlock> {
        self.chain.time_ms = time_ms;
        let (block, applied) = self
            .chain
            .apply_returning_block(txs)
            .context("applying a block the demo built")?;
        self.store
            .commit(&block_commit(Some(&block), &applied))
            .context("committing the block to RocksDB")?;
        self.chain
            .ledger
            .check_conservation()
            .map_err(anyhow::Error::msg)?;
        let codes = TestChain::codes(&applied);
        let ok = codes.iter().filter(|code| **code == ResultCode::Ok).count();
        self.blocks += 1;
        self.transactions += codes.len() as u64;
        self.failed += (codes.len() - ok) as u64;
        println!(
            "{}  block {:>2}  {:<58} {:>4} tx, {:>4} ok   root {}",
            clock(time_ms),
            applied.height,
            what,
            codes.len(),
            ok,
            short(&applied.state_root),
        );
        Ok(applied)
    }

    fn wallet(&self, index: usize) -> Address {
        self.addresses[index]
    }

    /// The bank that registered wallet `index`.
    fn bank_of(&self, index: usize) -> SigningKey {
        self.banks[index % self.banks.len()].clone()
    }

    /// An hour of city life: transfers between people and payments to
    /// merchants, with a few refunds.
    fn hour(&mut self, count: usize) -> Vec<pb::SignedTransaction> {
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let payer = self.script.below(self.wallets.len());
            let roll = self.script.below(100);
            if roll < 60 {
                let merchant = self.script.below(self.merchants.len());
                let (low, high) = self.merchants[merchant].prices;
                let amount = self.script.between(low, high);
                let order = format!(
                    "{}-{}",
                    self.merchants[merchant]
                        .name
                        .split(' ')
                        .next()
                        .unwrap_or("order"),
                    self.script.next() % 1_000_000
                );
                let to = address_of(&self.merchants[merchant].key);
                let key = self.wallets[payer].clone();
                let from = self.wallet(payer);
                let tx =
                    self.chain
                        .tx_for(from, &key, testkit::merchant_payment(to, amount, &order));
                self.payments.push((testkit::id_of(&tx), merchant, amount));
                txs.push(tx);
            } else if roll < 95 || self.payments.is_empty() {
                let mut to = self.script.below(self.wallets.len());
                if to == payer {
                    to = (to + 1) % self.wallets.len();
                }
                let amount = self.script.between(5 * YUAN, 200 * YUAN);
                let key = self.wallets[payer].clone();
                let from = self.wallet(payer);
                let to = self.wallet(to);
                txs.push(
                    self.chain
                        .tx_for(from, &key, testkit::transfer(to, amount, "红包")),
                );
            } else {
                let pick = self.script.below(self.payments.len());
                let (id, merchant, amount) = self.payments.swap_remove(pick);
                let key = self.merchants[merchant].key.clone();
                let refund = if self.script.below(2) == 0 {
                    amount
                } else {
                    amount / 2
                };
                txs.push(self.chain.tx(&key, testkit::refund(id, refund.max(1))));
            }
        }
        txs
    }
}

fn clock(time_ms: u64) -> String {
    let seconds = time_ms / 1000 + 8 * 3600;
    format!("{:02}:{:02}", seconds / 3600 % 24, seconds / 60 % 60)
}

fn short(hash: &Hash32) -> String {
    hash.to_string()[..12].to_string()
}

fn code_of(applied: &AppliedBlock, index: usize) -> ResultCode {
    TestChain::codes(applied)[index]
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    ensure!(args.wallets >= 10, "--wallets must be at least 10");
    ensure!(
        args.payments_per_block >= 1,
        "--payments-per-block must be at least 1"
    );
    let temporary;
    let data_dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty; the demo starts a new chain",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => {
            temporary = tempfile::tempdir().context("creating a temporary directory")?;
            temporary.path().to_path_buf()
        }
    };

    let bank_names: Vec<String> = [
        "Bank of Chongqing",
        "Chongqing Rural Commercial Bank",
        "ICBC Chongqing",
    ]
    .iter()
    .map(|name| name.to_string())
    .collect();
    let chain = TestChain::with_operators(&bank_names, ChainParams::default());
    let store = RocksStore::create(data_dir.join("db")).context("creating RocksDB")?;
    store
        .commit(&block_commit(None, &chain.genesis_applied))
        .context("committing genesis")?;
    let banks = chain.operators.clone();
    let wallets: Vec<SigningKey> = (0..args.wallets)
        .map(|i| SigningKey::for_test(&format!("resident {i}")))
        .collect();
    let merchant_kinds: [(&str, MerchantCategory, (u64, u64)); 6] = [
        (
            "Metro Line",
            MerchantCategory::Transit,
            (2 * YUAN, 7 * YUAN),
        ),
        (
            "Hotpot House",
            MerchantCategory::Catering,
            (80 * YUAN, 300 * YUAN),
        ),
        (
            "Xiaomian Noodles",
            MerchantCategory::Catering,
            (8 * YUAN, 25 * YUAN),
        ),
        (
            "Jiefangbei Mall",
            MerchantCategory::Retail,
            (30 * YUAN, 900 * YUAN),
        ),
        (
            "Yangtze Hotel",
            MerchantCategory::Hotel,
            (350 * YUAN, 900 * YUAN),
        ),
        (
            "Hongyadong Tours",
            MerchantCategory::Tourism,
            (50 * YUAN, 200 * YUAN),
        ),
    ];
    let merchants: Vec<Merchant> = (0..30)
        .map(|i| {
            let (name, _, prices) = merchant_kinds[i % merchant_kinds.len()];
            Merchant {
                key: SigningKey::for_test(&format!("merchant {i}")),
                name: format!("{name} #{}", i / merchant_kinds.len() + 1),
                prices,
            }
        })
        .collect();
    let mut day = Day {
        chain,
        store,
        banks,
        bank_names,
        addresses: wallets.iter().map(address_of).collect(),
        wallets,
        merchants,
        payments: Vec::new(),
        script: Script(20_261_126),
        blocks: 0,
        transactions: 0,
        failed: 0,
    };

    println!(
        "yuchain-node demo: one day of digital-RMB payments in Chongqing (2026-11-26, Beijing time)"
    );
    println!(
        "store: {} (RocksDB, one synced write per block)\n",
        data_dir.display()
    );
    println!(
        "09:00  genesis   issuer and {} banks: {}   root {}",
        day.bank_names.len(),
        day.bank_names.join(", "),
        short(&day.chain.ledger.state_root())
    );

    // 09:05 — the city treasury issues money into the banks' reserves.
    let issuer = day.chain.issuer.clone();
    let mut txs = Vec::new();
    for bank in day.banks.clone() {
        txs.push(day.chain.tx(
            &issuer,
            testkit::issue(address_of(&bank), 10_000_000 * YUAN),
        ));
    }
    day.block(
        TEST_GENESIS_TIME_MS + 5 * MINUTE_MS,
        "the treasury issues 10,000,000 yuan to each bank",
        txs,
    )?;

    // 09:10 — banks open wallets for residents (all four KYC classes) and merchants.
    let tiers = [
        KycTier::Class1,
        KycTier::Class2,
        KycTier::Class3,
        KycTier::Class4,
    ];
    let mut txs = Vec::new();
    for index in 0..day.wallets.len() {
        let bank = day.bank_of(index);
        let key = day.wallets[index].clone();
        txs.push(
            day.chain
                .tx(&bank, testkit::register_personal(&key, tiers[index % 4])),
        );
    }
    for index in 0..day.merchants.len() {
        let bank = day.bank_of(index);
        let key = day.merchants[index].key.clone();
        let category = merchant_kinds[index % merchant_kinds.len()].1;
        txs.push(
            day.chain
                .tx(&bank, testkit::register_merchant(&key, category)),
        );
    }
    let what = format!(
        "banks open {} wallets (classes 1-4) and {} merchants",
        day.wallets.len(),
        day.merchants.len()
    );
    day.block(TEST_GENESIS_TIME_MS + 10 * MINUTE_MS, &what, txs)?;

    // 09:15 — residents top up their wallets from their bank accounts.
    let mut txs = Vec::new();
    for index in 0..day.wallets.len() {
        let bank = day.bank_of(index);
        let amount = match tiers[index % 4] {
            KycTier::Class4 => 3_000 * YUAN,
            KycTier::Class3 => 8_000 * YUAN,
            _ => 20_000 * YUAN,
        };
        let to = day.wallet(index);
        txs.push(day.chain.tx(&bank, testkit::transfer(to, amount, "top-up")));
    }
    day.block(
        TEST_GENESIS_TIME_MS + 15 * MINUTE_MS,
        "residents top up their wallets from their banks",
        txs,
    )?;

    // 10:00 to 21:00 — the city pays: an hourly block each.
    for hour in 1..=12u64 {
        let time_ms = TEST_GENESIS_TIME_MS + hour * HOUR_MS;
        let mut txs = day.hour(args.payments_per_block);
        let mut note = None;
        match hour {
            4 => {
                // A class-4 wallet (phone number only) tries to pay 3,000 yuan at
                // once: over its 2,000-yuan per-payment limit.
                let payer = day.wallets[3].clone();
                let hotel = address_of(&day.merchants[4].key);
                txs.push(day.chain.tx(
                    &payer,
                    testkit::merchant_payment(hotel, 3_000 * YUAN, "suite-1"),
                ));
                note = Some(("a class-4 wallet tries to pay 3,000.00 yuan", txs.len() - 1));
            }
            6 => {
                // A bank freezes a wallet after a fraud report; the wallet's next
                // payment is refused.
                let suspect = day.wallet(1);
                let bank = day.bank_of(1);
                let key = day.wallets[1].clone();
                txs.push(
                    day.chain
                        .tx(&bank, testkit::freeze(suspect, FreezeMode::Full)),
                );
                let to = day.wallet(2);
                txs.push(
                    day.chain
                        .tx(&key, testkit::transfer(to, 10 * YUAN, "after freeze")),
                );
                note = Some(("a frozen wallet tries to pay", txs.len() - 1));
            }
            8 => {
                // A resident loses a phone; the bank rotates the wallet's key and
                // the new phone pays.
                let wallet = day.wallet(5);
                let bank = day.bank_of(5);
                let new_phone = SigningKey::for_test("resident 5, new phone");
                txs.push(day.chain.tx(&bank, testkit::rotate_key(wallet, &new_phone)));
                let to = day.wallet(6);
                txs.push(day.chain.tx_for(
                    wallet,
                    &new_phone,
                    testkit::transfer(to, 20 * YUAN, "new phone"),
                ));
                day.wallets[5] = new_phone;
                note = Some((
                    "a lost phone: key rotated, the new phone pays",
                    txs.len() - 1,
                ));
            }
            _ => {}
        }
        let applied = day.block(
            time_ms,
            &format!("{} payments, transfers and refunds", txs.len()),
            txs,
        )?;
        if let Some((what, index)) = note {
            println!("              ↳ {what}: {:?}", code_of(&applied, index));
        }
        let failures = summarize_failures(&applied);
        if !failures.is_empty() {
            println!("              ↳ refused: {failures}");
        }
    }

    // 21:30 — a bank returns surplus reserve to the treasury.
    let bank = address_of(&day.banks[0]);
    let txs = vec![
        day.chain
            .tx(&issuer, testkit::redeem(bank, 1_000_000 * YUAN)),
    ];
    day.block(
        TEST_GENESIS_TIME_MS + 12 * HOUR_MS + 30 * MINUTE_MS,
        "the treasury redeems 1,000,000 yuan from a bank",
        txs,
    )?;

    // The day's figures.
    let totals = day.chain.ledger.totals();
    let root = day.chain.ledger.state_root();
    println!();
    println!(
        "blocks: {}, transactions: {} ({} refused by the rules, each with its receipt code)",
        day.blocks, day.transactions, day.failed
    );
    println!(
        "issued {} yuan, redeemed {} yuan, in circulation {} yuan",
        format_yuan(totals.issued),
        format_yuan(totals.redeemed),
        format_yuan(totals.outstanding())
    );
    println!(
        "sum of all balances: {} yuan (conservation holds)",
        format_yuan(u64::try_from(day.chain.ledger.balance_sum())?)
    );
    println!("final state root: {root}");

    // A wallet checks its balance with a proof against the root.
    let wallet = day.wallet(0);
    let proof = day.chain.ledger.prove(&StateKey::Account(wallet));
    let value = verify_proof(&root, &proof)?.context("the wallet exists")?;
    let account = <pb::Account as prost::Message>::decode(value.as_slice())?;
    println!(
        "proof: wallet {wallet} holds {} yuan ({}-byte proof, verified against the root)",
        format_yuan(account.balance),
        prost::Message::encoded_len(&proof)
    );

    // Reopen the store and rebuild the ledger from it: same root.
    let head_height = day.chain.ledger.height();
    drop(day.store);
    let store = RocksStore::open(data_dir.join("db")).context("reopening RocksDB")?;
    let reloaded = load_ledger(&store, &day.chain.genesis)?;
    ensure!(
        reloaded.state_root() == root,
        "the reloaded ledger has another root"
    );
    ensure!(
        reloaded.height() == head_height,
        "the reloaded ledger is at another height"
    );
    println!("reopened the store: height {head_height}, same root — nothing lost");
    Ok(())
}

fn summarize_failures(applied: &AppliedBlock) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for code in TestChain::codes(applied) {
        if code != ResultCode::Ok {
            *counts.entry(format!("{code:?}")).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(code, count)| format!("{count} {code}"))
        .collect::<Vec<_>>()
        .join(", ")
}
