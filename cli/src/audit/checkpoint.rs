//! Replay's own checkpoint: where it stopped and everything it needs to go
//! on from there without trusting the source's state (the replayed state
//! entries, the last executed states that later blocks' claims are checked
//! against, the batches ordered so far, issuance by operator).
//!
//! One file, replaced atomically: written to `<file>.tmp`, fsynced, renamed
//! over the file, the directory fsynced; so after a crash it is the old
//! checkpoint or the new one. Its bytes end with a blake3 checksum, and every
//! length is bounded before anything is allocated.

use std::io::Write as _;
use std::path::Path;

use yuchain_proto::{Address, Hash32};

use super::error::{AuditError, Result};
use super::replay::{ExecutedAt, OperatorSupply};

const MAGIC: &[u8] = b"yuchain audit checkpoint v1\n";
/// The most state entries a checkpoint holds.
const ENTRIES_MAX: u64 = 200_000_000;
/// The most bytes of one state key or value.
const ENTRY_BYTES_MAX: usize = 1 << 20;
/// The most recent executed states, ordered batches or operators.
const LIST_MAX: u64 = 100_000_000;

/// A replay checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The genesis file's hash (a checkpoint is of one chain).
    pub genesis_hash: Hash32,
    /// The last height executed.
    pub height: u64,
    /// Its consensus block's hash (the next block's parent).
    pub consensus_hash: Hash32,
    /// The last executed states, oldest first; the last is `height`'s.
    pub recent: Vec<ExecutedAt>,
    /// Batches ordered so far, with the height that ordered each.
    pub ordered: Vec<(Hash32, u64)>,
    /// Issued and redeemed by operator.
    pub operators: Vec<(Address, OperatorSupply)>,
    /// Every state entry at `height`, in key order.
    pub state: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn hash(&mut self, value: &Hash32) {
        self.0.extend_from_slice(&value.0);
    }
    fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, tail) = self.0.split_at(count);
        self.0 = tail;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<Hash32> {
        Hash32::from_slice(self.take(32)?)
    }
    fn count(&mut self, max: u64) -> Option<usize> {
        let count = self.u64()?;
        if count > max {
            return None;
        }
        usize::try_from(count).ok()
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.count(ENTRY_BYTES_MAX as u64)?;
        Some(self.take(len)?.to_vec())
    }
}

