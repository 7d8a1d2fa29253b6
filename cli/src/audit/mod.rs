//! `yuchain audit`: replay the chain from genesis and check everything,
//! trusting no validator and no node; export what was checked; report the
//! money supply; check an account proof offline.
//!
//! Replay verifies, for every block, the finality certificate against the
//! genesis file's validator keys, every batch certificate and every
//! transaction signature (again, batched on all cores: no certificate is
//! trusted for them), re-executes the block with the pure ledger and
//! compares the ledger header, each receipt, the state root, the executed
//! state the validators certified and conservation; a data directory's
//! stored state is compared at the end. The first discrepancy is reported
//! with its height, transaction, and the value expected and found, and the
//! command exits with status 2.
//!
//! - [`source`]: blocks from a data directory or a node's `StreamBlocks`;
//! - [`verify`]: the first stage (signatures, certificates, batches);
//! - [`replay`]: the second (execution and comparisons), the pipeline;
//! - [`checkpoint`]: replay's own resumable checkpoint;
//! - [`export`]: CSV and JSON Lines, row by row;
//! - [`batches`], [`genesis`]: the rules and the root, read independently;
//! - [`fixture`]: a certified chain built in-process (tests, benchmark);
//! - [`bench`]: `yuchain audit bench`, the replay rate against the
//!   verification rate.

pub mod batches;
pub mod bench;
pub mod checkpoint;
pub mod error;
pub mod export;
pub mod fixture;
pub mod genesis;
pub mod replay;
pub mod source;
pub mod verify;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Subcommand};
use prost::Message as _;
use serde_json::json;
use yuchain_proto::{Address, amount::format_yuan, pb};

pub use error::{AuditError, Discrepancy};
pub use genesis::AuditGenesis;
pub use replay::{ReplayOptions, Summary, replay};
pub use source::{BlockSource, GrpcSource, SourceBlock, StoreSource};

/// The exit status when the chain does not check out.
pub const EXIT_DISCREPANCY: i32 = 2;
/// The exit status when a block cannot be checked (an unknown epoch).
pub const EXIT_UNCHECKABLE: i32 = 3;

/// Where the chain is read from, and the genesis file it is checked
/// against.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// A node's data directory (its home, or the `db` in it), read
    /// offline: stop the node first.
    #[arg(long, required_unless_present = "node", conflicts_with = "node")]
    pub data_dir: Option<PathBuf>,
    /// A node's gateway URL, streamed with StreamBlocks (any node: nothing
    /// it sends is trusted).
    #[arg(long)]
    pub node: Option<String>,
    /// The chain's genesis file: the ledger replayed from and the
    /// validator keys every certificate is checked against.
    #[arg(long)]
    pub genesis: PathBuf,
    /// Stop at this height (default: the source's head).
    #[arg(long)]
    pub to: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl SourceArgs {
    fn open(&self) -> Result<Box<dyn BlockSource>> {
        match (&self.data_dir, &self.node) {
            (Some(dir), _) => Ok(Box::new(StoreSource::open(dir)?)),
            (None, Some(url)) => Ok(Box::new(GrpcSource::new(url)?)),
            (None, None) => Err(anyhow!(
                "say where the chain is: --data-dir DIR or --node URL"
            )),
        }
    }

    fn options(&self) -> ReplayOptions {
        ReplayOptions {
            to: self.to,
            progress: !self.json && !self.no_progress,
            ..ReplayOptions::default()
        }
    }
}

/// What an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportWhat {
    /// Every transaction, with its receipt's code and fee.
    Transactions,
    /// Every receipt.
    Receipts,
    /// Every account's balance at the last height replayed (`--to`).
    Balances,
    /// One account's transactions (`--account`), with its balance after
    /// each block.
    History,
}

