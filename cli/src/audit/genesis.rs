//! The chain's genesis file as the auditor reads it: the ledger's genesis
//! (re-executed from), the first validator set (every certificate is checked
//! against it) and the file's hash (the root the first block names).

use std::path::Path;

use serde::{Deserialize, Serialize};
use yuchain_consensus::ValidatorSet;
use yuchain_consensus::types::Epoch;
use yuchain_proto::{Domain, Hash32, PublicKey};

use super::error::{AuditError, Result};

/// A validator card, as in the node's genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// Its name.
    pub name: String,
    /// The ed25519 key it votes with, 64 hex digits.
    pub consensus_public_key: String,
    /// Its network key, 64 hex digits.
    pub network_public_key: String,
    /// Where it listens.
    pub address: String,
}

/// The genesis file's fields, in the node's order: its canonical TOML form
/// (what is hashed) is the same bytes as the node's `GenesisFile`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisDocument {
    /// The ledger's genesis.
    pub ledger: yuchain_ledger::Genesis,
    /// The first validator set, in order.
    pub validators: Vec<Card>,
}

/// A checked genesis: what replay starts from.
#[derive(Clone, Debug)]
pub struct AuditGenesis {
    /// The file (for messages).
    pub path: String,
    /// The document.
    pub document: GenesisDocument,
    /// The validators of epoch 0.
    pub validators: ValidatorSet,
    /// The file's hash: the consensus root, the first block's parent.
    pub hash: Hash32,
}

impl AuditGenesis {
    /// Reads and checks a genesis file.
    pub fn load(path: &Path) -> Result<AuditGenesis> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| AuditError::Genesis {
            path: name.clone(),
            reason: error.to_string(),
        })?;
        AuditGenesis::parse(&name, &text)
    }

    /// Checks a genesis document given as TOML text.
    pub fn parse(name: &str, text: &str) -> Result<AuditGenesis> {
        let invalid = |reason: String| AuditError::Genesis {
            path: name.to_string(),
            reason,
        };
        let document: GenesisDocument =
            toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        AuditGenesis::from_document(name, document)
    }

    /// Checks a genesis document.
    pub fn from_document(name: &str, document: GenesisDocument) -> Result<AuditGenesis> {
        let invalid = |reason: String| AuditError::Genesis {
            path: name.to_string(),
            reason,
        };
        let keys = document
            .validators
            .iter()
            .enumerate()
            .map(|(index, card)| {
                hex::decode(card.consensus_public_key.trim())
                    .ok()
                    .and_then(|bytes| PublicKey::from_slice(&bytes).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "validators[{index}].consensus_public_key is not 64 hex digits"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let chain = yuchain_consensus::ChainTag::of(&document.ledger.chain_id);
        let validators = ValidatorSet::new(chain, Epoch(0), keys)
            .map_err(|error| invalid(format!("the validator set is not valid: {error}")))?;
        let canonical =
            toml::to_string_pretty(&document).map_err(|error| invalid(error.to_string()))?;
        let hash = Domain::Genesis.hash_parts(&[b"node genesis", canonical.as_bytes()]);
        Ok(AuditGenesis {
            path: name.to_string(),
            document,
            validators,
            hash,
        })
    }

    /// The ledger's genesis.
    pub fn ledger(&self) -> &yuchain_ledger::Genesis {
        &self.document.ledger
    }
}
