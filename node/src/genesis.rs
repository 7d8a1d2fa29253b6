//! The chain's genesis file: the ledger's genesis (chain id, time, issuer,
//! operators, parameters) and the first validator set, each validator with
//! its consensus key, its network key and the address it listens on.
//!
//! A genesis file is made once, in a ceremony that works across machines:
//! each validator runs `yuchain-node init`, which writes a public *validator
//! card* (`validator.toml`: name, keys, address); the coordinator collects
//! the cards and runs `yuchain-node genesis`, and every node gets the same
//! file. Its hash (of its canonical TOML form) is the root of the chain:
//! nodes with different files never agree on a block.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use yuchain_proto::{Domain, Hash32, PublicKey};

/// The most validators in the first set (the consensus core's bound).
pub const GENESIS_VALIDATORS_MAX: usize = yuchain_consensus::types::VALIDATORS_MAX;

/// A genesis file that cannot be used, with the field at fault.
#[derive(Debug, Error)]
pub enum GenesisFileError {
    /// The file could not be read.
    #[error("cannot read the genesis file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The TOML does not parse or has unknown fields.
    #[error("the genesis file {path} is not valid: {error}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (it names the line and field).
        error: String,
    },
    /// A field's value is wrong.
    #[error("genesis field `{field}`: {reason}")]
    Field {
        /// The field, e.g. `validators[2].network_public_key`.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// A validator as genesis names it: the public half of what
/// `yuchain-node init` made, also its *validator card*.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorCard {
    /// A name for people (the bank or the treasury), unique in the set.
    pub name: String,
    /// The ed25519 key it votes with, 64 hex digits.
    pub consensus_public_key: String,
    /// The ed25519 key its network connections are authenticated with, 64
    /// hex digits.
    pub network_public_key: String,
    /// Where other nodes reach it, `host:port`.
    pub address: String,
}

impl ValidatorCard {
    /// Reads a card written by `yuchain-node init`.
    pub fn load(path: &Path) -> Result<ValidatorCard, GenesisFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| GenesisFileError::Read {
            path: path.display().to_string(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| GenesisFileError::Parse {
            path: path.display().to_string(),
            error: error.to_string(),
        })
    }
}

/// The genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The ledger's genesis: chain id, time, issuer, operators, parameters.
    pub ledger: yuchain_ledger::Genesis,
    /// The first validator set, in this order (the leader rotation's).
    pub validators: Vec<ValidatorCard>,
}

/// A checked validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its name.
    pub name: String,
    /// Its consensus key.
    pub consensus_key: PublicKey,
    /// Its network key.
    pub network_key: [u8; 32],
    /// Its address.
    pub address: String,
}

