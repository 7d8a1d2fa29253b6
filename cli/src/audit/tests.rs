//! Replay of an honest chain from memory, RocksDB and gRPC, and the tamper
//! tests: each changes one thing a node stored (a byte of a block, a
//! receipt, a batch, a certificate's signature, the transactions, an
//! account's balance, a validator key in the genesis file) and replay must
//! name exactly the height, the transaction and the values.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use yuchain_consensus::CommittedBlock;
use yuchain_ledger::testkit::{
    TestChain, address_of, issue, merchant_payment, redeem, register_merchant, register_personal,
    transfer,
};
use yuchain_proto::pb::transaction_body::Action;
use yuchain_proto::{Address, Hash32, SigningKey, pb, tx};
use yuchain_storage::{BlockCommit, BlockStore, MemStore, RocksStore};

use super::error::{AuditError, Discrepancy};
use super::export::{Format, RowSink, RowWriter, Rows};
use super::fixture::FixtureBuilder;
use super::genesis::AuditGenesis;
use super::replay::{NoSink, ReplayOptions, Summary, replay};
use super::source::{BlockSource, GrpcSource, SourceBlock, StoreSource};

/// The last height of the test chain.
const LAST: u64 = 8;

struct Chain {
    genesis: AuditGenesis,
    commits: Vec<BlockCommit>,
    alice: Address,
    bob: Address,
    bank: Address,
    transactions: u64,
}

struct Signer {
    chain_id: String,
    sequences: HashMap<Address, u64>,
}

impl Signer {
    fn sign(&mut self, key: &SigningKey, action: Action) -> pb::SignedTransaction {
        let sender = address_of(key);
        let sequence = self.sequences.entry(sender).or_insert(0);
        let body = pb::TransactionBody {
            chain_id: self.chain_id.clone(),
            sender: sender.0.to_vec(),
            public_key: key.public_key().0.to_vec(),
            sequence: *sequence,
            expiry_height: 1_000,
            max_fee: 1_000,
            action: Some(action),
        };
        *sequence += 1;
        tx::sign(&body, key)
    }
}

/// Issuance and redemption, wallets opened, payments, a merchant payment,
/// a refused payment, an empty block, a batch ordered twice; blocks 3 and 8
/// are final only through the next block's certificate.
fn chain() -> Chain {
    let test = TestChain::new(2);
    let issuer = test.issuer.clone();
    let bank = test.operators[0].clone();
    let other_bank = test.operators[1].clone();
    let (alice, bob, shop) = (
        SigningKey::for_test("alice"),
        SigningKey::for_test("bob"),
        SigningKey::for_test("shop"),
    );
    let mut builder = FixtureBuilder::new(test.genesis.clone());
    let mut signer = Signer {
        chain_id: test.genesis.chain_id.clone(),
        sequences: HashMap::new(),
    };
    let mut sign = |key: &SigningKey, action| signer.sign(key, action);
    let blocks: Vec<(Vec<Vec<pb::SignedTransaction>>, bool)> = vec![
        (
            vec![vec![
                sign(&issuer, issue(address_of(&bank), 1_000_000)),
                sign(&issuer, issue(address_of(&other_bank), 500_000)),
            ]],
            false,
        ),
        (
            vec![vec![
                sign(&bank, register_personal(&alice, pb::KycTier::Class2)),
                sign(&bank, register_personal(&bob, pb::KycTier::Class2)),
                sign(
                    &bank,
                    register_merchant(&shop, pb::MerchantCategory::Retail),
                ),
            ]],
            false,
        ),
        (
            vec![
                vec![
                    sign(&bank, transfer(address_of(&alice), 100_000, "wages")),
                    sign(&bank, transfer(address_of(&bob), 50_000, "wages")),
                ],
                vec![sign(&issuer, redeem(address_of(&other_bank), 100_000))],
            ],
            false,
        ),
        (
            vec![
                vec![sign(
                    &alice,
                    transfer(address_of(&bob), 1_000, "lunch, for two"),
                )],
                vec![sign(
                    &bob,
                    merchant_payment(address_of(&shop), 2_000, "A-1"),
                )],
            ],
            false,
        ),
        (vec![], false),
        (
            vec![vec![sign(
                &alice,
                transfer(address_of(&bob), 200_000, "too much"),
            )]],
            true,
        ),
        (
            vec![vec![
                sign(&bob, transfer(address_of(&alice), 500, "")),
                sign(&alice, transfer(address_of(&shop), 700, "")),
            ]],
            false,
        ),
        (
            vec![vec![sign(&alice, transfer(address_of(&bob), 300, ""))]],
            false,
        ),
    ];
    let transactions = blocks
        .iter()
        .map(|(batches, _)| batches.iter().map(Vec::len).sum::<usize>() as u64)
        .sum();
    let mut commits = Vec::new();
    for (batches, reorder) in blocks {
        builder.block(batches, reorder);
        commits.extend(builder.take_ready());
    }
    let (genesis, rest) = builder.finish();
    commits.extend(rest);
    assert_eq!(commits.len() as u64, LAST + 1, "genesis and every block");
    Chain {
        genesis,
        commits,
        alice: address_of(&alice),
        bob: address_of(&bob),
        bank: address_of(&bank),
        transactions,
    }
}

