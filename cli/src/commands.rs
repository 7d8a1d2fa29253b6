//! The commands of wallets, merchants, banks (operators), the issuer and
//! anyone reading the chain: each builds one request or one signed
//! transaction, sends it through a node's gateway, and prints the answer for
//! people (or `--json` for scripts). Account balances are checked against
//! the validators' certificate before they are shown.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use prost::Message as _;
use serde_json::json;
use yuchain_proto::pb::transaction_body::Action;
use yuchain_proto::pb::{self, register_wallet};
use yuchain_proto::{Address, Hash32, SigningKey, tx};

use crate::client::{
    ClientArgs, Profile, Sent, Settings, default_profile_path, parse_address, parse_amount,
    parse_id, parse_public_key, refusal, result_name, yuan,
};
use crate::proof::{CheckedAccount, check_account, check_payment};

/// The most fee a transaction the CLI signs agrees to pay unless told
/// otherwise: 10 yuan. The chain charges its own schedule's fee, never more
/// than this.
pub const DEFAULT_MAX_FEE: u64 = 1_000;

/// Options of every command that signs.
#[derive(Args, Clone, Debug)]
pub struct SignArgs {
    /// Sign for this account instead of the key's own (an account whose key
    /// was rotated keeps its first address).
    #[arg(long, value_name = "ADDRESS")]
    pub sender: Option<String>,
    /// The most fee to pay, in yuan.
    #[arg(long, value_name = "YUAN", default_value = "10.00")]
    pub max_fee: String,
}

impl SignArgs {
    fn sender(&self) -> Result<Option<Address>> {
        self.sender.as_deref().map(parse_address).transpose()
    }

    fn max_fee(&self) -> Result<u64> {
        parse_amount(&self.max_fee)
    }
}

/// `yuchain wallet ...`
// The flattened `sign` options are documented on [`SignArgs`].
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// An account's balance and state, checked against the validators'
    /// certificate (the key's own account unless an address is given).
    Balance {
        /// The account (yu1...).
        address: Option<String>,
        /// Wait until the certified state reaches this height (e.g. a
        /// receipt's).
        #[arg(long, default_value_t = 0)]
        min_height: u64,
        /// Also save the node's answer (protobuf) here, to check it again
        /// offline with `yuchain wallet verify-proof`.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
    },
    /// Pay another wallet (or a merchant, with --order).
    Pay {
        /// The payee (yu1...).
        #[arg(long)]
        to: Option<String>,
        /// The amount in yuan, e.g. 12.34.
        #[arg(long)]
        amount: Option<String>,
        /// A note for the payee (at most 256 bytes).
        #[arg(long, default_value = "")]
        memo: String,
        /// Pay a merchant for this order id (a refundable merchant payment).
        #[arg(long, value_name = "ORDER_ID")]
        order: Option<String>,
        /// A merchant's payment request (`yuchain:pay?...`, from `yuchain
        /// merchant charge`) instead of --to, --amount and --order.
        #[arg(long, value_name = "URI", conflicts_with_all = ["to", "amount", "order"])]
        request: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// An account's transactions, newest first.
    History {
        /// The account (the key's own unless given).
        address: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue after a previous page (its `next page` token).
        #[arg(long)]
        page: Option<String>,
    },
    /// A transaction's status and receipt.
    Tx {
        /// The transaction id (64 hex digits).
        id: String,
    },
    /// Check a saved account answer offline against the genesis file's
    /// validators.
    VerifyProof {
        /// The answer saved by `yuchain wallet balance --save`.
        file: PathBuf,
        /// The account it is about.
        #[arg(long)]
        address: String,
    },
}

