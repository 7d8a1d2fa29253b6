//! What every command that talks to a node shares: the profile (node
//! address, key, genesis file), the connection, the pinned validator set,
//! signing and sending a transaction, and printing amounts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use yuchain_consensus::types::Epoch;
use yuchain_consensus::{ChainTag, ValidatorSet};
use yuchain_gateway::WalletGatewayClient;
use yuchain_proto::pb::transaction_body::Action;
use yuchain_proto::{Address, Hash32, PublicKey, SigningKey, pb, tx};

/// The node a command talks to when neither a flag nor a profile names one.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:50051";
/// How many blocks ahead a transaction the CLI signs expires.
pub const EXPIRY_BLOCKS: u64 = 1_000;
/// How long the CLI waits for a transaction's commit.
pub const COMMIT_WAIT: Duration = Duration::from_secs(30);
/// How long one request may take before the CLI gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(70);

/// The options every node command takes.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientArgs {
    /// The profile file (TOML: `node`, `key`, `genesis`). Default:
    /// $YUCHAIN_PROFILE, else ~/.config/yuchain/profile.toml if it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The node's gateway URL, e.g. http://127.0.0.1:50051 (overrides the
    /// profile).
    #[arg(long, global = true, value_name = "URL")]
    pub node: Option<String>,
    /// The PEM key that signs (overrides the profile).
    #[arg(long, global = true, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// The chain's genesis file, whose validator keys every proof is checked
    /// against (overrides the profile). Without one, the keys the node
    /// reports are used, and the output says the proof is unpinned.
    #[arg(long, global = true, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Trust this CA (PEM) for an https:// node instead of the system's
    /// roots (overrides the profile's `tls_ca`).
    #[arg(long, global = true, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// The name the node's TLS certificate must carry, when it is not the
    /// URL's host (for example when connecting by IP address).
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_domain: Option<String>,
    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// A profile file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The node's gateway URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The signing key's PEM file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The genesis file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<PathBuf>,
    /// For an https:// node: the CA to trust (PEM) instead of the system's
    /// roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// For an https:// node: the name its certificate must carry, when it
    /// is not the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_domain: Option<String>,
    /// For a node that requires client certificates (mutual TLS): this
    /// client's certificate chain (PEM) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<PathBuf>,
    /// ... and its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_private_key: Option<PathBuf>,
}

impl Profile {
    /// Reads a profile; relative paths in it are taken from its directory.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the profile {}", path.display()))?;
        let mut profile: Profile = toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a yuchain profile (TOML with `node`, `key`, `genesis`)",
                path.display()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut profile.key,
            &mut profile.genesis,
            &mut profile.tls_ca,
            &mut profile.tls_certificate,
            &mut profile.tls_private_key,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(profile)
    }

    /// Writes the profile (refusing to overwrite one).
    pub fn save(&self, path: &Path) -> Result<()> {
        if path.exists() {
            bail!(
                "{} exists; remove it first or pass another --out",
                path.display()
            );
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = toml::to_string_pretty(self).context("encoding the profile")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// The default profile path: $YUCHAIN_PROFILE, else
/// ~/.config/yuchain/profile.toml.
pub fn default_profile_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("YUCHAIN_PROFILE") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/yuchain/profile.toml"))
}

/// The settings a command runs with: flags over the profile over defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The node's URL.
    pub node: String,
    /// The key file, if any.
    pub key: Option<PathBuf>,
    /// The genesis file, if any.
    pub genesis: Option<PathBuf>,
    /// TLS settings for an https:// node.
    pub tls: TlsSettings,
    /// JSON output.
    pub json: bool,
}

/// How to reach an https:// node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA to trust; the system's roots when unset.
    pub ca: Option<PathBuf>,
    /// The name the certificate must carry; the URL's host when unset.
    pub domain: Option<String>,
    /// This client's certificate and key, for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// Whether anything was set (which makes sense only with https://).
    pub fn is_set(&self) -> bool {
        *self != TlsSettings::default()
    }

    /// tonic's client TLS settings, with the files read.
    fn client_config(&self) -> Result<tonic::transport::ClientTlsConfig> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .with_context(|| format!("reading the TLS {what} {}", path.display()))
        };
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(path) => config.ca_certificate(Certificate::from_pem(read("CA", path)?)),
            None => config.with_native_roots(),
        };
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        if let Some((certificate, key)) = &self.identity {
            config = config.identity(Identity::from_pem(
                read("certificate", certificate)?,
                read("private key", key)?,
            ));
        }
        Ok(config)
    }
}