fn memory_store(commits: &[BlockCommit]) -> Arc<MemStore> {
    let store = MemStore::new();
    for commit in commits {
        store.commit(commit).expect("the store takes any bytes");
    }
    Arc::new(store)
}

fn memory_source(commits: &[BlockCommit]) -> Box<dyn BlockSource> {
    Box::new(StoreSource::new("memory".into(), memory_store(commits)))
}

fn replay_with(
    source: Box<dyn BlockSource>,
    genesis: &AuditGenesis,
) -> Result<Summary, AuditError> {
    replay(source, genesis, &ReplayOptions::default(), &mut NoSink).map(|(summary, _)| summary)
}

fn discrepancy(result: Result<Summary, AuditError>) -> Discrepancy {
    match result {
        Err(AuditError::Discrepancy(discrepancy)) => *discrepancy,
        Err(other) => panic!("expected a discrepancy, got {other}"),
        Ok(summary) => panic!("expected a discrepancy, the chain checked out: {summary:?}"),
    }
}

/// Decodes the record at `height`, lets `edit` change it, stores it back.
fn edit_record(chain: &mut Chain, height: u64, edit: impl FnOnce(&mut pb::CommittedBlockRecord)) {
    let commit = &mut chain.commits[height as usize];
    let mut record = pb::CommittedBlockRecord::decode(commit.block.as_slice()).expect("a record");
    edit(&mut record);
    commit.block = record.encode_to_vec();
}

fn edit_certified(chain: &mut Chain, height: u64, edit: impl FnOnce(&mut CommittedBlock)) {
    edit_record(chain, height, |record| {
        let mut committed = CommittedBlock::decode(&record.certified).expect("a committed block");
        edit(&mut committed);
        record.certified = committed.encode();
    });
}

fn transactions_of(record: &mut pb::CommittedBlockRecord) -> &mut Vec<pb::SignedTransaction> {
    &mut record
        .ledger
        .as_mut()
        .and_then(|ledger| ledger.block.as_mut())
        .expect("a block")
        .transactions
}

fn check_honest(summary: &Summary, chain: &Chain) {
    assert_eq!(summary.to_height, LAST);
    assert_eq!(summary.executed.blocks, LAST);
    assert_eq!(summary.executed.transactions, chain.transactions);
    assert_eq!(
        summary.executed.failed, 1,
        "the payment over alice's balance"
    );
    assert_eq!(summary.executed.payments, 8);
    assert_eq!(summary.unproven, None);
    assert_eq!(summary.verified.finality_certificates, LAST);
    assert_eq!(summary.verified.transaction_signatures, chain.transactions);
    assert_eq!(
        summary.verified.batches_skipped, 1,
        "block 6 orders block 4's batch again"
    );
    assert_eq!(summary.issued, 1_500_000);
    assert_eq!(summary.redeemed, 100_000);
}