/// `yuchain merchant ...`
// The flattened `sign` options are documented on [`SignArgs`].
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum MerchantCommand {
    /// Make a payment request for a customer to pay with `yuchain wallet pay
    /// --request` (show it as a QR code at the till).
    Charge {
        /// The amount in yuan.
        #[arg(long)]
        amount: String,
        /// The order id (at most 64 bytes).
        #[arg(long)]
        order: String,
    },
    /// Refund part or all of a merchant payment to its payer.
    Refund {
        /// The payment's transaction id.
        #[arg(long)]
        payment: String,
        /// The amount in yuan.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// The merchant payments this merchant received, newest first, each
    /// proved against the validators' certificate (or marked as not yet
    /// certified).
    Payments {
        /// The merchant (the key's own unless given).
        address: Option<String>,
        /// How many history entries to look through.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Prove one payment: that it was made to this merchant, for how much,
    /// and how much of it was refunded (the check before handing over the
    /// goods). Trusts no node: the answer is checked with the validators'
    /// keys.
    Payment {
        /// The payment's transaction id (what the payer's wallet shows).
        id: String,
        /// Wait until the certified state reaches this height (the height
        /// of the payer's receipt, to see the payment as soon as it is
        /// certified).
        #[arg(long, default_value_t = 0)]
        min_height: u64,
    },
}

/// A KYC class, as typed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Tier {
    /// Class 1: full KYC.
    #[value(name = "1")]
    One,
    /// Class 2.
    #[value(name = "2")]
    Two,
    /// Class 3.
    #[value(name = "3")]
    Three,
    /// Class 4: a phone number only.
    #[value(name = "4")]
    Four,
}

impl Tier {
    fn to_pb(self) -> pb::KycTier {
        match self {
            Tier::One => pb::KycTier::Class1,
            Tier::Two => pb::KycTier::Class2,
            Tier::Three => pb::KycTier::Class3,
            Tier::Four => pb::KycTier::Class4,
        }
    }
}

/// A merchant category, as typed.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[allow(missing_docs)]
pub enum Category {
    Retail,
    Catering,
    Transit,
    Hotel,
    Tourism,
    Utilities,
    Healthcare,
    Education,
    Other,
}

impl Category {
    fn to_pb(self) -> pb::MerchantCategory {
        match self {
            Category::Retail => pb::MerchantCategory::Retail,
            Category::Catering => pb::MerchantCategory::Catering,
            Category::Transit => pb::MerchantCategory::Transit,
            Category::Hotel => pb::MerchantCategory::Hotel,
            Category::Tourism => pb::MerchantCategory::Tourism,
            Category::Utilities => pb::MerchantCategory::Utilities,
            Category::Healthcare => pb::MerchantCategory::Healthcare,
            Category::Education => pb::MerchantCategory::Education,
            Category::Other => pb::MerchantCategory::Other,
        }
    }
}

/// `yuchain operator ...` (a bank, signing with its operator key).
// The flattened `sign` options are documented on [`SignArgs`].
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Open a wallet for a customer's public key: a person's in a KYC class,
    /// a merchant's or a company's.
    Register {
        /// The customer's public key (64 hex digits, from `yuchain keys
        /// show`).
        #[arg(long)]
        public_key: String,
        /// A person's wallet in this KYC class.
        #[arg(long, conflicts_with_all = ["merchant", "corporate"])]
        tier: Option<Tier>,
        /// A merchant's wallet in this category.
        #[arg(long, conflicts_with = "corporate")]
        merchant: Option<Category>,
        /// A company's wallet with this name.
        #[arg(long)]
        corporate: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Move a personal wallet to another KYC class.
    Tier {
        /// The wallet.
        wallet: String,
        /// The class.
        tier: Tier,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Freeze a wallet (neither send nor receive; with --receive-only it may
    /// still receive).
    Freeze {
        /// The wallet.
        wallet: String,
        /// Let it receive.
        #[arg(long)]
        receive_only: bool,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Lift a freeze.
    Unfreeze {
        /// The wallet.
        wallet: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Replace a wallet's key after a lost phone (its address stays).
    RotateKey {
        /// The wallet.
        wallet: String,
        /// The new public key (64 hex digits).
        #[arg(long)]
        new_public_key: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Close a wallet at zero balance.
    Close {
        /// The wallet.
        wallet: String,
        #[command(flatten)]
        sign: SignArgs,
    },
}

/// `yuchain issuer ...` (the central bank's branch, with the issuer key).
// The flattened `sign` options are documented on [`SignArgs`].
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum IssuerCommand {
    /// Create money in a bank's reserve.
    Issue {
        /// The operator (bank) address.
        #[arg(long)]
        operator: String,
        /// The amount in yuan.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Withdraw money from a bank's reserve.
    Redeem {
        /// The operator (bank) address.
        #[arg(long)]
        operator: String,
        /// The amount in yuan.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Admit a new bank with its reserve key.
    RegisterOperator {
        /// The bank's public key (64 hex digits).
        #[arg(long)]
        public_key: String,
        /// Its name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Suspend a bank.
    SuspendOperator {
        /// The operator address.
        operator: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Lift a bank's suspension.
    ReinstateOperator {
        /// The operator address.
        operator: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Replace the issuer key (signed with the current one).
    RotateKey {
        /// The new public key (64 hex digits).
        #[arg(long)]
        new_public_key: String,
        #[command(flatten)]
        sign: SignArgs,
    },
}

/// `yuchain chain ...`
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// The chain's id, head, validators and money supply.
    Info,
    /// A committed block.
    Block {
        /// Its height.
        height: u64,
    },
    /// Follow committed blocks as they come (from a height; default the
    /// head), reconnecting and resuming after a disconnect.
    Watch {
        /// The first height to show.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many blocks.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `yuchain profile ...`
#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Write a profile with the node, key and genesis file to use.
    Init {
        /// Where to write it (default: $YUCHAIN_PROFILE or
        /// ~/.config/yuchain/profile.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the settings commands would use.
    Show,
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn own_or(settings: &Settings, address: Option<&str>) -> Result<Address> {
    match address {
        Some(text) => parse_address(text),
        None => {
            let key = settings.signing_key().context(
                "no address given, so the key's own account is meant, and there is no key",
            )?;
            Ok(Address::from_public_key(&key.public_key()))
        }
    }
}

fn account_json(account: &pb::Account) -> serde_json::Value {
    json!({
        "address": Address::from_slice(&account.address).map(|a| a.to_string()).unwrap_or_default(),
        "balance_fen": account.balance,
        "balance": yuan(account.balance),
        "kind": account.kind().as_str_name(),
        "status": account.status().as_str_name(),
        "tier": account.tier().as_str_name(),
        "next_sequence": account.next_sequence,
        "name": account.name,
    })
}

fn status_name(account: &pb::Account) -> &'static str {
    match account.status() {
        pb::AccountStatus::Active => "active",
        pb::AccountStatus::Frozen => "frozen",
        pb::AccountStatus::ReceiveOnly => "receive only",
        pb::AccountStatus::Closed => "closed",
        pb::AccountStatus::Suspended => "suspended",
        pb::AccountStatus::Unspecified => "unknown",
    }
}

fn print_checked(checked: &CheckedAccount, address: &Address, pinned: bool) {
    match &checked.account {
        Some(account) => {
            println!("account   {address}");
            println!("balance   {} yuan", yuan(account.balance));
            println!("status    {}", status_name(account));
            if account.tier() != pb::KycTier::Unspecified {
                println!("tier      {}", account.tier().as_str_name());
            }
        }
        None => println!("account   {address} does not exist"),
    }
    println!(
        "as of     height {} (state root {})",
        checked.height, checked.state_root
    );
    println!(
        "verified  by {} validators' certificate in block {}{}",
        checked.signers,
        checked.certified_by,
        if pinned {
            ", keys from the genesis file"
        } else {
            "; UNPINNED: the keys came from the node itself, pass --genesis to pin them"
        }
    );
}

/// Said under a proof checked with keys the node itself reported.
const UNPINNED_NOTE: &str =
    "UNPINNED: the validators' keys came from the node itself; pass --genesis to pin them";

fn print_sent(settings: &Settings, sent: &Sent, what: &str) -> Result<()> {
    if settings.json {
        return print_json(&json!({
            "tx_id": sent.id.to_string(),
            "height": sent.height,
            "result": result_name(sent.receipt.code()),
            "fee_fen": sent.receipt.fee,
        }));
    }
    println!("{what}");
    println!("tx        {}", sent.id);
    println!(
        "committed at height {}, fee {} yuan",
        sent.height,
        yuan(sent.receipt.fee)
    );
    Ok(())
}

async fn send(settings: &Settings, sign: &SignArgs, action: Action, what: &str) -> Result<Sent> {
    let key = settings.signing_key()?;
    let mut node = settings.connect().await?;
    let sent = node
        .send(
            &key,
            sign.sender()?,
            action,
            sign.max_fee()?,
            settings.genesis.as_deref(),
        )
        .await?;
    print_sent(settings, &sent, what)?;
    Ok(sent)
}

/// A merchant's payment request: `yuchain:pay?to=..&amount=..&order=..`.
pub fn payment_request(merchant: &Address, amount: u64, order: &str) -> String {
    format!(
        "yuchain:pay?to={merchant}&amount={}&order={}",
        yuchain_proto::amount::format_yuan(amount),
        percent_encode(order)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .filter(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| anyhow!("a bad %-escape in the payment request"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("the payment request's order id is not UTF-8"))
}

/// Parses a payment request into (merchant, amount in fen, order id).
pub fn parse_payment_request(uri: &str) -> Result<(Address, u64, String)> {
    let query = uri
        .strip_prefix("yuchain:pay?")
        .ok_or_else(|| anyhow!("{uri:?} is not a payment request (yuchain:pay?...)"))?;
    let (mut to, mut amount, mut order) = (None, None, None);
    for pair in query.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("payment request part {pair:?} is not name=value"))?;
        let repeated = match name {
            "to" => to.is_some(),
            "amount" => amount.is_some(),
            "order" => order.is_some(),
            _ => false,
        };
        if repeated {
            bail!("the payment request names {name} twice");
        }
        match name {
            "to" => to = Some(parse_address(value)?),
            "amount" => amount = Some(parse_amount(value)?),
            "order" => order = Some(percent_decode(value)?),
            other => bail!("the payment request has an unknown part {other:?}"),
        }
    }
    match (to, amount, order) {
        (Some(to), Some(amount), Some(order)) => Ok((to, amount, order)),
        _ => bail!("a payment request needs to, amount and order"),
    }
}

/// Runs a wallet command.
pub async fn wallet(args: &ClientArgs, command: &WalletCommand) -> Result<()> {
    let settings = Settings::resolve(args)?;
    match command {
        WalletCommand::Balance {
            address,
            min_height,
            save,
        } => {
            let address = own_or(&settings, address.as_deref())?;
            let mut node = settings.connect().await?;
            let (validators, pinned) = node.validators(settings.genesis.as_deref()).await?;
            let answer = node.account(&address, *min_height).await?;
            let checked = check_account(&answer, &address, &validators, *min_height)?;
            if let Some(path) = save {
                std::fs::write(path, answer.encode_to_vec())
                    .with_context(|| format!("saving the answer to {}", path.display()))?;
            }
            if settings.json {
                return print_json(&json!({
                    "address": address.to_string(),
                    "account": checked.account.as_ref().map(account_json),
                    "height": checked.height,
                    "state_root": checked.state_root.to_string(),
                    "certified_by_block": checked.certified_by,
                    "signers": checked.signers,
                    "pinned": pinned,
                }));
            }
            print_checked(&checked, &address, pinned);
            Ok(())
        }
        WalletCommand::VerifyProof { file, address } => {
            let address = parse_address(address)?;
            let genesis = settings.genesis.as_deref().ok_or_else(|| {
                anyhow!("checking offline needs the validators' keys: pass --genesis FILE")
            })?;
            let validators = crate::client::genesis_validators(genesis)?;
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let answer = pb::GetAccountResponse::decode(bytes.as_slice())
                .with_context(|| format!("{} is not a saved account answer", file.display()))?;
            let checked = check_account(&answer, &address, &validators, 0)?;
            if settings.json {
                return print_json(&json!({
                    "valid": true,
                    "account": checked.account.as_ref().map(account_json),
                    "height": checked.height,
                    "signers": checked.signers,
                }));
            }
            print_checked(&checked, &address, true);
            Ok(())
        }
        WalletCommand::Pay {
            to,
            amount,
            memo,
            order,
            request,
            sign,
        } => {
            let (to, amount, order) = match request {
                Some(uri) => {
                    let (to, amount, order) = parse_payment_request(uri)?;
                    (to, amount, Some(order))
                }
                None => {
                    let to = to
                        .as_deref()
                        .ok_or_else(|| anyhow!("say whom to pay with --to ADDRESS"))?;
                    let amount = amount
                        .as_deref()
                        .ok_or_else(|| anyhow!("say how much with --amount YUAN"))?;
                    (parse_address(to)?, parse_amount(amount)?, order.clone())
                }
            };
            let action = match &order {
                Some(order_id) => Action::MerchantPayment(pb::MerchantPayment {
                    merchant: to.0.to_vec(),
                    amount,
                    order_id: order_id.clone(),
                }),
                None => Action::Transfer(pb::Transfer {
                    to: to.0.to_vec(),
                    amount,
                    memo: memo.clone(),
                }),
            };
            send(
                &settings,
                sign,
                action,
                &format!("paid {} yuan to {to}", yuan(amount)),
            )
            .await
            .map(drop)
        }
        WalletCommand::History {
            address,
            limit,
            page,
        } => {
            let address = own_or(&settings, address.as_deref())?;
            let mut node = settings.connect().await?;
            let response = node
                .client
                .list_account_history(pb::ListAccountHistoryRequest {
                    address: address.0.to_vec(),
                    page_size: *limit,
                    page_token: page.clone().unwrap_or_default(),
                })
                .await
                .map_err(|status| refusal(&status))?
                .into_inner();
            print_history(&settings, &address, &response)
        }
        WalletCommand::Tx { id } => {
            let id = parse_id(id)?;
            let mut node = settings.connect().await?;
            let response = node
                .client
                .get_transaction(pb::GetTransactionRequest {
                    tx_id: id.0.to_vec(),
                })
                .await
                .map_err(|status| refusal(&status))?
                .into_inner();
            let status = response
                .status()
                .as_str_name()
                .trim_start_matches("TRANSACTION_STATUS_")
                .to_string();
            if settings.json {
                return print_json(&json!({
                    "tx_id": id.to_string(),
                    "status": status,
                    "height": response.height,
                    "result": response.receipt.as_ref().map(|r| result_name(r.code())),
                    "fee_fen": response.receipt.as_ref().map(|r| r.fee),
                }));
            }
            println!("tx        {id}");
            println!("status    {status}");
            if let Some(receipt) = &response.receipt {
                println!("height    {}", response.height);
                println!("result    {}", result_name(receipt.code()));
                println!("fee       {} yuan", yuan(receipt.fee));
            }
            Ok(())
        }
    }
}

/// What a history entry did, for people: (description, signed amount).
fn describe(entry: &pb::AccountHistoryEntry, me: &Address) -> (String, Option<i128>) {
    let Some(transaction) = &entry.transaction else {
        return ("(no transaction)".into(), None);
    };
    let Ok(body) = pb::TransactionBody::decode(transaction.body.as_slice()) else {
        return ("(undecodable transaction)".into(), None);
    };
    let sender = Address::from_slice(&body.sender).ok();
    let outgoing = sender.as_ref() == Some(me);
    let other = |bytes: &[u8]| {
        Address::from_slice(bytes)
            .map(|address| address.to_string())
            .unwrap_or_default()
    };
    let from = sender
        .map(|address| address.to_string())
        .unwrap_or_default();
    let signed = |amount: u64, out: bool| {
        let amount = i128::from(amount);
        Some(if out { -amount } else { amount })
    };
    match body.action {
        Some(Action::Transfer(transfer)) if outgoing => (
            format!("to {} {}", other(&transfer.to), transfer.memo),
            signed(transfer.amount, true),
        ),
        Some(Action::Transfer(transfer)) => (
            format!("from {from} {}", transfer.memo),
            signed(transfer.amount, false),
        ),
        Some(Action::MerchantPayment(payment)) if outgoing => (
            format!(
                "merchant {} order {}",
                other(&payment.merchant),
                payment.order_id
            ),
            signed(payment.amount, true),
        ),
        Some(Action::MerchantPayment(payment)) => (
            format!("payment from {from} order {}", payment.order_id),
            signed(payment.amount, false),
        ),
        Some(Action::Refund(refund)) if outgoing => (
            format!("refund of {}", hex::encode(&refund.payment_id)),
            signed(refund.amount, true),
        ),
        Some(Action::Refund(refund)) => {
            (format!("refund from {from}"), signed(refund.amount, false))
        }
        Some(Action::Issue(issue)) => ("issued".into(), signed(issue.amount, false)),
        Some(Action::Redeem(redeem)) => ("redeemed".into(), signed(redeem.amount, true)),
        Some(action) => (action_name(&action).to_string(), None),
        None => ("(no action)".into(), None),
    }
}

/// An administrative action's name.
fn action_name(action: &Action) -> &'static str {
    match action {
        Action::RegisterOperator(_) => "register operator",
        Action::RegisterWallet(_) => "register wallet",
        Action::SetTier(_) => "set tier",
        Action::Freeze(_) => "freeze",
        Action::Unfreeze(_) => "unfreeze",
        Action::RotateKey(_) => "rotate key",
        Action::CloseWallet(_) => "close wallet",
        Action::SuspendOperator(_) => "suspend operator",
        Action::ReinstateOperator(_) => "reinstate operator",
        Action::RotateOperatorKey(_) => "rotate operator key",
        Action::RotateIssuerKey(_) => "rotate issuer key",
        Action::Issue(_) => "issue",
        Action::Redeem(_) => "redeem",
        Action::Transfer(_) => "transfer",
        Action::MerchantPayment(_) => "merchant payment",
        Action::Refund(_) => "refund",
    }
}

fn print_history(
    settings: &Settings,
    address: &Address,
    response: &pb::ListAccountHistoryResponse,
) -> Result<()> {
    if settings.json {
        let entries: Vec<serde_json::Value> = response
            .entries
            .iter()
            .map(|entry| {
                let (what, amount) = describe(entry, address);
                json!({
                    "height": entry.height,
                    "index": entry.index,
                    "tx_id": hex::encode(&entry.tx_id),
                    "what": what.trim(),
                    "amount_fen": amount.map(|a| a.to_string()),
                    "result": entry.receipt.as_ref().map(|r| result_name(r.code())),
                })
            })
            .collect();
        return print_json(&json!({
            "address": address.to_string(),
            "entries": entries,
            "next_page": response.next_page_token,
        }));
    }
    if response.entries.is_empty() {
        println!("no transactions");
    }
    for entry in &response.entries {
        let (what, amount) = describe(entry, address);
        let amount = match amount {
            Some(value) if value < 0 => format!("-{}", yuan(u64::try_from(-value).unwrap_or(0))),
            Some(value) => format!("+{}", yuan(u64::try_from(value).unwrap_or(0))),
            None => String::new(),
        };
        let result = entry
            .receipt
            .as_ref()
            .map(|receipt| receipt.code())
            .filter(|code| *code != pb::ResultCode::Ok)
            .map(|code| format!("  [{}]", result_name(code)))
            .unwrap_or_default();
        println!(
            "{:>8}.{:<4} {:>16}  {}{result}",
            entry.height,
            entry.index,
            amount,
            what.trim()
        );
    }
    if !response.next_page_token.is_empty() {
        println!("more: --page {}", response.next_page_token);
    }
    Ok(())
}

/// Runs a merchant command.
pub async fn merchant(args: &ClientArgs, command: &MerchantCommand) -> Result<()> {
    let settings = Settings::resolve(args)?;
    match command {
        MerchantCommand::Charge { amount, order } => {
            let key = settings.signing_key()?;
            let merchant = Address::from_public_key(&key.public_key());
            let amount = parse_amount(amount)?;
            if order.is_empty() || order.len() > 64 {
                bail!("an order id is 1 to 64 bytes");
            }
            let request = payment_request(&merchant, amount, order);
            if settings.json {
                return print_json(&json!({ "request": request }));
            }
            println!("{request}");
            Ok(())
        }
        MerchantCommand::Refund {
            payment,
            amount,
            sign,
        } => {
            let payment = parse_id(payment)?;
            let amount = parse_amount(amount)?;
            let action = Action::Refund(pb::Refund {
                payment_id: payment.0.to_vec(),
                amount,
            });
            send(
                &settings,
                sign,
                action,
                &format!("refunded {} yuan of payment {payment}", yuan(amount)),
            )
            .await
            .map(drop)
        }
        MerchantCommand::Payments { address, limit } => {
            let merchant = own_or(&settings, address.as_deref())?;
            let mut node = settings.connect().await?;
            let (validators, pinned) = node.validators(settings.genesis.as_deref()).await?;
            let response = node
                .client
                .list_account_history(pb::ListAccountHistoryRequest {
                    address: merchant.0.to_vec(),
                    page_size: *limit,
                    page_token: String::new(),
                })
                .await
                .map_err(|status| refusal(&status))?
                .into_inner();
            let mut listed = Vec::new();
            for (id, payer, amount, order, height) in merchant_payments(&response, &merchant) {
                let answer = node.payment(&id, 0).await?;
                let checked = check_payment(&answer, &id, &validators, 0)?;
                let proof = match &checked.payment {
                    Some(record) => {
                        ensure_is_listed(record, &merchant, &payer, amount)?;
                        Proof::Proved(record.refunded)
                    }
                    None if checked.height < height => Proof::NotYetCertified,
                    None => bail!(
                        "the node lists payment {id} at height {height}, but the state the \
                         validators certified at height {} has no such payment: do not trust \
                         this node's history",
                        checked.height
                    ),
                };
                listed.push((id, payer, amount, order, height, proof));
            }
            if settings.json {
                let list: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|(id, payer, amount, order, height, proof)| {
                        json!({"payment_id": id.to_string(), "payer": payer.to_string(),
                        "amount_fen": amount, "order": order, "height": height,
                        "proved": matches!(proof, Proof::Proved(_)),
                        "refunded_fen": match proof {
                            Proof::Proved(refunded) => Some(*refunded),
                            Proof::NotYetCertified => None,
                        }})
                    })
                    .collect();
                return print_json(&json!({ "payments": list, "pinned": pinned }));
            }
            if listed.is_empty() {
                println!("no merchant payments");
            }
            for (id, payer, amount, order, height, proof) in listed {
                let proof = match proof {
                    Proof::Proved(0) => "proved".to_string(),
                    Proof::Proved(refunded) => {
                        format!("proved, {} yuan refunded", yuan(refunded))
                    }
                    Proof::NotYetCertified => "not yet certified".to_string(),
                };
                println!(
                    "{height:>8}  {:>14}  order {order}  from {payer}  payment {id}  ({proof})",
                    yuan(amount)
                );
            }
            if !pinned {
                println!("{UNPINNED_NOTE}");
            }
            Ok(())
        }
        MerchantCommand::Payment { id, min_height } => {
            let id = parse_id(id)?;
            let merchant = settings
                .key
                .as_ref()
                .map(|_| settings.signing_key())
                .transpose()?;
            let mut node = settings.connect().await?;
            let (validators, pinned) = node.validators(settings.genesis.as_deref()).await?;
            let answer = node.payment(&id, *min_height).await?;
            let checked = check_payment(&answer, &id, &validators, *min_height)?;
            let record = checked.payment.as_ref();
            let to_me = match (&merchant, record) {
                (Some(key), Some(record)) => {
                    Some(record.merchant == Address::from_public_key(&key.public_key()).0)
                }
                _ => None,
            };
            if settings.json {
                return print_json(&json!({
                    "payment_id": id.to_string(),
                    "found": record.is_some(),
                    "payer": record.and_then(|record| Address::from_slice(&record.payer).ok())
                        .map(|address| address.to_string()),
                    "merchant": record.and_then(|record| Address::from_slice(&record.merchant).ok())
                        .map(|address| address.to_string()),
                    "amount_fen": record.map(|record| record.amount),
                    "refunded_fen": record.map(|record| record.refunded),
                    "order": record.map(|record| record.order_id.clone()),
                    "to_this_merchant": to_me,
                    "height": checked.height,
                    "certified_by_block": checked.certified_by,
                    "signers": checked.signers,
                    "pinned": pinned,
                }));
            }
            match record {
                None => println!(
                    "no merchant payment {id} in the state certified at height {} (not made, \
                     not yet certified: retry with --min-height <the receipt's height>, or \
                     not a merchant payment)",
                    checked.height
                ),
                Some(record) => {
                    let address = |bytes: &[u8]| {
                        Address::from_slice(bytes)
                            .map_or_else(|_| hex::encode(bytes), |address| address.to_string())
                    };
                    println!("payment   {id}");
                    println!("amount    {} yuan", yuan(record.amount));
                    println!("refunded  {} yuan", yuan(record.refunded));
                    println!("order     {}", record.order_id);
                    println!("payer     {}", address(&record.payer));
                    println!("merchant  {}", address(&record.merchant));
                    if to_me == Some(false) {
                        println!(
                            "WARNING   this payment is to another merchant, not to this key's"
                        );
                    }
                    println!(
                        "proved    at height {}, certified by block {} ({} signatures)",
                        checked.height, checked.certified_by, checked.signers
                    );
                }
            }
            if !pinned {
                println!("{UNPINNED_NOTE}");
            }
            Ok(())
        }
    }
}

/// Where a listed payment stands against the certified state.
enum Proof {
    /// In the certified state, with this much refunded.
    Proved(u64),
    /// Newer than the certified height.
    NotYetCertified,
}

/// The proved record must be the payment the history listed.
fn ensure_is_listed(
    record: &pb::PaymentRecord,
    merchant: &Address,
    payer: &Address,
    amount: u64,
) -> Result<()> {
    if record.merchant != merchant.0 || record.payer != payer.0 || record.amount != amount {
        bail!(
            "the node's history shows a payment that differs from the proved record (merchant, \
             payer or amount): do not trust this node's history"
        );
    }
    Ok(())
}

/// The merchant payments to `merchant` in a history page that took effect:
/// (payment id, payer, amount, order id, height).
fn merchant_payments(
    response: &pb::ListAccountHistoryResponse,
    merchant: &Address,
) -> Vec<(Hash32, Address, u64, String, u64)> {
    response
        .entries
        .iter()
        .filter(|entry| {
            entry
                .receipt
                .as_ref()
                .is_some_and(|receipt| receipt.code() == pb::ResultCode::Ok)
        })
        .filter_map(|entry| {
            let transaction = entry.transaction.as_ref()?;
            let body = pb::TransactionBody::decode(transaction.body.as_slice()).ok()?;
            let Some(Action::MerchantPayment(payment)) = body.action else {
                return None;
            };
            if payment.merchant != merchant.0 {
                return None;
            }
            Some((
                tx::tx_id(&transaction.body, &transaction.signature),
                Address::from_slice(&body.sender).ok()?,
                payment.amount,
                payment.order_id,
                entry.height,
            ))
        })
        .collect()
}

/// Runs an operator command.
pub async fn operator(args: &ClientArgs, command: &OperatorCommand) -> Result<()> {
    let settings = Settings::resolve(args)?;
    let wallet = |text: &str| parse_address(text).map(|address| address.0.to_vec());
    let (action, what, sign) = match command {
        OperatorCommand::Register {
            public_key,
            tier,
            merchant,
            corporate,
            sign,
        } => {
            let key = parse_public_key(public_key)?;
            let kind = match (tier, merchant, corporate) {
                (Some(tier), None, None) => register_wallet::Kind::Personal(tier.to_pb().into()),
                (None, Some(category), None) => {
                    register_wallet::Kind::Merchant(category.to_pb().into())
                }
                (None, None, Some(name)) => {
                    register_wallet::Kind::Corporate(pb::CorporateWallet { name: name.clone() })
                }
                _ => bail!(
                    "say what wallet to open: --tier N, --merchant CATEGORY or --corporate NAME"
                ),
            };
            let address = Address::from_public_key(&key);
            (
                Action::RegisterWallet(pb::RegisterWallet {
                    public_key: key.0.to_vec(),
                    kind: Some(kind),
                }),
                format!("registered wallet {address}"),
                sign,
            )
        }
        OperatorCommand::Tier {
            wallet: w,
            tier,
            sign,
        } => (
            Action::SetTier(pb::SetTier {
                wallet: wallet(w)?,
                tier: tier.to_pb().into(),
            }),
            format!("moved {w} to {}", tier.to_pb().as_str_name()),
            sign,
        ),
        OperatorCommand::Freeze {
            wallet: w,
            receive_only,
            sign,
        } => (
            Action::Freeze(pb::Freeze {
                wallet: wallet(w)?,
                mode: if *receive_only {
                    pb::FreezeMode::ReceiveOnly
                } else {
                    pb::FreezeMode::Full
                }
                .into(),
            }),
            format!("froze {w}"),
            sign,
        ),
        OperatorCommand::Unfreeze { wallet: w, sign } => (
            Action::Unfreeze(pb::Unfreeze { wallet: wallet(w)? }),
            format!("unfroze {w}"),
            sign,
        ),
        OperatorCommand::RotateKey {
            wallet: w,
            new_public_key,
            sign,
        } => (
            Action::RotateKey(pb::RotateKey {
                wallet: wallet(w)?,
                new_public_key: parse_public_key(new_public_key)?.0.to_vec(),
            }),
            format!("rotated the key of {w}"),
            sign,
        ),
        OperatorCommand::Close { wallet: w, sign } => (
            Action::CloseWallet(pb::CloseWallet { wallet: wallet(w)? }),
            format!("closed {w}"),
            sign,
        ),
    };
    send(&settings, sign, action, &what).await.map(drop)
}

/// Runs an issuer command.
pub async fn issuer(args: &ClientArgs, command: &IssuerCommand) -> Result<()> {
    let settings = Settings::resolve(args)?;
    let (action, what, sign) = match command {
        IssuerCommand::Issue {
            operator,
            amount,
            sign,
        } => {
            let amount = parse_amount(amount)?;
            (
                Action::Issue(pb::Issue {
                    operator: parse_address(operator)?.0.to_vec(),
                    amount,
                }),
                format!("issued {} yuan to {operator}", yuan(amount)),
                sign,
            )
        }
        IssuerCommand::Redeem {
            operator,
            amount,
            sign,
        } => {
            let amount = parse_amount(amount)?;
            (
                Action::Redeem(pb::Redeem {
                    operator: parse_address(operator)?.0.to_vec(),
                    amount,
                }),
                format!("redeemed {} yuan from {operator}", yuan(amount)),
                sign,
            )
        }
        IssuerCommand::RegisterOperator {
            public_key,
            name,
            sign,
        } => {
            let key = parse_public_key(public_key)?;
            (
                Action::RegisterOperator(pb::RegisterOperator {
                    public_key: key.0.to_vec(),
                    name: name.clone(),
                }),
                format!(
                    "registered operator {name} at {}",
                    Address::from_public_key(&key)
                ),
                sign,
            )
        }
        IssuerCommand::SuspendOperator { operator, sign } => (
            Action::SuspendOperator(pb::SuspendOperator {
                operator: parse_address(operator)?.0.to_vec(),
            }),
            format!("suspended {operator}"),
            sign,
        ),
        IssuerCommand::ReinstateOperator { operator, sign } => (
            Action::ReinstateOperator(pb::ReinstateOperator {
                operator: parse_address(operator)?.0.to_vec(),
            }),
            format!("reinstated {operator}"),
            sign,
        ),
        IssuerCommand::RotateKey {
            new_public_key,
            sign,
        } => (
            Action::RotateIssuerKey(pb::RotateIssuerKey {
                new_public_key: parse_public_key(new_public_key)?.0.to_vec(),
            }),
            "rotated the issuer key".to_string(),
            sign,
        ),
    };
    send(&settings, sign, action, &what).await.map(drop)
}

/// A limit in yuan, or "none".
fn limit(fen: Option<u64>) -> String {
    fen.map_or("none".to_string(), |fen| format!("{} yuan", yuan(fen)))
}

/// A fee rule in words.
fn fee_rule(rule: Option<&pb::FeeRule>) -> String {
    let Some(rule) = rule else {
        return "free".to_string();
    };
    if rule.flat == 0 && rule.basis_points == 0 {
        return "free".to_string();
    }
    let mut text = format!("{} yuan + {} bp", yuan(rule.flat), rule.basis_points);
    if let Some(max) = rule.max {
        text.push_str(&format!(", at most {} yuan", yuan(max)));
    }
    text
}

fn print_parameters(parameters: &pb::ChainParameters) {
    println!("limits       class  balance / payment / day / year");
    for tier in &parameters.tiers {
        println!(
            "             {}  {} / {} / {} / {}",
            tier.tier().as_str_name().trim_start_matches("KYC_TIER_"),
            limit(tier.balance_max),
            limit(tier.per_payment_max),
            limit(tier.daily_max),
            limit(tier.annual_max)
        );
    }
    if let Some(fees) = &parameters.fees {
        println!("fees         transfer {}", fee_rule(fees.transfer.as_ref()));
        println!(
            "             merchant payment {}",
            fee_rule(fees.merchant_payment.as_ref())
        );
        println!("             refund {}", fee_rule(fees.refund.as_ref()));
        println!(
            "             operator actions {}",
            fee_rule(fees.administrative.as_ref())
        );
    }
    println!(
        "sizes        {} bytes per transaction, {} transactions per block",
        parameters.transaction_bytes_max, parameters.block_transactions_max
    );
}

fn parameters_json(parameters: &pb::ChainParameters) -> serde_json::Value {
    let fee = |rule: Option<&pb::FeeRule>| {
        rule.map(|rule| {
            json!({"flat_fen": rule.flat, "basis_points": rule.basis_points, "max_fen": rule.max})
        })
    };
    json!({
        "tiers": parameters.tiers.iter().map(|tier| json!({
            "tier": tier.tier().as_str_name(),
            "balance_max_fen": tier.balance_max,
            "per_payment_max_fen": tier.per_payment_max,
            "daily_max_fen": tier.daily_max,
            "annual_max_fen": tier.annual_max,
        })).collect::<Vec<_>>(),
        "fees": parameters.fees.as_ref().map(|fees| json!({
            "transfer": fee(fees.transfer.as_ref()),
            "merchant_payment": fee(fees.merchant_payment.as_ref()),
            "refund": fee(fees.refund.as_ref()),
            "administrative": fee(fees.administrative.as_ref()),
        })),
        "transaction_bytes_max": parameters.transaction_bytes_max,
        "block_transactions_max": parameters.block_transactions_max,
    })
}

/// Runs a chain command.
pub async fn chain(args: &ClientArgs, command: &ChainCommand) -> Result<()> {
    let settings = Settings::resolve(args)?;
    let mut node = settings.connect().await?;
    match command {
        ChainCommand::Info => {
            let info = node.chain_info().await?;
            let circulating = info.issued.saturating_sub(info.redeemed);
            if settings.json {
                return print_json(&json!({
                    "chain_id": info.chain_id,
                    "genesis_hash": hex::encode(&info.genesis_hash),
                    "height": info.height,
                    "block_hash": hex::encode(&info.block_hash),
                    "state_root": hex::encode(&info.state_root),
                    "epoch": info.epoch,
                    "validators": info.validators.iter().map(hex::encode).collect::<Vec<_>>(),
                    "issued_fen": info.issued,
                    "redeemed_fen": info.redeemed,
                    "circulating_fen": circulating,
                    "mempool_transactions": info.mempool_transactions,
                    "parameters": info.parameters.as_ref().map(parameters_json),
                }));
            }
            println!("chain        {}", info.chain_id);
            println!("genesis      {}", hex::encode(&info.genesis_hash));
            println!("height       {}", info.height);
            println!("state root   {}", hex::encode(&info.state_root));
            println!(
                "validators   {} (epoch {})",
                info.validators.len(),
                info.epoch
            );
            for key in &info.validators {
                println!("             {}", hex::encode(key));
            }
            println!("issued       {} yuan", yuan(info.issued));
            println!("redeemed     {} yuan", yuan(info.redeemed));
            println!("circulating  {} yuan", yuan(circulating));
            println!("mempool      {} transactions", info.mempool_transactions);
            if let Some(parameters) = &info.parameters {
                print_parameters(parameters);
            }
            Ok(())
        }
        ChainCommand::Watch { from, count } => {
            let mut next = match from {
                Some(height) => *height,
                None => node.chain_info().await?.height,
            };
            let mut shown = 0u64;
            let mut failures = 0u32;
            while count.is_none_or(|count| shown < count) {
                let stream = node
                    .client
                    .stream_blocks(pb::StreamBlocksRequest { from_height: next })
                    .await;
                let mut stream = match stream {
                    Ok(stream) => stream.into_inner(),
                    Err(status) if failures < WATCH_RETRIES => {
                        failures += 1;
                        eprintln!("{}; reconnecting", refusal(&status));
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        node = settings.connect().await?;
                        continue;
                    }
                    Err(status) => return Err(refusal(&status)),
                };
                loop {
                    match stream.message().await {
                        Ok(Some(block)) => {
                            failures = 0;
                            print_watched(&settings, &block)?;
                            next = block.height.saturating_add(1);
                            shown += 1;
                            if count.is_some_and(|count| shown >= count) {
                                return Ok(());
                            }
                        }
                        Ok(None) => break,
                        Err(status) if failures < WATCH_RETRIES => {
                            failures += 1;
                            eprintln!("{}; resuming from height {next}", refusal(&status));
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            if let Ok(again) = settings.connect().await {
                                node = again;
                            }
                            break;
                        }
                        Err(status) => return Err(refusal(&status)),
                    }
                }
            }
            Ok(())
        }
        ChainCommand::Block { height } => {
            let block = node
                .client
                .get_block(pb::GetBlockRequest { height: *height })
                .await
                .map_err(|status| refusal(&status))?
                .into_inner();
            let header = block.header.unwrap_or_default();
            if settings.json {
                return print_json(&json!({
                    "height": block.height,
                    "timestamp_ms": header.timestamp_ms,
                    "tx_count": block.tx_count,
                    "state_root": hex::encode(&block.state_root),
                    "parent_hash": hex::encode(&header.parent_hash),
                    "tx_root": hex::encode(&header.tx_root),
                }));
            }
            println!("height       {}", block.height);
            println!("time         {} ms since 1970", header.timestamp_ms);
            println!("transactions {}", block.tx_count);
            println!("state root   {}", hex::encode(&block.state_root));
            println!("parent       {}", hex::encode(&header.parent_hash));
            Ok(())
        }
    }
}

/// How many times in a row `chain watch` reconnects before it gives up.
const WATCH_RETRIES: u32 = 30;

fn print_watched(settings: &Settings, block: &pb::StreamBlocksResponse) -> Result<()> {
    let header = block
        .block
        .as_ref()
        .and_then(|block| block.header.clone())
        .unwrap_or_default();
    let ok = block
        .receipts
        .iter()
        .filter(|receipt| receipt.code() == pb::ResultCode::Ok)
        .count();
    if settings.json {
        println!(
            "{}",
            json!({
                "height": block.height,
                "timestamp_ms": header.timestamp_ms,
                "transactions": block.receipts.len(),
                "ok": ok,
                "state_root": hex::encode(&block.state_root),
            })
        );
        return Ok(());
    }
    println!(
        "block {:>8}  {:>5} tx ({ok} ok)  time {}  root {}",
        block.height,
        block.receipts.len(),
        header.timestamp_ms,
        hex::encode(block.state_root.get(..8).unwrap_or_default())
    );
    Ok(())
}

/// Runs a profile command.
pub fn profile(args: &ClientArgs, command: &ProfileCommand) -> Result<()> {
    match command {
        ProfileCommand::Init { out } => {
            let path = out
                .clone()
                .or_else(default_profile_path)
                .ok_or_else(|| anyhow!("no HOME: pass --out FILE"))?;
            let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or(path.clone());
            let profile = Profile {
                node: args.node.clone(),
                key: args.key.as_ref().map(absolute),
                genesis: args.genesis.as_ref().map(absolute),
                tls_ca: args.tls_ca.as_ref().map(absolute),
                tls_domain: args.tls_domain.clone(),
                ..Profile::default()
            };
            profile.save(&path)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        ProfileCommand::Show => {
            let settings = Settings::resolve(args)?;
            let show = |path: &Option<PathBuf>| {
                path.as_ref()
                    .map_or("(none)".to_string(), |path| path.display().to_string())
            };
            println!("node     {}", settings.node);
            println!("key      {}", show(&settings.key));
            println!("genesis  {}", show(&settings.genesis));
            if settings.tls.is_set() {
                println!("tls ca   {}", show(&settings.tls.ca));
                if let Some(domain) = &settings.tls.domain {
                    println!("tls name {domain}");
                }
                if let Some((certificate, _)) = &settings.tls.identity {
                    println!("tls cert {}", certificate.display());
                }
            }
            if let Some(key) = settings
                .key
                .as_ref()
                .and_then(|path| SigningKey::load_pem(path).ok())
            {
                println!("address  {}", Address::from_public_key(&key.public_key()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_requests_round_trip_with_any_order_id() {
        let merchant = Address([7; 20]);
        for order in ["A-1", "订单 42 & more=yes", "%%"] {
            let uri = payment_request(&merchant, 12_345, order);
            let (to, amount, parsed) = parse_payment_request(&uri).expect("parses");
            assert_eq!((to, amount, parsed.as_str()), (merchant, 12_345, order));
        }
        let bad_requests = [
            "yuchain:pay?to=x".to_string(),
            "http://x".to_string(),
            "yuchain:pay?amount=1.00&order=a".to_string(),
            "yuchain:pay?to=yu1&amount=1&order=a&extra=1".to_string(),
            format!("{}&to={merchant}", payment_request(&merchant, 1, "a")),
            format!("yuchain:pay?to={merchant}&amount=1&order=%+1"),
        ];
        for bad in &bad_requests {
            assert!(parse_payment_request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_entries_say_what_happened_from_the_account_s_side() {
        let alice = SigningKey::for_test("alice");
        let me = Address::from_public_key(&alice.public_key());
        let bob = Address([2; 20]);
        let body = pb::TransactionBody {
            chain_id: "c".into(),
            sender: me.0.to_vec(),
            public_key: alice.public_key().0.to_vec(),
            sequence: 0,
            expiry_height: 9,
            max_fee: 0,
            action: Some(Action::Transfer(pb::Transfer {
                to: bob.0.to_vec(),
                amount: 250,
                memo: "lunch".into(),
            })),
        };
        let entry = pb::AccountHistoryEntry {
            transaction: Some(tx::sign(&body, &alice)),
            ..pb::AccountHistoryEntry::default()
        };
        let (what, amount) = describe(&entry, &me);
        assert_eq!(amount, Some(-250));
        assert!(
            what.contains(&bob.to_string()) && what.contains("lunch"),
            "{what}"
        );
        let (what, amount) = describe(&entry, &bob);
        assert_eq!(amount, Some(250));
        assert!(what.contains(&me.to_string()), "{what}");
    }
}