impl Settings {
    /// Resolves `args` against the profile.
    pub fn resolve(args: &ClientArgs) -> Result<Settings> {
        let profile = match &args.profile {
            Some(path) => Profile::load(path)?,
            None => match default_profile_path() {
                Some(path) if path.exists() => Profile::load(&path)?,
                _ => Profile::default(),
            },
        };
        Ok(Settings {
            node: args
                .node
                .clone()
                .or(profile.node)
                .unwrap_or_else(|| DEFAULT_NODE.to_string()),
            key: args.key.clone().or(profile.key),
            genesis: args.genesis.clone().or(profile.genesis),
            tls: TlsSettings {
                ca: args.tls_ca.clone().or(profile.tls_ca),
                domain: args.tls_domain.clone().or(profile.tls_domain),
                identity: match (profile.tls_certificate, profile.tls_private_key) {
                    (Some(certificate), Some(key)) => Some((certificate, key)),
                    (None, None) => None,
                    _ => bail!(
                        "the profile sets only one of tls_certificate and tls_private_key; \
                         mutual TLS needs both"
                    ),
                },
            },
            json: args.json,
        })
    }

    /// The signing key; an error saying how to name one if there is none.
    pub fn signing_key(&self) -> Result<SigningKey> {
        let path = self.key.as_ref().ok_or_else(|| {
            anyhow!(
                "this command signs a transaction: pass --key FILE.pem or set `key` in the \
                 profile (make one with `yuchain keys new --out FILE.pem`)"
            )
        })?;
        SigningKey::load_pem(path).with_context(|| format!("reading the key {}", path.display()))
    }

    /// Connects to the node.
    pub async fn connect(&self) -> Result<Node> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.node.clone())
            .with_context(|| format!("{:?} is not a node URL (e.g. {DEFAULT_NODE})", self.node))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT);
        let tls = self.node.starts_with("https://");
        if tls {
            endpoint = endpoint
                .tls_config(self.tls.client_config()?)
                .context("the TLS settings (tls_ca, tls_domain, tls_certificate)")?;
        } else if self.tls.is_set() {
            bail!(
                "TLS settings are given but the node URL {} is not https://; use https:// to \
                 connect with TLS",
                self.node
            );
        }
        let channel = endpoint.connect().await.map_err(|error| {
            let hint = if tls {
                "is it running, does it serve TLS, and does its certificate match the URL's \
                 host (or --tls-domain) and chain to the CA (--tls-ca, or the system's roots)?"
            } else {
                "is it running, and is the URL (--node or the profile's `node`) right? (a \
                 node that serves TLS needs https://)"
            };
            anyhow!(
                "cannot reach the node at {}: {}; {hint}",
                self.node,
                yuchain_gateway::error::error_chain(&error)
            )
        })?;
        Ok(Node {
            // Blocks streamed or fetched can be large (many batches).
            client: WalletGatewayClient::new(channel).max_decoding_message_size(64 << 20),
            url: self.node.clone(),
        })
    }
}