impl GenesisFile {
    /// Reads and checks a genesis file.
    pub fn load(path: &Path) -> Result<GenesisFile, GenesisFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| GenesisFileError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let file: GenesisFile = toml::from_str(&text).map_err(|error| GenesisFileError::Parse {
            path: path.display().to_string(),
            error: error.to_string(),
        })?;
        file.validators()?;
        file.ledger
            .issuer_key()
            .map_err(|error| GenesisFileError::Field {
                field: "ledger.issuer_public_key".into(),
                reason: error.to_string(),
            })?;
        Ok(file)
    }

    /// The canonical TOML form, the one that is hashed.
    pub fn to_toml(&self) -> Result<String, GenesisFileError> {
        toml::to_string_pretty(self).map_err(|error| GenesisFileError::Field {
            field: "(whole file)".into(),
            reason: error.to_string(),
        })
    }

    /// The chain's root hash: blake3 (genesis domain) of the canonical TOML
    /// form, so a reformatted copy of the same file has the same hash.
    pub fn hash(&self) -> Result<Hash32, GenesisFileError> {
        Ok(Domain::Genesis.hash_parts(&[b"node genesis", self.to_toml()?.as_bytes()]))
    }

    /// The validators, checked: 1 to [`GENESIS_VALIDATORS_MAX`] of them,
    /// valid and distinct keys and names, an address each.
    pub fn validators(&self) -> Result<Vec<GenesisValidator>, GenesisFileError> {
        if self.validators.is_empty() || self.validators.len() > GENESIS_VALIDATORS_MAX {
            return Err(GenesisFileError::Field {
                field: "validators".into(),
                reason: format!(
                    "{} validators; between 1 and {GENESIS_VALIDATORS_MAX} are needed \
                     (4 tolerate one faulty validator)",
                    self.validators.len()
                ),
            });
        }
        let mut names = BTreeSet::new();
        let mut consensus_keys = BTreeSet::new();
        let mut network_keys = BTreeSet::new();
        let mut out = Vec::with_capacity(self.validators.len());
        for (index, card) in self.validators.iter().enumerate() {
            let field = |name: &str| format!("validators[{index}].{name}");
            if card.name.trim().is_empty() || !names.insert(card.name.clone()) {
                return Err(GenesisFileError::Field {
                    field: field("name"),
                    reason: format!("{:?} is empty or used twice", card.name),
                });
            }
            let consensus_key = parse_key(&card.consensus_public_key).map_err(|reason| {
                GenesisFileError::Field {
                    field: field("consensus_public_key"),
                    reason,
                }
            })?;
            consensus_key
                .check_usable()
                .map_err(|error| GenesisFileError::Field {
                    field: field("consensus_public_key"),
                    reason: error.to_string(),
                })?;
            if !consensus_keys.insert(consensus_key) {
                return Err(GenesisFileError::Field {
                    field: field("consensus_public_key"),
                    reason: "used by two validators".into(),
                });
            }
            let network_key =
                parse_key(&card.network_public_key).map_err(|reason| GenesisFileError::Field {
                    field: field("network_public_key"),
                    reason,
                })?;
            if !network_keys.insert(network_key.0) {
                return Err(GenesisFileError::Field {
                    field: field("network_public_key"),
                    reason: "used by two validators".into(),
                });
            }
            if card.address.parse::<std::net::SocketAddr>().is_err() && !card.address.contains(':')
            {
                return Err(GenesisFileError::Field {
                    field: field("address"),
                    reason: format!("{:?} is not host:port", card.address),
                });
            }
            out.push(GenesisValidator {
                name: card.name.clone(),
                consensus_key,
                network_key: network_key.0,
                address: card.address.clone(),
            });
        }
        Ok(out)
    }

    /// The consensus core's genesis.
    pub fn consensus_genesis(&self) -> Result<yuchain_consensus::Genesis, GenesisFileError> {
        Ok(yuchain_consensus::Genesis {
            chain: yuchain_consensus::ChainTag::of(&self.ledger.chain_id),
            hash: self.hash()?,
            timestamp_ms: self.ledger.genesis_time_ms,
            validators: self
                .validators()?
                .into_iter()
                .map(|validator| validator.consensus_key)
                .collect(),
        })
    }
}

/// Parses 64 hex digits into a key.
pub fn parse_key(text: &str) -> Result<PublicKey, String> {
    let bytes = hex::decode(text.trim())
        .map_err(|error| format!("{text:?} is not hex ({error}); expected 64 hex digits"))?;
    PublicKey::from_slice(&bytes).map_err(|error| format!("{error}; expected 64 hex digits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_proto::SigningKey;

    fn card(name: &str) -> ValidatorCard {
        ValidatorCard {
            name: name.into(),
            consensus_public_key: hex::encode(SigningKey::for_test(name).public_key().0),
            network_public_key: hex::encode(
                SigningKey::for_test(&format!("{name}/net")).public_key().0,
            ),
            address: "127.0.0.1:7100".into(),
        }
    }

    fn file() -> GenesisFile {
        GenesisFile {
            ledger: yuchain_ledger::Genesis {
                chain_id: "test".into(),
                genesis_time_ms: 1,
                issuer_public_key: hex::encode(SigningKey::for_test("issuer").public_key().0),
                operators: vec![],
                params: Default::default(),
                load_test: None,
            },
            validators: vec![card("a"), card("b")],
        }
    }

    #[test]
    fn the_hash_is_of_the_content_not_the_formatting() {
        let genesis = file();
        let text = genesis.to_toml().expect("toml");
        let reparsed: GenesisFile =
            toml::from_str(&format!("# a comment\n{text}\n\n")).expect("parse");
        assert_eq!(
            reparsed.hash().expect("hash"),
            genesis.hash().expect("hash")
        );
        let mut other = genesis.clone();
        other.validators[1].address = "127.0.0.1:7101".into();
        assert_ne!(other.hash().expect("hash"), genesis.hash().expect("hash"));
    }

    #[test]
    fn a_bad_validator_is_named_by_its_field() {
        let mut genesis = file();
        genesis.validators[1].network_public_key = "zz".into();
        let error = genesis.validators().expect_err("bad key").to_string();
        assert!(
            error.contains("validators[1].network_public_key"),
            "{error}"
        );
        let mut genesis = file();
        genesis.validators[1].consensus_public_key =
            genesis.validators[0].consensus_public_key.clone();
        let error = genesis.validators().expect_err("repeated key").to_string();
        assert!(
            error.contains("validators[1].consensus_public_key"),
            "{error}"
        );
        let mut genesis = file();
        genesis.validators.clear();
        assert!(genesis.validators().is_err());
    }
}
