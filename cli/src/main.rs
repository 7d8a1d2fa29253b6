//! `yuchain`: the command line for wallets, merchants, banks, the issuer and
//! auditors. Amounts are shown and typed in yuan (`12.34`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use yuchain_cli::client::ClientArgs;
use yuchain_cli::commands;
use yuchain_proto::{Address, SigningKey};

/// yuchain (渝链): a permissioned BFT ledger for a city digital currency.
#[derive(Parser)]
#[command(name = "yuchain", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local chain: 4 validators (the city treasury and three banks)
    /// as real yuchain-node processes, wallets funded, payments streaming,
    /// live progress; checks every node holds the same state root.
    Devnet(yuchain_cli::devnet::DevnetArgs),
    /// Fault scenarios on a real cluster: `yuchain scenario netns` (run by
    /// scripts/netns-scenario.sh, which makes the network namespaces).
    #[command(subcommand)]
    Scenario(yuchain_cli::scenario::ScenarioCommand),
    /// Benchmark a local chain: many wallets funded at genesis, payments
    /// signed in advance and offered at a fixed rate (open loop) through
    /// every validator's gateway; reports committed/s, finality
    /// percentiles, refusals, memory and disk (text, --json, --chart).
    Bench(yuchain_cli::bench::BenchArgs),
    /// Manage ed25519 keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Auditors: replay the chain from genesis and check every signature,
    /// certificate, receipt, state root and the money supply, trusting no
    /// validator; export, supply, offline proofs.
    #[command(subcommand)]
    Audit(yuchain_cli::audit::AuditCommand),
    /// A wallet: balance (checked against the validators' certificate),
    /// pay, history, a transaction's status, an offline proof check.
    Wallet {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::WalletCommand,
    },
    /// A merchant: payment requests, refunds, payments received.
    Merchant {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::MerchantCommand,
    },
    /// A bank (operator): open, re-tier, freeze, re-key and close wallets.
    Operator {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::OperatorCommand,
    },
    /// The issuer: issue and redeem money, admit and suspend banks, rotate
    /// its key.
    Issuer {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::IssuerCommand,
    },
    /// The chain: its id, head, validators and supply; a block.
    Chain {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::ChainCommand,
    },
    /// The profile file that names the node, the key and the genesis file.
    Profile {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: commands::ProfileCommand,
    },
    /// Print a shell completion script (e.g. `yuchain completions bash >
    /// /etc/bash_completion.d/yuchain`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new key into a PEM file (never overwrites) and print its
    /// address.
    #[command(visible_alias = "generate")]
    New {
        /// Where to write the PKCS#8 PEM key (created with mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key and address of a PEM key file.
    Show {
        /// The PEM key file.
        key: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Devnet(args) => yuchain_cli::devnet::run(&args),
        Command::Scenario(command) => yuchain_cli::scenario::run(&command),
        Command::Bench(args) => yuchain_cli::bench::run(&args),
        Command::Audit(command) => match yuchain_cli::audit::run(&command)? {
            0 => Ok(()),
            status => std::process::exit(status),
        },
        Command::Keys(KeysCommand::New { out }) => {
            let key = SigningKey::generate()?;
            key.save_pem(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            print_key(&key);
            Ok(())
        }
        Command::Keys(KeysCommand::Show { key }) => {
            let key = SigningKey::load_pem(&key)?;
            print_key(&key);
            Ok(())
        }
        Command::Wallet { client, command } => block_on(commands::wallet(&client, &command)),
        Command::Merchant { client, command } => block_on(commands::merchant(&client, &command)),
        Command::Operator { client, command } => block_on(commands::operator(&client, &command)),
        Command::Issuer { client, command } => block_on(commands::issuer(&client, &command)),
        Command::Chain { client, command } => block_on(commands::chain(&client, &command)),
        Command::Profile { client, command } => commands::profile(&client, &command),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "yuchain", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Runs one command's future on a small runtime of its own.
fn block_on(future: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

fn print_key(key: &SigningKey) {
    let public_key = key.public_key();
    println!("public key: {}", hex::encode(public_key.0));
    println!("address:    {}", Address::from_public_key(&public_key));
}