#[test]
fn an_honest_chain_checks_out_from_memory_and_from_rocksdb() {
    let chain = chain();
    let summary = replay_with(memory_source(&chain.commits), &chain.genesis).expect("honest");
    check_honest(&summary, &chain);
    assert_eq!(summary.state_compared_at, Some(LAST));

    let dir = tempfile::tempdir().expect("a dir");
    let store = RocksStore::create(dir.path().join("db")).expect("a store");
    for commit in &chain.commits {
        store.commit(commit).expect("committed");
    }
    drop(store);
    let source = StoreSource::open(dir.path()).expect("the data directory opens");
    let summary = replay_with(Box::new(source), &chain.genesis).expect("honest");
    check_honest(&summary, &chain);
    assert_eq!(summary.state_compared_at, Some(LAST));
}

#[test]
fn a_flipped_byte_in_a_stored_transaction_is_named_with_its_height_and_index() {
    let mut chain = chain();
    let mut id = None;
    edit_record(&mut chain, 7, |record| {
        let transaction = &mut transactions_of(record)[1];
        transaction.signature[17] ^= 0x01;
        id = Some(tx::tx_id(&transaction.body, &transaction.signature));
    });
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!(found.height, 7);
    let at = found.transaction.clone().expect("a transaction");
    assert_eq!(at.index, 1);
    assert_eq!(at.tx_id, id.expect("an id").to_string());
    assert!(found.actual.contains("signature"), "{found}");
}

#[test]
fn a_flipped_byte_anywhere_in_a_stored_block_record_is_caught_at_that_height() {
    let chain = chain();
    let record = &chain.commits[4].block;
    // Every tenth byte of block 4's record, one at a time: whatever it
    // hits (a transaction, a receipt, the header, the certificate, the
    // payload, a span, the root), replay stops at height 4 or names it.
    for index in (0..record.len()).step_by(10) {
        let mut commits = chain.commits.clone();
        commits[4].block[index] ^= 0x20;
        match replay_with(memory_source(&commits), &chain.genesis) {
            Err(AuditError::Discrepancy(found)) => assert!(
                found.height == 4 || found.what.contains("height 4"),
                "byte {index}: {found}"
            ),
            other => panic!("byte {index}: {other:?}"),
        }
    }
}

#[test]
fn a_changed_receipt_is_named_with_expected_and_stored_values() {
    let mut chain = chain();
    edit_record(&mut chain, 4, |record| {
        if let Some(ledger) = record.ledger.as_mut() {
            ledger.receipts[1].fee = 7;
        }
    });
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!((found.height, found.what.as_str()), (4, "the receipt"));
    assert_eq!(found.transaction.as_ref().map(|tx| tx.index), Some(1));
    assert_eq!(found.expected, "OK, fee 0 fen, height 4, index 1");
    assert_eq!(found.actual, "OK, fee 7 fen, height 4, index 1");
}

#[test]
fn a_changed_batch_or_batch_certificate_is_named() {
    let mut chain = chain();
    edit_record(&mut chain, 3, |record| record.batches[1].sequence += 1);
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!(found.height, 3);
    assert!(
        found.what.starts_with("batch 1 (transactions 2..3"),
        "{found}"
    );
    assert!(found.what.contains("digest"), "{found}");

    // A batch certificate's signature is part of the consensus block: the
    // block is then not the one the finality certificate commits.
    let mut chain = self::chain();
    edit_certified(&mut chain, 4, |committed| {
        let mut payload =
            pb::BlockPayload::decode(committed.block.payload.as_slice()).expect("payload");
        payload.batches[0].signatures[0].signature[3] ^= 1;
        committed.block.payload = payload.encode_to_vec();
    });
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!(found.height, 4);
    assert_eq!(found.what, "the block the finality certificate commits");
}