/// `yuchain audit ...`
// The flattened source options are documented on [`SourceArgs`].
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Replay the chain from genesis and check every signature,
    /// certificate, receipt, state root and conservation; exit 2 at the
    /// first discrepancy, naming the height, transaction and values.
    Replay {
        #[command(flatten)]
        source: SourceArgs,
        /// Resume from (and save progress to) this checkpoint file.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Save the checkpoint every this many blocks (with --checkpoint;
        /// it is always saved at the end).
        #[arg(long, default_value_t = 10_000)]
        checkpoint_every: u64,
    },
    /// Replay (checking everything) and export transactions, receipts,
    /// balances or an account's history, streamed row by row.
    Export {
        #[command(flatten)]
        source: SourceArgs,
        /// What to export.
        #[arg(long)]
        what: ExportWhat,
        /// The account, for `--what history`.
        #[arg(long)]
        account: Option<String>,
        /// CSV or JSON Lines.
        #[arg(long, value_enum, default_value = "csv")]
        format: export::Format,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay (checking everything) to a height and report the money
    /// issued, redeemed and circulating, in total and by operator.
    Supply {
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Check a saved account answer (`yuchain wallet balance --save`)
    /// offline against the genesis file's validator keys: the proof, the
    /// certified block's state root and its quorum certificate.
    Proof {
        /// The saved answer.
        #[arg(long)]
        answer: PathBuf,
        /// The account it is about.
        #[arg(long)]
        address: String,
        /// The chain's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Refuse a state older than this height.
        #[arg(long, default_value_t = 0)]
        min_height: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the replay rate of a generated chain (1,000,000 payments by
    /// default) against the all-core batched verification rate of the same
    /// run.
    Bench(bench::BenchArgs),
}

/// Runs an audit command; returns the process's exit status.
pub fn run(command: &AuditCommand) -> Result<i32> {
    match command {
        AuditCommand::Replay {
            source,
            checkpoint,
            checkpoint_every,
        } => {
            let genesis = AuditGenesis::load(&source.genesis)?;
            let mut options = source.options();
            options.checkpoint = checkpoint.clone();
            options.checkpoint_every = *checkpoint_every;
            let outcome = replay(source.open()?, &genesis, &options, &mut replay::NoSink);
            finish(outcome.map(|(summary, _)| summary), source.json, &genesis)
        }
        AuditCommand::Export {
            source,
            what,
            account,
            format,
            out,
        } => {
            let genesis = AuditGenesis::load(&source.genesis)?;
            let mut options = source.options();
            let output: Box<dyn std::io::Write> = match out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let (columns, rows) = match what {
                ExportWhat::Transactions => {
                    (export::TRANSACTION_COLUMNS, export::Rows::Transactions)
                }
                ExportWhat::Receipts => (export::RECEIPT_COLUMNS, export::Rows::Receipts),
                ExportWhat::Balances => (export::BALANCE_COLUMNS, export::Rows::Nothing),
                ExportWhat::History => {
                    let account = account
                        .as_deref()
                        .ok_or_else(|| anyhow!("say whose history with --account ADDRESS"))?;
                    let account: Address = account
                        .parse()
                        .map_err(|error| anyhow!("--account {account}: {error}"))?;
                    (export::HISTORY_COLUMNS, export::Rows::History(account))
                }
            };
            options.track_state = *what == ExportWhat::Balances;
            // The report goes to stderr: stdout may be the export.
            options.progress = !source.no_progress && out.is_some();
            let mut sink =
                export::RowSink::new(export::RowWriter::new(output, *format, columns), rows);
            let outcome = replay(source.open()?, &genesis, &options, &mut sink);
            let outcome = outcome.and_then(|(summary, executor)| {
                if let (ExportWhat::Balances, Some(state)) = (what, executor.state()) {
                    export::write_balances(&mut sink.writer, state.iter())?;
                }
                Ok(summary)
            });
            let rows_written = sink.writer.rows;
            sink.writer.finish().context("writing the export")?;
            if let Ok(summary) = &outcome {
                eprintln!(
                    "exported {rows_written} rows, checked through height {} ({} transactions)",
                    summary.to_height, summary.executed.transactions
                );
            }
            finish_quietly(outcome, &genesis)
        }
        AuditCommand::Supply { source } => {
            let genesis = AuditGenesis::load(&source.genesis)?;
            let mut options = source.options();
            options.track_state = true;
            match replay(source.open()?, &genesis, &options, &mut replay::NoSink) {
                Ok((summary, executor)) => {
                    print_supply(&summary, &executor, source.json)?;
                    Ok(0)
                }
                Err(error) => finish(Err(error), source.json, &genesis),
            }
        }
        AuditCommand::Proof {
            answer,
            address,
            genesis,
            min_height,
            json,
        } => {
            let address: Address = address
                .parse()
                .map_err(|error| anyhow!("--address {address}: {error}"))?;
            let validators = AuditGenesis::load(genesis)?.validators;
            let bytes =
                std::fs::read(answer).with_context(|| format!("reading {}", answer.display()))?;
            let answer = pb::GetAccountResponse::decode(bytes.as_slice())
                .map_err(|_| anyhow!("{} is not a saved account answer", answer.display()))?;
            let checked = crate::proof::check_account(&answer, &address, &validators, *min_height)?;
            let balance = checked.account.as_ref().map(|account| account.balance);
            if *json {
                println!(
                    "{}",
                    json!({
                        "valid": true,
                        "address": address.to_string(),
                        "exists": checked.account.is_some(),
                        "balance_fen": balance,
                        "height": checked.height,
                        "state_root": checked.state_root.to_string(),
                        "certified_by_block": checked.certified_by,
                        "signers": checked.signers,
                    })
                );
            } else {
                println!("valid     the proof leads to the certified state root");
                match balance {
                    Some(balance) => println!("account   {address}: {} yuan", format_yuan(balance)),
                    None => println!("account   {address} does not exist"),
                }
                println!(
                    "state     height {}, root {}",
                    checked.height, checked.state_root
                );
                println!(
                    "certified by {} of {} validators in block {} (keys from {})",
                    checked.signers,
                    validators.len(),
                    checked.certified_by,
                    genesis.display()
                );
            }
            Ok(0)
        }
        AuditCommand::Bench(args) => bench::run(args),
    }
}

/// Reports a replay's outcome; returns the exit status.
fn finish(
    outcome: std::result::Result<Summary, AuditError>,
    json: bool,
    genesis: &AuditGenesis,
) -> Result<i32> {
    match outcome {
        Ok(summary) => {
            if json {
                let mut value = serde_json::to_value(&summary)?;
                value["ok"] = json!(true);
                println!("{value}");
            } else {
                print_summary(&summary, genesis);
            }
            Ok(0)
        }
        Err(AuditError::Discrepancy(discrepancy)) => {
            if json {
                println!("{}", json!({ "ok": false, "discrepancy": &*discrepancy }));
            }
            eprintln!("DISCREPANCY at {discrepancy}");
            Ok(EXIT_DISCREPANCY)
        }
        Err(error @ AuditError::UnknownEpoch { .. }) => {
            if json {
                println!(
                    "{}",
                    json!({ "ok": false, "uncheckable": error.to_string() })
                );
            }
            eprintln!("cannot check: {error}");
            Ok(EXIT_UNCHECKABLE)
        }
        Err(error) => Err(error.into()),
    }
}

/// Like [`finish`], for commands whose standard output is data.
fn finish_quietly(
    outcome: std::result::Result<Summary, AuditError>,
    genesis: &AuditGenesis,
) -> Result<i32> {
    match outcome {
        Ok(_) => Ok(0),
        Err(error) => finish(Err(error), false, genesis),
    }
}

fn print_summary(summary: &Summary, genesis: &AuditGenesis) {
    let verified = &summary.verified;
    let executed = &summary.executed;
    println!(
        "replayed   heights {}..={} from {}{}",
        summary.from_height,
        summary.to_height,
        summary.source,
        if summary.resumed {
            " (resumed from the checkpoint)"
        } else {
            ""
        }
    );
    println!(
        "verified   {} transaction signatures, {} batch certificates, {} finality certificates \
         (validator keys from {})",
        verified.transaction_signatures,
        verified.batch_certificates,
        verified.finality_certificates,
        genesis.path
    );
    println!(
        "executed   {} blocks, {} transactions ({} payments, {} failed receipts)",
        executed.blocks, executed.transactions, executed.payments, executed.failed
    );
    println!(
        "state      root {} at height {}, {} accounts{}",
        summary.state_root,
        summary.to_height,
        summary.accounts,
        match summary.state_compared_at {
            Some(height) => format!("; the stored state matches entry by entry at {height}"),
            None => String::new(),
        }
    );
    println!(
        "supply     issued {} yuan, redeemed {}, circulating {}",
        format_yuan(summary.issued),
        format_yuan(summary.redeemed),
        format_yuan(summary.issued.saturating_sub(summary.redeemed))
    );
    if let Some((first, last)) = summary.unproven {
        println!(
            "unproven   heights {first}..={last}: their certificate commits a block the source \
             does not hold yet; not executed"
        );
    }
    println!(
        "rate       {:.0} blocks/s, {:.0} payments/s ({:.1} s)",
        summary.blocks_per_s, summary.payments_per_s, summary.elapsed_s
    );
    println!(
        "OK         every signature, certificate, receipt, state root and conservation check passed"
    );
}

fn print_supply(summary: &Summary, executor: &replay::Executor, json: bool) -> Result<()> {
    let ledger = executor.ledger();
    // Money held in each operator's books: its reserve and the wallets it
    // registered.
    let mut held: std::collections::BTreeMap<Address, u64> = std::collections::BTreeMap::new();
    if let Some(state) = executor.state() {
        for account in export::accounts(state.iter()) {
            let owner = if account.kind() == pb::AccountKind::Operator {
                Address::from_slice(&account.address).ok()
            } else {
                Address::from_slice(&account.operator).ok()
            };
            if let Some(owner) = owner {
                let entry = held.entry(owner).or_default();
                *entry = entry.saturating_add(account.balance);
            }
        }
    }
    let mut operators: Vec<Address> = executor.operators().keys().copied().collect();
    for owner in held.keys() {
        if !operators.contains(owner) {
            operators.push(*owner);
        }
    }
    operators.sort_unstable();
    let totals = ledger.totals();
    let circulating = totals.issued.saturating_sub(totals.redeemed);
    let rows: Vec<serde_json::Value> = operators
        .iter()
        .map(|operator| {
            let supply = executor.operators().get(operator).copied().unwrap_or_default();
            json!({
                "operator": operator.to_string(),
                "name": ledger.account(operator).map(|account| account.name.clone()).unwrap_or_default(),
                "issued_fen": supply.issued,
                "redeemed_fen": supply.redeemed,
                "net_issued_fen": supply.issued.saturating_sub(supply.redeemed),
                "held_fen": held.get(operator).copied().unwrap_or(0),
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            json!({
                "ok": true,
                "height": summary.to_height,
                "issued_fen": totals.issued,
                "redeemed_fen": totals.redeemed,
                "circulating_fen": circulating,
                "operators": rows,
            })
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "supply at height {} (replayed and checked from genesis)",
        summary.to_height
    )?;
    writeln!(out, "issued       {:>18} yuan", format_yuan(totals.issued))?;
    writeln!(
        out,
        "redeemed     {:>18} yuan",
        format_yuan(totals.redeemed)
    )?;
    writeln!(out, "circulating  {:>18} yuan", format_yuan(circulating))?;
    writeln!(
        out,
        "{:<44} {:>16} {:>16} {:>16} {:>16}",
        "operator", "issued", "redeemed", "net issued", "held"
    )?;
    for row in &rows {
        let fen = |field: &str| format_yuan(row[field].as_u64().unwrap_or(0));
        writeln!(
            out,
            "{:<44} {:>16} {:>16} {:>16} {:>16}",
            row["operator"].as_str().unwrap_or(""),
            fen("issued_fen"),
            fen("redeemed_fen"),
            fen("net_issued_fen"),
            fen("held_fen")
        )?;
    }
    Ok(())
}
