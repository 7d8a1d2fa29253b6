//! `yuchain-node`: init a node home, make a genesis file, run a validator or
//! an observer (see docs/OPERATING.md).

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use yuchain_node::genesis::{GenesisFile, ValidatorCard, parse_key};
use yuchain_node::home::{self, InitOptions};

/// yuchain-node (渝链): a validator or observer of the yuchain payment network.
#[derive(Parser)]
#[command(name = "yuchain-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a node home: keys, config.toml with every default, the public
    /// validator card, and an empty block database. Keys already there are
    /// kept.
    Init {
        /// The home directory.
        #[arg(long)]
        home: PathBuf,
        /// The node's name (the bank's or the treasury's).
        #[arg(long)]
        name: String,
        /// Where other nodes reach this one (host:port); also its listen
        /// port unless --p2p-listen says otherwise.
        #[arg(long)]
        address: String,
        /// Where to listen for peers (default 0.0.0.0:<port of --address>).
        #[arg(long)]
        p2p_listen: Option<String>,
        /// Where to serve the wallet gateway (gRPC).
        #[arg(long)]
        gateway_listen: Option<String>,
        /// Where to serve Prometheus metrics.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Make an observer (never votes).
        #[arg(long)]
        observer: bool,
    },
    /// Print a home's public card (name, keys, address).
    Show {
        /// The home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Make the genesis file from the validators' cards, the issuer's key
    /// and the operators' keys (the genesis ceremony).
    Genesis {
        /// The chain id every transaction names.
        #[arg(long)]
        chain_id: String,
        /// The issuer's (treasury's) public key, 64 hex digits.
        #[arg(long)]
        issuer_public_key: String,
        /// An operator (bank) present from the start: NAME=PUBLIC_KEY.
        #[arg(long = "operator")]
        operators: Vec<String>,
        /// A validator's card (validator.toml from its `init`), in the
        /// order of the set.
        #[arg(long = "validator-card", required = true)]
        cards: Vec<PathBuf>,
        /// Genesis time in milliseconds since the Unix epoch (default: now).
        #[arg(long)]
        genesis_time_ms: Option<u64>,
        /// Where to write the genesis file (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Benchmarks only: fund this many class-1 wallets of the first
        /// operator at genesis, with keys derived from --load-test-seed
        /// (which the file then holds: never for a real chain).
        #[arg(long, requires = "load_test_seed")]
        load_test_wallets: Option<u64>,
        /// The load-test wallets' key seed, 64 hex digits.
        #[arg(long, requires = "load_test_wallets")]
        load_test_seed: Option<String>,
        /// Each load-test wallet's balance, in fen.
        #[arg(long, default_value_t = 1_000_000)]
        load_test_balance: u64,
    },
    /// Run the node (validator or observer, as config.toml says) until
    /// SIGTERM or Ctrl-C.
    Run {
        /// The home directory.
        #[arg(long)]
        home: PathBuf,
        /// Create a missing safety record: only for a validator whose key
        /// has never voted (see docs/OPERATING.md).
        #[arg(long = "assume-never-voted")]
        assume_never_voted: bool,
    },
    /// Run a day of city payments through the ledger and a RocksDB store
    /// (no network), and print what happened.
    Demo(yuchain_node::demo::DemoArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init {
            home,
            name,
            address,
            p2p_listen,
            gateway_listen,
            metrics_listen,
            observer,
        } => {
            let port = address
                .rsplit_once(':')
                .map(|(_, port)| port.to_string())
                .context("--address must be host:port")?;
            let quoted = |value: String| format!("{value:?}");
            let mut overrides = vec![(
                "network".to_string(),
                "listen".to_string(),
                quoted(p2p_listen.unwrap_or(format!("0.0.0.0:{port}"))),
            )];
            if let Some(listen) = gateway_listen {
                overrides.push(("gateway".into(), "listen".into(), quoted(listen)));
            }
            if let Some(listen) = metrics_listen {
                overrides.push(("metrics".into(), "listen".into(), quoted(listen)));
            }
            if observer {
                overrides.push((String::new(), "role".into(), quoted("observer".into())));
            }
            let made = home::init(
                &home,
                &InitOptions {
                    name,
                    address,
                    overrides,
                },
            )?;
            println!(
                "{} node home {} ({})",
                if made.new_keys { "made" } else { "re-made" },
                home.display(),
                if made.new_keys {
                    "new keys"
                } else {
                    "kept its keys"
                }
            );
            println!("consensus key: {}", made.card.consensus_public_key);
            println!("network key:   {}", made.card.network_public_key);
            println!(
                "its card for the genesis ceremony: {}",
                home.join(home::CARD_FILE).display()
            );
            Ok(())
        }
        Command::Show { home } => {
            let card = ValidatorCard::load(&home.join(home::CARD_FILE))?;
            print!("{}", toml::to_string_pretty(&card)?);
            Ok(())
        }
        Command::Genesis {
            chain_id,
            issuer_public_key,
            operators,
            cards,
            genesis_time_ms,
            out,
            load_test_wallets,
            load_test_seed,
            load_test_balance,
        } => {
            if out.exists() {
                bail!(
                    "{} exists; a genesis file is never overwritten",
                    out.display()
                );
            }
            parse_key(&issuer_public_key)
                .map_err(|reason| anyhow::anyhow!("--issuer-public-key: {reason}"))?;
            let mut genesis_operators = Vec::new();
            for operator in &operators {
                let Some((name, key)) = operator.split_once('=') else {
                    bail!("--operator {operator:?}: expected NAME=PUBLIC_KEY");
                };
                parse_key(key).map_err(|reason| anyhow::anyhow!("--operator {name}: {reason}"))?;
                genesis_operators.push(yuchain_ledger::GenesisOperator {
                    name: name.to_string(),
                    public_key: key.to_string(),
                });
            }
            let validators = cards
                .iter()
                .map(|path| ValidatorCard::load(path))
                .collect::<Result<Vec<_>, _>>()?;
            let genesis_time_ms = match genesis_time_ms {
                Some(time) => time,
                None => u64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .context("the clock is before 1970")?
                        .as_millis(),
                )
                .context("the clock is too far ahead")?,
            };
            let genesis = GenesisFile {
                ledger: yuchain_ledger::Genesis {
                    chain_id,
                    genesis_time_ms,
                    issuer_public_key,
                    operators: genesis_operators,
                    params: Default::default(),
                    load_test: load_test_wallets.zip(load_test_seed).map(|(count, seed)| {
                        yuchain_ledger::LoadTestWallets {
                            count,
                            balance: load_test_balance,
                            seed,
                        }
                    }),
                },
                validators,
            };
            genesis.validators()?;
            yuchain_ledger::Ledger::genesis(&genesis.ledger).context("the ledger genesis")?;
            let text = format!(
                "# yuchain genesis. Every node of the chain must have this exact content.\n{}",
                genesis.to_toml()?
            );
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "genesis {} with {} validators, hash {}",
                out.display(),
                genesis.validators.len(),
                genesis.hash()?
            );
            Ok(())
        }
        Command::Run {
            home,
            assume_never_voted,
        } => yuchain_node::run::run(&yuchain_node::run::RunOptions {
            home,
            assume_never_voted,
        }),
        Command::Demo(args) => yuchain_node::demo::run(&args),
    }
}
