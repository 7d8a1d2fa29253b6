//! Payments through the gateways: fund wallets (issuance to the banks'
//! reserves, wallet registration, top-ups), then a steady open-loop stream
//! of wallet-to-wallet payments, each submitted with `wait_for_commit`, so
//! the latency measured is submit → durable committed receipt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tonic::transport::Channel;
use yuchain_gateway::WalletGatewayClient;
use yuchain_proto::pb::{self, transaction_body::Action};
use yuchain_proto::{Address, Hash32, SigningKey, tx};

use crate::cluster::Cluster;

/// How far ahead of the current height transactions expire.
pub const EXPIRY_WINDOW: u64 = 100_000;
/// How much each bank's reserve is issued at least, in fen (10 million
/// yuan; twice what its wallets' top-ups need if that is more).
pub const RESERVE_FEN: u64 = 1_000_000_000;
/// How much each wallet is topped up with, in fen (10,000 yuan).
pub const TOP_UP_FEN: u64 = 1_000_000;
/// How long a submission waits for its commit.
pub const COMMIT_WAIT: Duration = Duration::from_secs(30);
/// The most transactions one sender has in a mempool at once while setting
/// up (below the node's per-sender bound).
const SETUP_CHUNK: usize = 200;

/// An account the load controls.
#[derive(Debug)]
pub struct Account {
    /// Its key.
    pub key: SigningKey,
    /// Its address.
    pub address: Address,
    /// The next sequence to use.
    pub sequence: u64,
}

impl Account {
    /// A fresh account for `key` (sequence 0).
    pub fn new(key: SigningKey) -> Account {
        Account {
            address: Address::from_public_key(&key.public_key()),
            key,
            sequence: 0,
        }
    }

    /// Signs `action` with the next sequence (not yet consumed).
    pub fn sign(
        &self,
        chain_id: &str,
        expiry_height: u64,
        action: Action,
    ) -> pb::SignedTransaction {
        let body = pb::TransactionBody {
            chain_id: chain_id.to_string(),
            sender: self.address.0.to_vec(),
            public_key: self.key.public_key().0.to_vec(),
            sequence: self.sequence,
            expiry_height,
            max_fee: 1_000_000,
            action: Some(action),
        };
        tx::sign(&body, &self.key)
    }
}

/// What a submission ended as.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Committed, with its receipt code.
    Committed {
        /// The receipt's code.
        code: pb::ResultCode,
        /// The block.
        height: u64,
        /// Submit to receipt.
        latency: Duration,
    },
    /// Refused at admission, with the gateway's reason.
    Refused(String),
    /// Not committed within the wait.
    Timeout,
}

/// Submits one transaction and waits for its commit.
pub async fn submit(
    client: &mut WalletGatewayClient<Channel>,
    transaction: pb::SignedTransaction,
) -> (Hash32, Outcome) {
    let id = tx::tx_id(&transaction.body, &transaction.signature);
    let started = Instant::now();
    let request = pb::SubmitTransactionRequest {
        transaction: Some(transaction),
        wait_for_commit: true,
        wait_timeout_ms: u32::try_from(COMMIT_WAIT.as_millis()).unwrap_or(u32::MAX),
    };
    let answer = tokio::time::timeout(
        COMMIT_WAIT + Duration::from_secs(5),
        client.submit_transaction(request),
    )
    .await;
    let outcome = match answer {
        Err(_) => Outcome::Timeout,
        Ok(Err(status)) => Outcome::Refused(reason_of(&status)),
        Ok(Ok(response)) => {
            let response = response.into_inner();
            match (response.status(), response.receipt) {
                (pb::TransactionStatus::Committed, Some(receipt)) => Outcome::Committed {
                    code: receipt.code(),
                    height: response.height,
                    latency: started.elapsed(),
                },
                (pb::TransactionStatus::Expired, _) => Outcome::Refused("EXPIRED".into()),
                (pb::TransactionStatus::Unknown, _) => {
                    Outcome::Refused("UNKNOWN_AFTER_ADMISSION".into())
                }
                _ => Outcome::Timeout,
            }
        }
    };
    (id, outcome)
}

/// The stable reason of a refusal (google.rpc.ErrorInfo), or its code.
pub fn reason_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| format!("{:?}", status.code()))
}

/// Submits every transaction of one sender in order without waiting, then
/// waits for the last; returns the outcome of each.
async fn submit_in_order(
    client: &mut WalletGatewayClient<Channel>,
    transactions: Vec<pb::SignedTransaction>,
) -> Result<Vec<Outcome>> {
    let mut ids = Vec::with_capacity(transactions.len());
    for transaction in transactions {
        let id = tx::tx_id(&transaction.body, &transaction.signature);
        client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(transaction),
                wait_for_commit: false,
                wait_timeout_ms: 0,
            })
            .await
            .map_err(|status| anyhow::anyhow!("setup transaction refused: {}", status.message()))?;
        ids.push(id);
    }
    let mut outcomes = Vec::with_capacity(ids.len());
    let deadline = Instant::now() + COMMIT_WAIT;
    for id in ids {
        loop {
            let response = client
                .get_transaction(pb::GetTransactionRequest {
                    tx_id: id.0.to_vec(),
                })
                .await?
                .into_inner();
            match (response.status(), response.receipt) {
                (pb::TransactionStatus::Committed, Some(receipt)) => {
                    outcomes.push(Outcome::Committed {
                        code: receipt.code(),
                        height: response.height,
                        latency: Duration::ZERO,
                    });
                    break;
                }
                (pb::TransactionStatus::Pending, _) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (status, _) => bail!("setup transaction {id} ended {status:?}"),
            }
        }
    }
    Ok(outcomes)
}