impl Checkpoint {
    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer(MAGIC.to_vec());
        writer.hash(&self.genesis_hash);
        writer.u64(self.height);
        writer.hash(&self.consensus_hash);
        writer.u64(self.recent.len() as u64);
        for executed in &self.recent {
            writer.u64(executed.height);
            writer.hash(&executed.block_hash);
            writer.hash(&executed.state_root);
        }
        writer.u64(self.ordered.len() as u64);
        for (digest, height) in &self.ordered {
            writer.hash(digest);
            writer.u64(*height);
        }
        writer.u64(self.operators.len() as u64);
        for (operator, supply) in &self.operators {
            writer.0.extend_from_slice(&operator.0);
            writer.u64(supply.issued);
            writer.u64(supply.redeemed);
        }
        writer.u64(self.state.len() as u64);
        for (key, value) in &self.state {
            writer.bytes(key);
            writer.bytes(value);
        }
        let checksum = blake3::hash(&writer.0);
        writer.0.extend_from_slice(checksum.as_bytes());
        writer.0
    }

    /// Reads a checkpoint's bytes: `None` if they are not one, whole.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let body_len = bytes.len().checked_sub(32)?;
        let (body, checksum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes() != checksum {
            return None;
        }
        let mut reader = Reader(body.strip_prefix(MAGIC)?);
        let genesis_hash = reader.hash()?;
        let height = reader.u64()?;
        let consensus_hash = reader.hash()?;
        let mut recent = Vec::new();
        for _ in 0..reader.count(LIST_MAX)? {
            recent.push(ExecutedAt {
                height: reader.u64()?,
                block_hash: reader.hash()?,
                state_root: reader.hash()?,
            });
        }
        let mut ordered = Vec::new();
        for _ in 0..reader.count(LIST_MAX)? {
            ordered.push((reader.hash()?, reader.u64()?));
        }
        let mut operators = Vec::new();
        for _ in 0..reader.count(LIST_MAX)? {
            let operator = Address::from_slice(reader.take(20)?).ok()?;
            let supply = OperatorSupply {
                issued: reader.u64()?,
                redeemed: reader.u64()?,
            };
            operators.push((operator, supply));
        }
        let mut state = Vec::new();
        for _ in 0..reader.count(ENTRIES_MAX)? {
            state.push((reader.bytes()?, reader.bytes()?));
        }
        if !reader.0.is_empty() {
            return None;
        }
        Some(Checkpoint {
            genesis_hash,
            height,
            consensus_hash,
            recent,
            ordered,
            operators,
            state,
        })
    }

    /// Reads the checkpoint at `path`, which must be of the chain whose
    /// genesis file hashes to `genesis_hash`.
    pub fn load(path: &Path, genesis_hash: Hash32) -> Result<Checkpoint> {
        let failed = |reason: String| AuditError::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
        let checkpoint = Checkpoint::decode(&bytes).ok_or_else(|| {
            failed(
                "it is damaged or not an audit checkpoint (remove it to replay from genesis)"
                    .into(),
            )
        })?;
        if checkpoint.genesis_hash != genesis_hash {
            return Err(failed(format!(
                "it is of another chain (genesis {}, the genesis file's is {genesis_hash})",
                checkpoint.genesis_hash
            )));
        }
        Ok(checkpoint)
    }

    /// Writes the checkpoint atomically (temp file, fsync, rename, fsync
    /// of the directory).
    pub fn save(&self, path: &Path) -> Result<()> {
        let failed = |what: &str, error: std::io::Error| AuditError::Checkpoint {
            path: path.display().to_string(),
            reason: format!("{what}: {error}"),
        };
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = std::path::PathBuf::from(temporary);
        let mut file = std::fs::File::create(&temporary).map_err(|e| failed("creating", e))?;
        file.write_all(&self.encode())
            .map_err(|e| failed("writing", e))?;
        file.sync_all().map_err(|e| failed("syncing", e))?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(|e| failed("renaming", e))?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::File::open(&directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|e| failed("syncing its directory", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_any_damage_is_refused() {
        let checkpoint = Checkpoint {
            genesis_hash: Hash32([1; 32]),
            height: 7,
            consensus_hash: Hash32([2; 32]),
            recent: vec![ExecutedAt {
                height: 7,
                block_hash: Hash32([3; 32]),
                state_root: Hash32([4; 32]),
            }],
            ordered: vec![(Hash32([5; 32]), 6)],
            operators: vec![(
                Address([6; 20]),
                OperatorSupply {
                    issued: 10,
                    redeemed: 3,
                },
            )],
            state: vec![(vec![1, 2], vec![3, 4, 5])],
        };
        let bytes = checkpoint.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(checkpoint.clone()));
        for index in [0, MAGIC.len() + 3, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[index] ^= 1;
            assert_eq!(Checkpoint::decode(&damaged), None, "byte {index}");
        }
        assert_eq!(Checkpoint::decode(&bytes[..bytes.len() - 1]), None);
        let dir = tempfile::tempdir().expect("a dir");
        let path = dir.path().join("replay.checkpoint");
        checkpoint.save(&path).expect("saved");
        assert_eq!(
            Checkpoint::load(&path, Hash32([1; 32])).expect("loads"),
            checkpoint
        );
        let error = Checkpoint::load(&path, Hash32([9; 32])).expect_err("another chain");
        assert!(error.to_string().contains("another chain"), "{error}");
    }
}