#[test]
fn a_forged_finality_certificate_signature_names_the_signer() {
    let mut chain = chain();
    let mut signer = None;
    edit_certified(&mut chain, 6, |committed| {
        let (id, signature) = &mut committed.commit_qc.signatures[1];
        signature.0[5] ^= 1;
        signer = Some(id.0);
    });
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!(
        (found.height, found.what.as_str()),
        (6, "the finality certificate")
    );
    assert_eq!(
        found.actual,
        format!(
            "validator {}'s signature is invalid",
            signer.expect("a signer")
        )
    );
    assert!(found.expected.contains("3 of the 4"), "{found}");
}

#[test]
fn a_dropped_duplicated_or_reordered_transaction_is_named() {
    let mut dropped = chain();
    edit_record(&mut dropped, 3, |record| {
        transactions_of(record).remove(1);
    });
    let found = discrepancy(replay_with(
        memory_source(&dropped.commits),
        &dropped.genesis,
    ));
    assert_eq!(
        (found.height, found.what.as_str()),
        (3, "transactions in the block")
    );
    assert_eq!(
        (found.expected.as_str(), found.actual.as_str()),
        ("3 (the certified batches')", "2")
    );

    let mut duplicated = chain();
    edit_record(&mut duplicated, 3, |record| {
        let copy = transactions_of(record)[0].clone();
        transactions_of(record).insert(1, copy);
    });
    let found = discrepancy(replay_with(
        memory_source(&duplicated.commits),
        &duplicated.genesis,
    ));
    assert_eq!((found.height, found.actual.as_str()), (3, "4"));

    let mut reordered = chain();
    edit_record(&mut reordered, 3, |record| {
        transactions_of(record).swap(0, 1)
    });
    let found = discrepancy(replay_with(
        memory_source(&reordered.commits),
        &reordered.genesis,
    ));
    assert_eq!(found.height, 3);
    assert!(
        found.what.starts_with("batch 0 (transactions 0..2"),
        "{found}"
    );
    assert!(
        found.what.ends_with("the digest of its transactions"),
        "{found}"
    );
}

#[test]
fn a_changed_stored_balance_is_named_with_both_values() {
    let mut chain = chain();
    let key = yuchain_ledger::StateKey::Account(chain.alice).to_bytes();
    let (_, value) = chain
        .commits
        .iter()
        .rev()
        .flat_map(|commit| commit.state.iter().rev())
        .find(|(changed, _)| *changed == key)
        .cloned()
        .expect("alice's entry");
    let mut account = pb::Account::decode(value.expect("a value").as_slice()).expect("an account");
    let balance = account.balance;
    account.balance += 1_000;
    let last = chain.commits.last_mut().expect("a block");
    last.state.push((key, Some(account.encode_to_vec())));
    let found = discrepancy(replay_with(memory_source(&chain.commits), &chain.genesis));
    assert_eq!(found.height, LAST);
    assert_eq!(
        found.what,
        format!("the stored state of account {}", chain.alice)
    );
    assert!(
        found
            .expected
            .starts_with(&format!("balance {balance} fen,")),
        "{found}"
    );
    assert!(
        found
            .actual
            .starts_with(&format!("balance {} fen,", balance + 1_000)),
        "{found}"
    );
}

#[test]
fn a_swapped_validator_key_in_the_genesis_file_fails_the_first_certificate() {
    let chain = chain();
    let mut document = chain.genesis.document.clone();
    document.validators[1].consensus_public_key =
        hex::encode(SigningKey::for_test("an impostor").public_key().0);
    let swapped = AuditGenesis::from_document("swapped", document).expect("still a valid file");
    let found = discrepancy(replay_with(memory_source(&chain.commits), &swapped));
    assert_eq!(
        (found.height, found.what.as_str()),
        (1, "the finality certificate")
    );
    assert_eq!(found.actual, "validator 1's signature is invalid");
}