/// Funded wallets, ready to pay.
#[derive(Debug)]
pub struct Wallets {
    /// The chain id.
    pub chain_id: String,
    /// Transactions expire at this height.
    pub expiry_height: u64,
    /// The wallets.
    pub accounts: Vec<Account>,
}

/// Issues money to every bank, registers `count` personal wallets (spread
/// over the banks) and tops each up; everything through the gateways.
pub async fn fund_wallets(cluster: &Cluster, count: usize) -> Result<Wallets> {
    let info = cluster.chain_info(0).await?;
    let chain_id = info.chain_id;
    let expiry_height = info.height.saturating_add(EXPIRY_WINDOW);
    let validators = cluster.nodes.iter().filter(|node| !node.observer).count();
    let mut issuer = Account::new(cluster.authorities.issuer.clone());
    let banks = cluster.authorities.operators.len().max(1);
    let per_bank = u64::try_from(count.div_ceil(banks)).unwrap_or(u64::MAX);
    let reserve = RESERVE_FEN.max(per_bank.saturating_mul(TOP_UP_FEN).saturating_mul(2));
    let issues: Vec<pb::SignedTransaction> = (0..cluster.authorities.operators.len())
        .map(|index| {
            let transaction = issuer.sign(
                &chain_id,
                expiry_height,
                Action::Issue(pb::Issue {
                    operator: cluster.operator_address(index).0.to_vec(),
                    amount: reserve,
                }),
            );
            issuer.sequence += 1;
            transaction
        })
        .collect();
    let mut client = cluster.client(0, Duration::from_secs(10)).await?;
    check_all_ok(submit_in_order(&mut client, issues).await?, "issuance")?;

    let mut accounts: Vec<Account> = (0..count)
        .map(|_| SigningKey::generate().map(Account::new))
        .collect::<Result<_, _>>()?;
    let mut tasks = Vec::new();
    for (bank, (_, key)) in cluster.authorities.operators.iter().enumerate() {
        let mut operator = Account::new(key.clone());
        let mine: Vec<(SigningKey, Address)> = accounts
            .iter()
            .enumerate()
            .filter(|(index, _)| index % banks == bank)
            .map(|(_, account)| (account.key.clone(), account.address))
            .collect();
        let mut transactions = Vec::with_capacity(mine.len() * 2);
        for (key, _) in &mine {
            transactions.push(operator.sign(
                &chain_id,
                expiry_height,
                Action::RegisterWallet(pb::RegisterWallet {
                    public_key: key.public_key().0.to_vec(),
                    kind: Some(pb::register_wallet::Kind::Personal(
                        pb::KycTier::Class1 as i32,
                    )),
                }),
            ));
            operator.sequence += 1;
        }
        for (_, address) in &mine {
            transactions.push(operator.sign(
                &chain_id,
                expiry_height,
                Action::Transfer(pb::Transfer {
                    to: address.0.to_vec(),
                    amount: TOP_UP_FEN,
                    memo: "top-up".into(),
                }),
            ));
            operator.sequence += 1;
        }
        let mut client = cluster
            .client((bank + 1) % validators, Duration::from_secs(10))
            .await?;
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut rest = transactions;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(SETUP_CHUNK));
                outcomes.extend(submit_in_order(&mut client, rest).await?);
                rest = tail;
            }
            check_all_ok(outcomes, "wallet registration and top-up")
        }));
    }
    let mut funded_at = 0;
    for task in tasks {
        funded_at = funded_at.max(task.await.context("a setup task panicked")??);
    }
    // Each setup transaction was seen committed by one gateway; a payment
    // through another before that node executed the block would be refused
    // (UNKNOWN_SENDER). Funded means funded on every node.
    for index in 0..cluster.nodes.len() {
        if cluster.pid(index).is_some() {
            cluster
                .wait_height(index, funded_at, COMMIT_WAIT)
                .await
                .context("waiting for every node to hold the funded wallets")?;
        }
    }
    for account in &mut accounts {
        account.sequence = 0;
    }
    Ok(Wallets {
        chain_id,
        expiry_height,
        accounts,
    })
}

/// Checks every outcome is a commit with receipt OK; returns the highest
/// height they committed at.
fn check_all_ok(outcomes: Vec<Outcome>, what: &str) -> Result<u64> {
    let mut highest = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Committed {
                code: pb::ResultCode::Ok,
                height,
                ..
            } => highest = highest.max(height),
            other => bail!("{what}: a transaction ended {other:?}"),
        }
    }
    Ok(highest)
}