/// Reads the validators' consensus keys from a genesis file (its
/// `[[validators]]` cards), in order, for the chain it names (`[ledger]
/// chain_id`: every consensus signature names the chain).
pub fn genesis_validators(path: &Path) -> Result<ValidatorSet> {
    #[derive(Deserialize)]
    struct Card {
        consensus_public_key: String,
    }
    #[derive(Deserialize)]
    struct Ledger {
        chain_id: String,
    }
    #[derive(Deserialize)]
    struct File {
        validators: Vec<Card>,
        ledger: Ledger,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the genesis file {}", path.display()))?;
    let file: File = toml::from_str(&text)
        .with_context(|| format!("{} is not a yuchain genesis file", path.display()))?;
    let keys = file
        .validators
        .iter()
        .enumerate()
        .map(|(index, card)| {
            let bytes = hex::decode(&card.consensus_public_key).ok();
            bytes
                .as_deref()
                .and_then(|bytes| PublicKey::from_slice(bytes).ok())
                .ok_or_else(|| {
                    anyhow!(
                        "{}: validators[{index}].consensus_public_key is not 64 hex digits",
                        path.display()
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    ValidatorSet::new(ChainTag::of(&file.ledger.chain_id), Epoch(0), keys).map_err(|error| {
        anyhow!(
            "{}: the validator set is not valid: {error}",
            path.display()
        )
    })
}

/// The chain id a genesis file names (its `[ledger] chain_id`).
pub fn genesis_chain_id(path: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Ledger {
        chain_id: String,
    }
    #[derive(Deserialize)]
    struct File {
        ledger: Ledger,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the genesis file {}", path.display()))?;
    let file: File = toml::from_str(&text)
        .with_context(|| format!("{} is not a yuchain genesis file", path.display()))?;
    Ok(file.ledger.chain_id)
}

/// A refusal from the node, said plainly: its message and stable reason. A
/// status without yuchain's error details did not come from a gateway's
/// handler (a transport or protocol failure, a proxy), and says so.
pub fn refusal(status: &tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    match status.get_details_error_info() {
        Some(info) => anyhow!("the node refused: {} [{}]", status.message(), info.reason),
        None => anyhow!(
            "the request failed without an answer from a yuchain gateway: {} [{:?}]; is the \
             URL right, and does the node serve TLS (https://) or plaintext (http://)?",
            status.message(),
            status.code()
        ),
    }
}

/// A connected node.
pub struct Node {
    /// The gateway client.
    pub client: WalletGatewayClient<Channel>,
    /// Its URL.
    pub url: String,
}

/// What sending a transaction ended as.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// The transaction id.
    pub id: Hash32,
    /// The committed block's height.
    pub height: u64,
    /// The receipt.
    pub receipt: pb::Receipt,
}

impl Node {
    /// The chain's identity and head.
    pub async fn chain_info(&mut self) -> Result<pb::GetChainInfoResponse> {
        Ok(self
            .client
            .get_chain_info(pb::GetChainInfoRequest {})
            .await
            .map_err(|status| refusal(&status))?
            .into_inner())
    }

    /// The account answer at a certified height of at least `min_height`.
    pub async fn account(
        &mut self,
        address: &Address,
        min_height: u64,
    ) -> Result<pb::GetAccountResponse> {
        Ok(self
            .client
            .get_account(pb::GetAccountRequest {
                address: address.0.to_vec(),
                min_height,
                wait_timeout_ms: 30_000,
            })
            .await
            .map_err(|status| refusal(&status))?
            .into_inner())
    }

    /// The merchant payment `id` at the certified height (waiting for
    /// `min_height`), with its proof, unchecked.
    pub async fn payment(
        &mut self,
        id: &Hash32,
        min_height: u64,
    ) -> Result<pb::GetPaymentResponse> {
        Ok(self
            .client
            .get_payment(pb::GetPaymentRequest {
                payment_id: id.0.to_vec(),
                min_height,
                wait_timeout_ms: 30_000,
            })
            .await
            .map_err(|status| refusal(&status))?
            .into_inner())
    }

    /// The validator set proofs are checked against: the genesis file's if
    /// given (pinned), else the node's own report (unpinned).
    pub async fn validators(&mut self, genesis: Option<&Path>) -> Result<(ValidatorSet, bool)> {
        if let Some(path) = genesis {
            return Ok((genesis_validators(path)?, true));
        }
        let info = self.chain_info().await?;
        let keys = info
            .validators
            .iter()
            .map(|key| PublicKey::from_slice(key).map_err(|_| anyhow!("a validator key is bad")))
            .collect::<Result<Vec<_>>>()?;
        let set = ValidatorSet::new(ChainTag::of(&info.chain_id), Epoch(info.epoch), keys)
            .map_err(|error| anyhow!("the node reports no valid validator set: {error}"))?;
        Ok((set, false))
    }

    /// The sender's next sequence as the validators certified it, and the
    /// certified height, checked with [`check_account`] against the pinned
    /// validators (the node's own report without a genesis file).
    ///
    /// Never the node's unproven `latest`: a node that lied about it (a
    /// sequence one ahead, after withholding a transaction and calling it
    /// expired) could make a retry a second, different transaction that
    /// commits beside the first: a double payment. Two transactions signed
    /// from a proved sequence that was not yet used share it, so at most one
    /// of them ever commits. When `latest` says the sender has newer
    /// transactions than the certified state shows (its own last payment,
    /// say), this waits, bounded, until they are certified; a node that
    /// lies there only makes it wait.
    pub async fn proved_sequence(
        &mut self,
        sender: &Address,
        genesis: Option<&Path>,
    ) -> Result<(u64, u64)> {
        let (validators, _pinned) = self.validators(genesis).await?;
        let mut answer = self.account(sender, 0).await?;
        let next = |account: Option<&pb::Account>| account.map(|account| account.next_sequence);
        let mut min_height = 0;
        if answer.latest_height > answer.height
            && next(answer.latest.as_ref()) != next(answer.account.as_ref())
        {
            min_height = answer.latest_height;
            answer = self.account(sender, min_height).await?;
        }
        let checked = crate::proof::check_account(&answer, sender, &validators, min_height)?;
        let Some(account) = checked.account else {
            bail!(
                "no account {sender} exists in the state the validators certified at height {}; a \
                 bank registers a wallet with `yuchain operator register` (a wallet registered a \
                 moment ago is certified within seconds: retry)",
                checked.height
            );
        };
        Ok((account.next_sequence, checked.height))
    }

    /// Signs `action` as `sender` (the key's own account unless given) with
    /// the account's next sequence as certified ([`Node::proved_sequence`]),
    /// sends it and waits for its commit. A receipt that is not OK is an
    /// error naming its result code.
    ///
    /// With a pinned genesis file the chain id signed for is the file's,
    /// never the node's: a node of another chain is refused before anything
    /// is signed.
    pub async fn send(
        &mut self,
        key: &SigningKey,
        sender: Option<Address>,
        action: Action,
        max_fee: u64,
        genesis: Option<&Path>,
    ) -> Result<Sent> {
        let sender = sender.unwrap_or_else(|| Address::from_public_key(&key.public_key()));
        let info = self.chain_info().await?;
        if let Some(path) = genesis {
            let pinned = genesis_chain_id(path)?;
            if pinned != info.chain_id {
                bail!(
                    "the node at {} serves chain {:?}, but the genesis file {} is of chain \
                     {pinned:?}; nothing was signed",
                    self.url,
                    info.chain_id,
                    path.display()
                );
            }
        }
        let (sequence, certified_height) = self.proved_sequence(&sender, genesis).await?;
        let body = pb::TransactionBody {
            chain_id: info.chain_id.clone(),
            sender: sender.0.to_vec(),
            public_key: key.public_key().0.to_vec(),
            sequence,
            expiry_height: certified_height.saturating_add(EXPIRY_BLOCKS),
            max_fee,
            action: Some(action),
        };
        let signed = tx::sign(&body, key);
        let id = tx::tx_id(&signed.body, &signed.signature);
        let response = self
            .client
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: Some(signed),
                wait_for_commit: true,
                wait_timeout_ms: u32::try_from(COMMIT_WAIT.as_millis()).unwrap_or(u32::MAX),
            })
            .await
            .map_err(|status| refusal(&status))?
            .into_inner();
        match (response.status(), response.receipt) {
            (pb::TransactionStatus::Committed, Some(receipt)) => {
                if receipt.code() != pb::ResultCode::Ok {
                    bail!(
                        "transaction {id} was committed at height {} but did not take effect: {}",
                        response.height,
                        result_name(receipt.code())
                    );
                }
                Ok(Sent {
                    id,
                    height: response.height,
                    receipt,
                })
            }
            (pb::TransactionStatus::Expired, _) => {
                bail!(
                    "transaction {id} expired before it was committed, the node says; sending \
                     again is safe (the new one is signed with the same certified sequence, so \
                     at most one of them can ever commit)"
                )
            }
            (status, _) => bail!(
                "transaction {id} is {status:?} after {} s; check it later with `yuchain wallet \
                 tx {id}`",
                COMMIT_WAIT.as_secs()
            ),
        }
    }
}

/// A result code's name without its prefix, e.g. `INSUFFICIENT_BALANCE`.
pub fn result_name(code: pb::ResultCode) -> String {
    code.as_str_name()
        .strip_prefix("RESULT_CODE_")
        .unwrap_or(code.as_str_name())
        .to_string()
}

/// Fen as yuan with digit grouping, e.g. `1234567` → `12,345.67`.
pub fn yuan(fen: u64) -> String {
    let whole = (fen / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped}.{:02}", fen % 100)
}

/// Parses an address in its bech32 form.
pub fn parse_address(text: &str) -> Result<Address> {
    text.parse::<Address>()
        .map_err(|error| anyhow!("{text:?} is not an address (yu1...): {error}"))
}

/// Parses a 32-byte id in hex.
pub fn parse_id(text: &str) -> Result<Hash32> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| Hash32::from_slice(&bytes))
        .ok_or_else(|| anyhow!("{text:?} is not a transaction id (64 hex digits)"))
}

/// Parses a yuan amount (`12.34`) into fen, exactly.
pub fn parse_amount(text: &str) -> Result<u64> {
    yuchain_proto::amount::parse_yuan(text).map_err(|error| {
        anyhow!("{text:?} is not an amount in yuan (e.g. 12.34, at most 2 decimals): {error}")
    })
}

/// Parses a public key in hex.
pub fn parse_public_key(text: &str) -> Result<PublicKey> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| PublicKey::from_slice(&bytes).ok())
        .ok_or_else(|| anyhow!("{text:?} is not a public key (64 hex digits)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_are_grouped_by_thousands() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(123_456), "1,234.56");
        assert_eq!(yuan(100_000_000), "1,000,000.00");
        assert_eq!(yuan(99_999), "999.99");
        assert_eq!(yuan(u64::MAX), "184,467,440,737,095,516.15");
    }

    #[test]
    fn amounts_parse_exactly_or_say_why_not() {
        assert_eq!(parse_amount("12.34").expect("ok"), 1_234);
        assert_eq!(parse_amount("0.1").expect("ok"), 10);
        for bad in ["12.345", "-1", "1,000", "", "1e3", "0.1.2"] {
            let error = parse_amount(bad).expect_err(bad).to_string();
            assert!(error.contains("not an amount"), "{error}");
        }
    }

    #[test]
    fn profiles_resolve_relative_paths_and_flags_win() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("profile.toml");
        Profile {
            node: Some("http://10.0.0.1:1".into()),
            key: Some("keys/me.pem".into()),
            tls_ca: Some("tls/ca.pem".into()),
            ..Profile::default()
        }
        .save(&path)
        .expect("saved");
        assert!(Profile::default().save(&path).is_err(), "never overwrites");
        let profile = Profile::load(&path).expect("loads");
        assert_eq!(profile.key, Some(dir.path().join("keys/me.pem")));
        let args = ClientArgs {
            profile: Some(path.clone()),
            node: Some("http://127.0.0.1:9".into()),
            ..ClientArgs::default()
        };
        let settings = Settings::resolve(&args).expect("resolves");
        assert_eq!(settings.node, "http://127.0.0.1:9");
        assert_eq!(settings.key, Some(dir.path().join("keys/me.pem")));
        assert_eq!(settings.tls.ca, Some(dir.path().join("tls/ca.pem")));
        std::fs::write(&path, "nod = 1\n").expect("written");
        let error = format!("{:#}", Profile::load(&path).expect_err("a typo"));
        assert!(error.contains("not a yuchain profile"), "{error}");
    }

    #[test]
    fn a_missing_key_says_how_to_make_one() {
        let settings = Settings {
            node: DEFAULT_NODE.into(),
            key: None,
            genesis: None,
            tls: TlsSettings::default(),
            json: false,
        };
        let error = settings.signing_key().expect_err("no key").to_string();
        assert!(error.contains("yuchain keys new"), "{error}");
    }

    /// A node whose certified answer is honest and whose unproven `latest`
    /// says the account is one sequence further than it is (as a node that
    /// withheld a transaction and called it expired would).
    struct LyingNode {
        answer: pb::GetAccountResponse,
        keys: Vec<PublicKey>,
        lie: bool,
    }

    fn nothing<T>() -> Result<T, yuchain_gateway::SubmitError> {
        Err(yuchain_gateway::SubmitError::new(
            yuchain_gateway::ErrorKind::Unavailable,
            "CERTIFIED_HEIGHT_NOT_REACHED",
            "not in this test",
        ))
    }

    #[tonic::async_trait]
    impl yuchain_gateway::Backend for LyingNode {
        async fn submit(
            &self,
            _: pb::SignedTransaction,
        ) -> Result<Hash32, yuchain_gateway::SubmitError> {
            nothing()
        }
        async fn transaction(&self, _: Hash32) -> yuchain_gateway::TxStatus {
            yuchain_gateway::TxStatus::Unknown
        }
        async fn wait_committed(&self, _: Hash32, _: Duration) -> yuchain_gateway::TxStatus {
            yuchain_gateway::TxStatus::Unknown
        }
        async fn chain_info(
            &self,
        ) -> Result<pb::GetChainInfoResponse, yuchain_gateway::SubmitError> {
            Ok(pb::GetChainInfoResponse {
                chain_id: yuchain_ledger::testkit::TEST_CHAIN_ID.to_string(),
                validators: self.keys.iter().map(|key| key.0.to_vec()).collect(),
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
            min_height: u64,
            _: Duration,
        ) -> Result<pb::GetAccountResponse, yuchain_gateway::SubmitError> {
            if min_height > self.answer.height {
                // The lie has no certificate behind it.
                return nothing();
            }
            let mut answer = self.answer.clone();
            answer.latest = answer.account.clone();
            answer.latest_height = answer.height + 5;
            if self.lie
                && let Some(latest) = answer.latest.as_mut()
            {
                latest.next_sequence += 1;
            }
            Ok(answer)
        }
        async fn payment(
            &self,
            _: Hash32,
            _: u64,
            _: Duration,
        ) -> Result<pb::GetPaymentResponse, yuchain_gateway::SubmitError> {
            nothing()
        }
        async fn history(
            &self,
            _: Address,
            _: Option<(u64, u32)>,
            _: usize,
        ) -> Result<yuchain_gateway::HistoryPage, yuchain_gateway::SubmitError> {
            Ok(yuchain_gateway::HistoryPage::default())
        }
        async fn block_contents(
            &self,
            _: u64,
        ) -> Result<Option<pb::StreamBlocksResponse>, yuchain_gateway::SubmitError> {
            Ok(None)
        }
        async fn wait_durable(&self, _: u64, _: Duration) {}
    }

    /// The sequence a transaction is signed with, asked of `node`.
    async fn sequence_from(node: LyingNode, sender: Address) -> Result<(u64, u64)> {
        let config = yuchain_gateway::GatewayConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..yuchain_gateway::GatewayConfig::default()
        };
        let gateway = yuchain_gateway::Gateway::bind(config, std::sync::Arc::new(node))
            .await
            .expect("a gateway on loopback");
        let url = format!("http://{}", gateway.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        let settings = Settings {
            node: url,
            key: None,
            genesis: None,
            tls: TlsSettings::default(),
            json: false,
        };
        let result = async {
            settings
                .connect()
                .await?
                .proved_sequence(&sender, None)
                .await
        }
        .await;
        let _ = stop.send(());
        let _ = serving.await;
        result
    }

    #[tokio::test]
    async fn transactions_are_signed_with_the_certified_sequence_never_the_nodes_latest() {
        let fixture = crate::proof::tests::fixture();
        let certified = fixture
            .answer
            .account
            .as_ref()
            .map(|account| account.next_sequence)
            .expect("the bank's account");
        let keys: Vec<PublicKey> = fixture.keys.iter().map(SigningKey::public_key).collect();
        let honest = LyingNode {
            answer: fixture.answer.clone(),
            keys: keys.clone(),
            lie: false,
        };
        let (sequence, height) = sequence_from(honest, fixture.bank)
            .await
            .expect("an honest node's certified sequence");
        assert_eq!((sequence, height), (certified, fixture.answer.height));
        // A node that says the account moved on, without a certificate for
        // it: nothing is signed with its number.
        let liar = LyingNode {
            answer: fixture.answer.clone(),
            keys,
            lie: true,
        };
        let error = sequence_from(liar, fixture.bank)
            .await
            .expect_err("no proved sequence beyond the certified one");
        assert!(
            format!("{error:#}").contains("CERTIFIED_HEIGHT_NOT_REACHED"),
            "{error:#}"
        );
    }
}