#[test]
fn a_block_of_another_epoch_is_refused_naming_its_height() {
    let mut chain = chain();
    edit_certified(&mut chain, 5, |committed| {
        committed.block.next_validators = Some(vec![SigningKey::for_test("new").public_key()]);
    });
    match replay_with(memory_source(&chain.commits), &chain.genesis) {
        Err(AuditError::UnknownEpoch { height, reason }) => {
            assert_eq!(height, 5);
            assert!(reason.contains("new validator set"), "{reason}");
        }
        other => panic!("expected an unknown epoch, got {other:?}"),
    }
}

#[test]
fn a_tail_whose_certificate_commits_a_missing_block_is_unproven_not_executed() {
    let chain = chain();
    // Block 3 is final only through block 4: without block 4 it is
    // unproven.
    let summary = replay_with(memory_source(&chain.commits[..4]), &chain.genesis).expect("ok");
    assert_eq!(summary.to_height, 2);
    assert_eq!(summary.unproven, Some((3, 3)));
    assert_eq!(
        summary.state_compared_at, None,
        "the stored state is of height 3"
    );
}

#[test]
fn replay_stops_at_a_height_and_resumes_from_its_checkpoint() {
    let chain = chain();
    let dir = tempfile::tempdir().expect("a dir");
    let checkpoint = dir.path().join("replay.checkpoint");
    let options = ReplayOptions {
        to: Some(4),
        checkpoint: Some(checkpoint.clone()),
        checkpoint_every: 2,
        ..ReplayOptions::default()
    };
    let (first, _) = replay(
        memory_source(&chain.commits),
        &chain.genesis,
        &options,
        &mut NoSink,
    )
    .expect("to 4");
    assert_eq!((first.to_height, first.resumed), (4, false));
    let options = ReplayOptions {
        to: None,
        ..options
    };
    let (second, _) = replay(
        memory_source(&chain.commits),
        &chain.genesis,
        &options,
        &mut NoSink,
    )
    .expect("resumed");
    assert_eq!(
        (second.from_height, second.to_height, second.resumed),
        (5, LAST, true)
    );
    assert_eq!(second.executed.blocks, LAST - 4);
    let whole = replay_with(memory_source(&chain.commits), &chain.genesis).expect("whole");
    assert_eq!(second.state_root, whole.state_root);
    assert_eq!(second.state_compared_at, Some(LAST));

    // A tampered block after the checkpoint is still found on resume.
    let mut tampered = self::chain();
    edit_record(&mut tampered, 7, |record| {
        if let Some(ledger) = record.ledger.as_mut() {
            ledger.receipts[0].code = pb::ResultCode::InsufficientFunds as i32;
        }
    });
    let options = ReplayOptions {
        to: Some(4),
        checkpoint: Some(dir.path().join("tampered.checkpoint")),
        ..ReplayOptions::default()
    };
    replay(
        memory_source(&tampered.commits),
        &tampered.genesis,
        &options,
        &mut NoSink,
    )
    .expect("to 4");
    let options = ReplayOptions {
        to: None,
        ..options
    };
    let found = discrepancy(
        replay(
            memory_source(&tampered.commits),
            &tampered.genesis,
            &options,
            &mut NoSink,
        )
        .map(|(summary, _)| summary),
    );
    assert_eq!((found.height, found.what.as_str()), (7, "the receipt"));
    // A checkpoint of another chain is refused.
    let other = AuditGenesis::from_document("other", {
        let mut document = chain.genesis.document.clone();
        document.ledger.chain_id = "another".into();
        document
    })
    .expect("a genesis");
    let error = replay(memory_source(&chain.commits), &other, &options, &mut NoSink)
        .map(|_| ())
        .expect_err("another chain's checkpoint");
    assert!(error.to_string().contains("another chain"), "{error}");
}

