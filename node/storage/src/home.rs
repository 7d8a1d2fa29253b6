//! A node's home directory: its block database and, apart from it, its
//! consensus safety record.
//!
//! ```text
//! <home>/db       RocksStore (blocks, state, receipts, history)
//! <home>/safety   FileSafetyStore (last vote, locks)
//! ```
//!
//! A home is made once with [`create_node_home`] and afterwards only opened
//! with [`open_node_home`], which never creates anything (except the one
//! case the operator asks for explicitly, [`Role::ValidatorAssumeNeverVoted`]):
//! a mistyped path or a lost directory is an error, not a fresh node.

use std::path::{Path, PathBuf};

use crate::{BlockStore, Error, FileSafetyStore, Result, RocksConfig, RocksStore};

/// The block database's directory inside a node home.
pub const BLOCK_DATABASE_DIR: &str = "db";
/// The safety record's file inside a node home.
pub const SAFETY_RECORD_FILE: &str = "safety";
/// The node's command-line flag for [`Role::ValidatorAssumeNeverVoted`],
/// named here so the storage error that suggests it and the node that
/// parses it cannot disagree.
pub const ASSUME_NEVER_VOTED_FLAG: &str = "--assume-never-voted";

/// What the node opening a home will do, which decides what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A validator: the home must hold its safety record.
    Validator,
    /// A validator whose operator states that its key never voted, by
    /// starting it with [`ASSUME_NEVER_VOTED_FLAG`]: a missing safety record
    /// is created empty. An existing record is kept and a corrupt one is
    /// still an error. Wrong, this lets the validator vote twice in a round
    /// and be a Byzantine node; use it only for a key that never voted.
    ValidatorAssumeNeverVoted,
    /// A node that never votes; it needs, and is given, no safety record.
    Observer,
}

/// The stores of an opened node home.
#[derive(Debug)]
pub struct NodeHome {
    /// The block database.
    pub blocks: RocksStore,
    /// The safety record: always present for validators, `None` for
    /// observers.
    pub safety: Option<FileSafetyStore>,
}

/// The block database's path in `home`.
pub fn block_database_path(home: &Path) -> PathBuf {
    home.join(BLOCK_DATABASE_DIR)
}

/// The safety record's path in `home`.
pub fn safety_record_path(home: &Path) -> PathBuf {
    home.join(SAFETY_RECORD_FILE)
}

/// Makes a new node home at `home` (the directory is created if missing):
/// an empty safety record first, then an empty block database, so a crash
/// in between never leaves a database without a safety record. Fails with
/// [`Error::AlreadyExists`] if the home already has a block database. A
/// safety record already there is checked and kept, never reset: a validator
/// that lost its block database but kept its record starts again from an
/// empty database and catches up, remembering its votes.
pub fn create_node_home(home: &Path, config: &RocksConfig) -> Result<NodeHome> {
    std::fs::create_dir_all(home).map_err(Error::io("creating the node home", home))?;
    let database = block_database_path(home);
    if database.symlink_metadata().is_ok() {
        return Err(Error::AlreadyExists {
            what: "block database",
            path: database,
        });
    }
    let safety_path = safety_record_path(home);
    let safety = match FileSafetyStore::open(&safety_path) {
        Ok(safety) => safety,
        Err(Error::NotFound { .. }) => FileSafetyStore::create(&safety_path)?,
        Err(error) => return Err(error),
    };
    let blocks = RocksStore::create_with(&database, config)?;
    Ok(NodeHome {
        blocks,
        safety: Some(safety),
    })
}

/// Opens the node home at `home` for `role`. The block database must exist
/// ([`Error::NotFound`] otherwise); a validator's safety record must exist
/// too ([`Error::SafetyRecordMissing`], see [`check_safety_record`]) and be
/// intact ([`Error::SafetyRecordCorrupt`]).
pub fn open_node_home(home: &Path, role: Role, config: &RocksConfig) -> Result<NodeHome> {
    let blocks = RocksStore::open_with(block_database_path(home), config)?;
    let safety_path = safety_record_path(home);
    let safety = match role {
        Role::Observer => None,
        Role::Validator => Some(check_safety_record(
            home,
            &blocks,
            FileSafetyStore::open(&safety_path),
        )?),
        Role::ValidatorAssumeNeverVoted => match FileSafetyStore::open(&safety_path) {
            Err(Error::NotFound { .. }) => Some(FileSafetyStore::create(&safety_path)?),
            opened => Some(opened?),
        },
    };
    Ok(NodeHome { blocks, safety })
}

/// A validator's start-up check: turns "no safety record next to this block
/// database" into [`Error::SafetyRecordMissing`], whose message says why the
/// validator refuses to start and what the operator can do; passes any other
/// outcome of opening the record through.
pub fn check_safety_record<S>(
    home: &Path,
    blocks: &dyn BlockStore,
    opened: Result<S>,
) -> Result<S> {
    match opened {
        Err(Error::NotFound { path, .. }) => {
            let head = match blocks.head()? {
                Some(head) => format!("at height {}", head.height),
                None => "none yet".to_string(),
            };
            Err(Error::SafetyRecordMissing {
                home: home.to_path_buf(),
                path,
                head,
            })
        }
        other => other,
    }
}
