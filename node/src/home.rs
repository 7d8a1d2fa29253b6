//! A node's home directory: what `yuchain-node init` makes and `run` opens.
//!
//! ```text
//! <home>/consensus.key    the ed25519 key it votes with (PKCS#8 PEM, 0600)
//! <home>/network.key      the ed25519 key of its network identity (PEM, 0600)
//! <home>/validator.toml   its public card for the genesis ceremony
//! <home>/config.toml      its configuration (every default, commented)
//! <home>/genesis.toml     the chain's genesis file (copied in after the ceremony)
//! <home>/db/              the block database (RocksDB)
//! <home>/safety           the consensus safety record
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use yuchain_proto::SigningKey;
use yuchain_storage::{RocksConfig, create_node_home};

use crate::config::DEFAULT_CONFIG;
use crate::genesis::ValidatorCard;

/// The consensus key's file.
pub const CONSENSUS_KEY_FILE: &str = "consensus.key";
/// The network key's file.
pub const NETWORK_KEY_FILE: &str = "network.key";
/// The public card's file.
pub const CARD_FILE: &str = "validator.toml";
/// The config file.
pub const CONFIG_FILE: &str = "config.toml";

/// What `init` is told.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The node's name (the bank's).
    pub name: String,
    /// The address other nodes reach it at (`host:port`), for its card.
    pub address: String,
    /// Lines that replace defaults in the written config: (section, key,
    /// TOML value).
    pub overrides: Vec<(String, String, String)>,
}

/// What `init` made or found.
#[derive(Debug)]
pub struct Initialised {
    /// The public card.
    pub card: ValidatorCard,
    /// Whether the keys were new (false: kept from an earlier init).
    pub new_keys: bool,
}

/// Makes a node home: keys (kept if present: a key is never replaced),
/// config (kept if present), card, and an empty block database with its
/// safety record. Refuses a home whose database exists: to re-sync from
/// genesis, stop the node and remove `<home>/db` first (the safety record
/// and keys stay).
pub fn init(home: &Path, options: &InitOptions) -> Result<Initialised> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", home.display()))?;
    }
    let (consensus, new_consensus) = key_file(&home.join(CONSENSUS_KEY_FILE))?;
    let (network, new_network) = key_file(&home.join(NETWORK_KEY_FILE))?;
    let config_path = home.join(CONFIG_FILE);
    if !config_path.exists() {
        let text = apply_overrides(DEFAULT_CONFIG, &options.overrides)?;
        crate::config::NodeConfig::parse(&text, "the generated config")
            .context("the init options give an invalid config")?;
        std::fs::write(&config_path, text)
            .with_context(|| format!("writing {}", config_path.display()))?;
    }
    let card = ValidatorCard {
        name: options.name.clone(),
        consensus_public_key: hex::encode(consensus.public_key().0),
        network_public_key: hex::encode(network.public_key().0),
        address: options.address.clone(),
    };
    let card_text = format!(
        "# The public card of node {:?}: send it to the genesis coordinator.\n{}",
        options.name,
        toml::to_string_pretty(&card).context("encoding the card")?
    );
    std::fs::write(home.join(CARD_FILE), card_text).context("writing the validator card")?;
    create_node_home(home, &RocksConfig::default()).with_context(|| {
        format!(
            "creating the block database in {} (to re-sync from genesis, stop the node and \
             remove {} first)",
            home.display(),
            home.join("db").display()
        )
    })?;
    Ok(Initialised {
        card,
        new_keys: new_consensus || new_network,
    })
}

/// Loads the key at `path`, or makes one there.
fn key_file(path: &Path) -> Result<(SigningKey, bool)> {
    if path.exists() {
        let key = SigningKey::load_pem(path)
            .with_context(|| format!("reading the key {}", path.display()))?;
        return Ok((key, false));
    }
    let key = SigningKey::generate()?;
    key.save_pem(path)
        .with_context(|| format!("writing the key {}", path.display()))?;
    Ok((key, true))
}

/// Loads a key of a home, checking it is readable by its owner only.
pub fn load_key(home: &Path, file: &str) -> Result<SigningKey> {
    let path = home.join(file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = std::fs::metadata(&path).with_context(|| {
            format!(
                "no key at {} (run `yuchain-node init --home {}` first)",
                path.display(),
                home.display()
            )
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the key {} can be read by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    SigningKey::load_pem(&path).with_context(|| format!("reading the key {}", path.display()))
}

/// Replaces `key = value` lines of sections in a config text.
fn apply_overrides(text: &str, overrides: &[(String, String, String)]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut section = String::new();
    let mut done = vec![false; overrides.len()];
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
            section = trimmed.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        let mut replaced = false;
        if let Some((key, _)) = trimmed.split_once('=') {
            for (index, (want_section, want_key, value)) in overrides.iter().enumerate() {
                if *want_section == section && key.trim() == want_key && !trimmed.starts_with('#') {
                    out.push_str(&format!("{want_key} = {value}\n"));
                    done[index] = true;
                    replaced = true;
                }
            }
        }
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(index) = done.iter().position(|done| !done) {
        let (section, key, _) = &overrides[index];
        bail!("no field `{key}` in section [{section}] of the default config");
    }
    Ok(out)
}

/// The path of a file named by the config, relative to the home.
pub fn resolve(home: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        home.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_a_home_keeps_its_keys_and_refuses_an_existing_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("bank");
        let options = InitOptions {
            name: "bank".into(),
            address: "127.0.0.1:7100".into(),
            overrides: vec![(
                "gateway".into(),
                "listen".into(),
                "\"127.0.0.1:9999\"".into(),
            )],
        };
        let first = init(&home, &options).expect("init");
        assert!(first.new_keys);
        let config = crate::config::NodeConfig::load(&home.join(CONFIG_FILE)).expect("config");
        assert_eq!(config.gateway.listen.port(), 9999);
        let error = format!("{:#}", init(&home, &options).expect_err("database exists"));
        assert!(error.contains("remove"), "{error}");
        std::fs::remove_dir_all(home.join("db")).expect("wipe");
        let again = init(&home, &options).expect("re-init after a wipe");
        assert!(!again.new_keys);
        assert_eq!(again.card, first.card, "the same keys");
        load_key(&home, CONSENSUS_KEY_FILE).expect("key readable");
    }

    #[test]
    fn an_unknown_override_is_an_error() {
        let error = apply_overrides(
            DEFAULT_CONFIG,
            &[("gateway".into(), "nope".into(), "1".into())],
        )
        .expect_err("unknown");
        assert!(error.to_string().contains("nope"));
    }
}
