//! `yuchain`: the command line for wallets, merchants, banks, the issuer and
//! auditors. Amounts are shown and typed in yuan (`12.34`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new key into a PEM file (never overwrites) and print its
    /// address.
    Generate {
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
        Command::Keys(KeysCommand::Generate { out }) => {
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
    }
}

fn print_key(key: &SigningKey) {
    let public_key = key.public_key();
    println!("public key: {}", hex::encode(public_key.0));
    println!("address:    {}", Address::from_public_key(&public_key));
}