fn export(
    chain: &Chain,
    rows: Rows,
    format: Format,
    columns: &'static [&'static str],
) -> Vec<String> {
    let mut sink = RowSink::new(RowWriter::new(Vec::new(), format, columns), rows);
    let options = ReplayOptions {
        track_state: true,
        ..ReplayOptions::default()
    };
    let (_, executor) = replay(
        memory_source(&chain.commits),
        &chain.genesis,
        &options,
        &mut sink,
    )
    .expect("honest");
    if rows == Rows::Nothing {
        super::export::write_balances(&mut sink.writer, executor.state().expect("tracked").iter())
            .expect("balances");
    }
    let bytes = sink.writer.finish().expect("written");
    String::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn exports_hold_every_transaction_receipt_balance_and_history_row() {
    let chain = chain();
    let transactions = export(
        &chain,
        Rows::Transactions,
        Format::Csv,
        super::export::TRANSACTION_COLUMNS,
    );
    assert_eq!(
        transactions.len() as u64,
        chain.transactions + 1,
        "a header and a row each"
    );
    assert!(transactions[0].starts_with("height,index,tx_id,"));
    assert!(
        transactions
            .iter()
            .any(|line| line.contains(",transfer,") && line.contains("INSUFFICIENT_FUNDS")),
        "the refused payment is there with its code: {transactions:#?}"
    );
    let receipts = export(
        &chain,
        Rows::Receipts,
        Format::Jsonl,
        super::export::RECEIPT_COLUMNS,
    );
    assert_eq!(receipts.len() as u64, chain.transactions);
    let first: serde_json::Value = serde_json::from_str(&receipts[0]).expect("json");
    assert_eq!(
        (first["height"].as_u64(), first["code"].as_str()),
        (Some(1), Some("OK"))
    );

    let history = export(
        &chain,
        Rows::History(chain.bob),
        Format::Jsonl,
        super::export::HISTORY_COLUMNS,
    );
    // Registered, paid wages, paid by alice (twice, one refused), paid the
    // shop, paid alice.
    let rows: Vec<serde_json::Value> = history
        .iter()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(rows.len(), 7, "{history:#?}");
    assert_eq!(
        rows.last()
            .map(|row| row["balance_after_block_fen"].as_u64()),
        Some(Some(50_000 + 1_000 - 2_000 - 500 + 300))
    );

    let balances = export(
        &chain,
        Rows::Nothing,
        Format::Csv,
        super::export::BALANCE_COLUMNS,
    );
    let bank = balances
        .iter()
        .find(|line| line.starts_with(&chain.bank.to_string()))
        .expect("the bank's row");
    assert!(
        bank.contains(&format!(",{},", 1_000_000 - 150_000)),
        "{bank}"
    );
    assert_eq!(
        balances.len(),
        1 + 2 + 2 + 3,
        "header, issuer and fees, two banks, three wallets"
    );
}

/// A gateway backend serving a store's blocks, as a node does (the rest of
/// the API answers nothing).
struct StoreBackend(Arc<dyn BlockStore>);

#[tonic::async_trait]
impl yuchain_gateway::Backend for StoreBackend {
    async fn submit(
        &self,
        _: pb::SignedTransaction,
    ) -> Result<yuchain_proto::Hash32, yuchain_gateway::SubmitError> {
        Err(unavailable())
    }
    async fn transaction(&self, _: yuchain_proto::Hash32) -> yuchain_gateway::TxStatus {
        yuchain_gateway::TxStatus::Unknown
    }
    async fn wait_committed(
        &self,
        _: yuchain_proto::Hash32,
        _: Duration,
    ) -> yuchain_gateway::TxStatus {
        yuchain_gateway::TxStatus::Unknown
    }
    async fn chain_info(&self) -> Result<pb::GetChainInfoResponse, yuchain_gateway::SubmitError> {
        let head = self
            .0
            .head()
            .map_err(|_| unavailable())?
            .ok_or_else(unavailable)?;
        Ok(pb::GetChainInfoResponse {
            height: head.height,
            ..pb::GetChainInfoResponse::default()
        })
    }
    async fn block(
        &self,
        _: u64,
    ) -> Result<Option<pb::GetBlockResponse>, yuchain_gateway::SubmitError> {
        Ok(None)
    }
    async fn account(
        &self,
        _: Address,
        _: u64,
        _: Duration,
    ) -> Result<pb::GetAccountResponse, yuchain_gateway::SubmitError> {
        Err(unavailable())
    }
    async fn history(
        &self,
        _: Address,
        _: Option<(u64, u32)>,
        _: usize,
    ) -> Result<yuchain_gateway::HistoryPage, yuchain_gateway::SubmitError> {
        Ok(yuchain_gateway::HistoryPage::default())
    }
    async fn payment(
        &self,
        _: Hash32,
        _: u64,
        _: Duration,
    ) -> Result<pb::GetPaymentResponse, yuchain_gateway::SubmitError> {
        Err(unavailable())
    }
    async fn block_contents(
        &self,
        height: u64,
    ) -> Result<Option<pb::StreamBlocksResponse>, yuchain_gateway::SubmitError> {
        let Some(bytes) = self.0.block(height).map_err(|_| unavailable())? else {
            return Ok(None);
        };
        let record =
            pb::CommittedBlockRecord::decode(bytes.as_slice()).map_err(|_| unavailable())?;
        Ok(Some(
            SourceBlock::from_record(height, record).into_message(),
        ))
    }
    async fn wait_durable(&self, _: u64, timeout: Duration) {
        tokio::time::sleep(timeout.min(Duration::from_millis(50))).await;
    }
}

fn unavailable() -> yuchain_gateway::SubmitError {
    yuchain_gateway::SubmitError::new(
        yuchain_gateway::ErrorKind::Unavailable,
        "NOT_READY",
        "a test backend",
    )
}

/// Serves `commits` through a real gateway on loopback and replays them
/// with the gRPC source.
fn replay_over_grpc(
    commits: &[BlockCommit],
    genesis: &AuditGenesis,
) -> Result<Summary, AuditError> {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let backend: Arc<dyn yuchain_gateway::Backend> = Arc::new(StoreBackend(memory_store(commits)));
    let gateway = runtime
        .block_on(yuchain_gateway::Gateway::bind(
            yuchain_gateway::GatewayConfig {
                listen: "127.0.0.1:0".parse().expect("an address"),
                ..yuchain_gateway::GatewayConfig::default()
            },
            backend,
        ))
        .expect("a gateway");
    let url = format!("http://{}", gateway.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(gateway.serve(async {
        let _ = stopped.await;
    }));
    let result = replay_with(Box::new(GrpcSource::new(&url).expect("a source")), genesis);
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    result
}

#[test]
fn the_grpc_source_replays_the_honest_chain_and_names_a_tampered_receipt() {
    let chain = chain();
    let summary = replay_over_grpc(&chain.commits, &chain.genesis).expect("honest");
    check_honest(&summary, &chain);
    assert_eq!(
        summary.state_compared_at, None,
        "a stream has no state to compare"
    );
    assert!(summary.source.starts_with("the node http://127.0.0.1:"));

    let mut tampered = self::chain();
    edit_record(&mut tampered, 4, |record| {
        if let Some(ledger) = record.ledger.as_mut() {
            ledger.receipts[0].code = pb::ResultCode::SenderFrozen as i32;
        }
    });
    let found = discrepancy(replay_over_grpc(&tampered.commits, &tampered.genesis));
    assert_eq!((found.height, found.what.as_str()), (4, "the receipt"));
    assert!(found.actual.starts_with("SENDER_FROZEN"), "{found}");
    // A stream without batch sequences (an older node) cannot be checked.
    let mut old = self::chain();
    edit_record(&mut old, 3, |record| record.batches.clear());
    let found = discrepancy(replay_over_grpc(&old.commits, &old.genesis));
    assert_eq!(
        (found.height, found.what.as_str()),
        (3, "batches executed (their sequence numbers)")
    );
}