/// Running totals of a payment stream.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Payments offered.
    pub offered: u64,
    /// Payments committed with receipt OK.
    pub committed: u64,
    /// Committed with another receipt code, by code.
    pub failed: BTreeMap<String, u64>,
    /// Refused at admission, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Not committed within the wait.
    pub timeouts: u64,
    /// The first few of those, to look up.
    pub timed_out: Vec<Hash32>,
    /// Not offered because every wallet had a payment in flight.
    pub skipped_busy: u64,
    /// Latencies of committed payments, in milliseconds.
    pub latencies_ms: Vec<u64>,
}

impl Stats {
    /// The `quantile` (0..=1) of the latencies, in milliseconds.
    pub fn latency_ms(&self, quantile_permille: u64) -> Option<u64> {
        let mut sorted = self.latencies_ms.clone();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable();
        let last = sorted.len() - 1;
        let index = (last as u64 * quantile_permille / 1000) as usize;
        sorted.get(index.min(last)).copied()
    }
}

/// A stream of payments between funded wallets.
pub struct PaymentLoad {
    wallets: Arc<Mutex<Vec<Option<Account>>>>,
    addresses: Vec<Address>,
    chain_id: String,
    expiry_height: u64,
    /// The totals so far.
    pub stats: Arc<Mutex<Stats>>,
    clients: Vec<WalletGatewayClient<Channel>>,
    next_wallet: usize,
    in_flight: tokio::task::JoinSet<()>,
}

impl PaymentLoad {
    /// A load over `wallets`, sent round-robin through `clients`.
    pub fn new(wallets: Wallets, clients: Vec<WalletGatewayClient<Channel>>) -> PaymentLoad {
        PaymentLoad {
            addresses: wallets
                .accounts
                .iter()
                .map(|account| account.address)
                .collect(),
            wallets: Arc::new(Mutex::new(wallets.accounts.into_iter().map(Some).collect())),
            chain_id: wallets.chain_id,
            expiry_height: wallets.expiry_height,
            stats: Arc::default(),
            clients,
            next_wallet: 0,
            in_flight: tokio::task::JoinSet::new(),
        }
    }

    /// Offers one payment from the next wallet without one in flight.
    pub fn offer(&mut self) {
        let (sender_index, account, to) = {
            let mut wallets = self.wallets.lock().unwrap_or_else(PoisonError::into_inner);
            let count = wallets.len();
            let mut found = None;
            for step in 0..count {
                let index = (self.next_wallet + step) % count;
                if wallets[index].is_some() {
                    found = Some(index);
                    break;
                }
            }
            let Some(index) = found else {
                drop(wallets);
                self.lock_stats().skipped_busy += 1;
                return;
            };
            self.next_wallet = (index + 1) % count;
            let to_index = (index + 1 + index % (count - 1).max(1)) % count;
            let to = if to_index == index {
                (index + 1) % count
            } else {
                to_index
            };
            let Some(account) = wallets[index].take() else {
                return;
            };
            (index, account, self.addresses[to])
        };
        if self.clients.is_empty() {
            return;
        }
        let mut client = self.clients[sender_index % self.clients.len()].clone();
        let transaction = account.sign(
            &self.chain_id,
            self.expiry_height,
            Action::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: 100,
                memo: String::new(),
            }),
        );
        let wallets = Arc::clone(&self.wallets);
        let stats = Arc::clone(&self.stats);
        self.lock_stats().offered += 1;
        self.in_flight.spawn(async move {
            let (id, outcome) = submit(&mut client, transaction).await;
            let mut account = account;
            {
                let mut stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
                match &outcome {
                    Outcome::Committed { code, latency, .. } => {
                        account.sequence += 1;
                        if *code == pb::ResultCode::Ok {
                            stats.committed += 1;
                            stats
                                .latencies_ms
                                .push(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
                        } else {
                            *stats.failed.entry(format!("{code:?}")).or_default() += 1;
                        }
                    }
                    Outcome::Refused(reason) => {
                        *stats.refused.entry(reason.clone()).or_default() += 1;
                    }
                    Outcome::Timeout => {
                        stats.timeouts += 1;
                        if stats.timed_out.len() < 10 {
                            stats.timed_out.push(id);
                        }
                    }
                }
            }
            // A payment that timed out may still commit: its wallet stays
            // out of the rotation rather than risk reusing a sequence.
            if outcome != Outcome::Timeout {
                wallets.lock().unwrap_or_else(PoisonError::into_inner)[sender_index] =
                    Some(account);
            }
        });
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reaps finished payments.
    pub fn reap(&mut self) {
        while self.in_flight.try_join_next().is_some() {}
    }

    /// Waits for every payment in flight, at most `timeout`.
    pub async fn drain(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            while self.in_flight.join_next().await.is_some() {}
        })
        .await;
    }

    /// Payments in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A copy of the totals.
    pub fn snapshot(&self) -> Stats {
        self.lock_stats().clone()
    }
}
