//! Consensus safety data, in a store of its own, apart from the block data.
//!
//! [`FileSafetyStore`] keeps every safety entry in one small file, replaced
//! whole on each [`put_safety`](SafetyStore::put_safety):
//!
//! 1. the new record is written to `<file>.tmp` and fsynced;
//! 2. `<file>.tmp` is renamed over `<file>` (atomic on POSIX file systems);
//! 3. the directory is fsynced, so the rename itself survives power loss.
//!
//! So after `kill -9` or power loss at any instant, `<file>` holds either the
//! old record or the new one, never a mix; a `put_safety` that returned is
//! the one on disk. The record carries a blake3 checksum, so a record damaged
//! anyway (a disk error, a bad restore, a truncated copy) is reported as
//! [`Error::SafetyRecordCorrupt`] and never read as "no data", which would
//! let a validator vote again in a round it already voted in. A missing file
//! is [`Error::NotFound`]: only [`FileSafetyStore::create`] makes one.
//!
//! A store holds an exclusive `flock` on `<file>.lock` for its lifetime, so
//! a second process (or a second handle) on the same record is refused with
//! [`Error::SafetyRecordInUse`]: two writers of one record could each let a
//! vote out that the other does not know about. The lock file is left in
//! place when the store closes; it holds no data.
//!
//! The record, all integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `YCSAFE` ‖ 0 ‖ format version 1 |
//! | 4 | body length |
//! | body | entry count (u32), then per entry in ascending key order: key length (u16), key, value length (u32), value |
//! | 32 | blake3 (derive-key mode, context [`CHECKSUM_CONTEXT`]) of everything before it |
//!
//! Keys are sorted and unique, so one set of entries has exactly one
//! encoding. [`MemSafetyStore`] is the in-memory twin with the same bounds.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{Error, Result, SafetyStore};

/// The longest safety key.
pub const SAFETY_KEY_BYTES_MAX: usize = 256;
/// The most safety entries a store holds.
pub const SAFETY_ENTRIES_MAX: usize = 1_024;
/// The largest encoded record, so a read never allocates without bound. A
/// consensus `SafetyData` with a quorum certificate and a timeout
/// certificate of 100 validators is well under 64 KiB.
pub const SAFETY_RECORD_BYTES_MAX: usize = 16 << 20;
/// The blake3 derive-key context of the record checksum.
pub const CHECKSUM_CONTEXT: &str = "yuchain v1 safety record checksum";

const MAGIC: [u8; 8] = *b"YCSAFE\x00\x01";
const CHECKSUM_LENGTH: usize = 32;
/// Magic, body length, entry count and checksum: an empty record.
const EMPTY_RECORD_LENGTH: usize = MAGIC.len() + 4 + 4 + CHECKSUM_LENGTH;

type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// Encodes `records`, refusing any that pass the bounds.
pub(crate) fn encode_records(records: &Records) -> Result<Vec<u8>> {
    if records.len() > SAFETY_ENTRIES_MAX {
        return Err(Error::SafetyLimit {
            what: "entries",
            size: records.len(),
            max: SAFETY_ENTRIES_MAX,
        });
    }
    let mut body = Vec::new();
    body.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (key, value) in records {
        let key_length = u16::try_from(key.len())
            .ok()
            .filter(|&length| usize::from(length) <= SAFETY_KEY_BYTES_MAX)
            .ok_or(Error::SafetyLimit {
                what: "key length in bytes",
                size: key.len(),
                max: SAFETY_KEY_BYTES_MAX,
            })?;
        let too_large = |size| Error::SafetyLimit {
            what: "record size in bytes",
            size,
            max: SAFETY_RECORD_BYTES_MAX,
        };
        let value_length = u32::try_from(value.len()).map_err(|_| too_large(value.len()))?;
        if EMPTY_RECORD_LENGTH + body.len() + 6 + key.len() + value.len() > SAFETY_RECORD_BYTES_MAX
        {
            return Err(too_large(
                EMPTY_RECORD_LENGTH + body.len() + 6 + key.len() + value.len(),
            ));
        }
        body.extend_from_slice(&key_length.to_be_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(&value_length.to_be_bytes());
        body.extend_from_slice(value);
    }
    let body_length = u32::try_from(body.len()).map_err(|_| Error::SafetyLimit {
        what: "record size in bytes",
        size: body.len(),
        max: SAFETY_RECORD_BYTES_MAX,
    })?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + body.len() + CHECKSUM_LENGTH);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&body_length.to_be_bytes());
    bytes.extend_from_slice(&body);
    let checksum = checksum(&bytes);
    bytes.extend_from_slice(&checksum);
    Ok(bytes)
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LENGTH] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// Decodes a record; any deviation from the one valid encoding is an error
/// whose text says what was found.
pub(crate) fn decode_records(bytes: &[u8]) -> std::result::Result<Records, String> {
    if bytes.len() < EMPTY_RECORD_LENGTH {
        return Err(format!(
            "{} bytes, shorter than the smallest record ({EMPTY_RECORD_LENGTH})",
            bytes.len()
        ));
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(format!(
            "wrong magic {:02x?}, expected {MAGIC:02x?}",
            &bytes[..MAGIC.len()]
        ));
    }
    let (covered, stored) = bytes.split_at(bytes.len() - CHECKSUM_LENGTH);
    if checksum(covered) != stored {
        return Err(format!(
            "checksum mismatch over {} bytes (torn or damaged write)",
            covered.len()
        ));
    }
    let mut reader = Reader(&covered[MAGIC.len()..]);
    let body_length = reader.u32("body length")? as usize;
    if body_length != reader.0.len() {
        return Err(format!(
            "body length {body_length}, but {} bytes follow",
            reader.0.len()
        ));
    }
    let count = reader.u32("entry count")? as usize;
    if count > SAFETY_ENTRIES_MAX {
        return Err(format!(
            "{count} entries, the maximum is {SAFETY_ENTRIES_MAX}"
        ));
    }
    let mut records = Records::new();
    for index in 0..count {
        let key_length = usize::from(reader.u16("key length")?);
        if key_length > SAFETY_KEY_BYTES_MAX {
            return Err(format!(
                "entry {index} has a {key_length}-byte key, the maximum is {SAFETY_KEY_BYTES_MAX}"
            ));
        }
        let key = reader.take(key_length, "key")?;
        let value_length = reader.u32("value length")? as usize;
        let value = reader.take(value_length, "value")?;
        if records
            .last_key_value()
            .is_some_and(|(last, _)| last.as_slice() >= key)
        {
            return Err(format!("entry {index}: keys are not strictly ascending"));
        }
        records.insert(key.to_vec(), value.to_vec());
    }
    if !reader.0.is_empty() {
        return Err(format!("{} bytes after the last entry", reader.0.len()));
    }
    Ok(records)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < length {
            return Err(format!(
                "{what} needs {length} bytes, {} remain",
                self.0.len()
            ));
        }
        let (taken, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(taken)
    }

    fn u16(&mut self, what: &str) -> std::result::Result<u16, String> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// The file safety store; see the [module docs](self).
#[derive(Debug)]
pub struct FileSafetyStore {
    path: PathBuf,
    temporary: PathBuf,
    /// `<file>.lock`, exclusively locked while this store lives.
    _lock: File,
    /// Serialises writers, who share the temporary file. Held across the
    /// fsyncs; readers never take it.
    writes: Mutex<()>,
    /// What the file holds, replaced only after a write is durable.
    records: RwLock<Records>,
}

impl FileSafetyStore {
    /// Creates the record file at `path` with no entries, durably. Fails
    /// with [`Error::AlreadyExists`] if anything is at `path` (an existing
    /// record is never reset); the directory must exist.
    pub fn create(path: impl AsRef<Path>) -> Result<FileSafetyStore> {
        let path = path.as_ref();
        // Locked before the check, so two creators cannot both pass it.
        let lock = lock_record(path)?;
        if path.symlink_metadata().is_ok() {
            return Err(Error::AlreadyExists {
                what: "safety record",
                path: path.to_path_buf(),
            });
        }
        let store = FileSafetyStore::at(path, Records::new(), lock);
        store.write_file(&encode_records(&Records::new())?)?;
        Ok(store)
    }

    /// Opens the record file at `path` and checks it. Fails with
    /// [`Error::NotFound`] if there is none, and with
    /// [`Error::SafetyRecordCorrupt`] if it is damaged, and with
    /// [`Error::SafetyRecordInUse`] if another store has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSafetyStore> {
        let path = path.as_ref();
        let not_found = || Error::NotFound {
            what: "safety record",
            path: path.to_path_buf(),
        };
        // Checked first so that opening a missing record creates nothing,
        // not even the lock file.
        if path.symlink_metadata().is_err() {
            return Err(not_found());
        }
        // Locked before reading, so no other writer replaces the record
        // between the read and the first write.
        let lock = lock_record(path)?;
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found());
            }
            Err(error) => return Err(Error::io("opening", path)(error)),
        };
        // Read at most one byte past the bound, so an oversized file is
        // reported without reading all of it.
        let mut bytes = Vec::new();
        file.take(SAFETY_RECORD_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", path))?;
        let corrupt = |detail| Error::SafetyRecordCorrupt {
            path: path.to_path_buf(),
            detail,
        };
        if bytes.len() > SAFETY_RECORD_BYTES_MAX {
            return Err(corrupt(format!(
                "larger than the maximum of {SAFETY_RECORD_BYTES_MAX} bytes"
            )));
        }
        let records = decode_records(&bytes).map_err(corrupt)?;
        Ok(FileSafetyStore::at(path, records, lock))
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn at(path: &Path, records: Records, lock: File) -> FileSafetyStore {
        FileSafetyStore {
            path: path.to_path_buf(),
            temporary: with_suffix(path, ".tmp"),
            _lock: lock,
            writes: Mutex::new(()),
            records: RwLock::new(records),
        }
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The guard protects no data, only the temporary file's name.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_records(&self) -> RwLockReadGuard<'_, Records> {
        // Replaced whole after a durable write, so never half-updated.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_records(&self) -> RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write temporary, fsync, rename, fsync the directory.
    fn write_file(&self, bytes: &[u8]) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.temporary)
            .map_err(Error::io("creating", &self.temporary))?;
        file.write_all(bytes)
            .map_err(Error::io("writing", &self.temporary))?;
        file.sync_all()
            .map_err(Error::io("syncing", &self.temporary))?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path)
            .map_err(Error::io("renaming the new record onto", &self.path))?;
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(Error::io("syncing the directory", directory))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the exclusive lock of the record at `path`, creating its lock file
/// if needed.
fn lock_record(path: &Path) -> Result<File> {
    let lock_path = with_suffix(path, ".lock");
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(Error::io("creating the lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::SafetyRecordInUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(Error::io("locking", &lock_path)(error)),
    }
}

impl SafetyStore for FileSafetyStore {
    /// Rewrites the whole record with `key` set to `value`; returns once the
    /// new record is durable. On an error the store keeps serving the old
    /// entries, and the caller must treat the write as not done (not send
    /// what depended on it); the file then holds the old record or the new.
    fn write_safety(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let _writer = self.lock_writes();
        let mut records = self.read_records().clone();
        apply_changes(&mut records, changes);
        let bytes = encode_records(&records)?;
        self.write_file(&bytes)?;
        *self.write_records() = records;
        Ok(())
    }

    fn safety(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read_records().get(key).cloned())
    }

    fn safety_keys(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.read_records().keys().cloned().collect())
    }
}

/// Sets (`Some`) or removes (`None`) each key, in order.
fn apply_changes(records: &mut Records, changes: &[(Vec<u8>, Option<Vec<u8>>)]) {
    for (key, value) in changes {
        match value {
            Some(value) => {
                records.insert(key.clone(), value.clone());
            }
            None => {
                records.remove(key);
            }
        }
    }
}

/// The in-memory twin of [`FileSafetyStore`], with the same bounds, for
/// tests and the simulator.
#[derive(Debug, Default)]
pub struct MemSafetyStore {
    records: RwLock<Records>,
}

impl MemSafetyStore {
    /// An empty store.
    pub fn new() -> MemSafetyStore {
        MemSafetyStore::default()
    }
}

impl SafetyStore for MemSafetyStore {
    fn write_safety(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = records.clone();
        apply_changes(&mut next, changes);
        // Encoded only to apply the file store's bounds.
        encode_records(&next)?;
        *records = next;
        Ok(())
    }

    fn safety(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        Ok(records.get(key).cloned())
    }

    fn safety_keys(&self) -> Result<Vec<Vec<u8>>> {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        Ok(records.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Records {
        let mut records = Records::new();
        records.insert(b"last_vote".to_vec(), b"round 7".to_vec());
        records.insert(b"".to_vec(), vec![]);
        records.insert(vec![0xFF; SAFETY_KEY_BYTES_MAX], vec![1; 1000]);
        records
    }

    #[test]
    fn records_round_trip_and_encode_deterministically() {
        let records = sample();
        let bytes = encode_records(&records).expect("encode");
        assert_eq!(decode_records(&bytes).expect("decode"), records);
        assert_eq!(encode_records(&records.clone()).expect("again"), bytes);
        let empty = encode_records(&Records::new()).expect("empty");
        assert_eq!(empty.len(), EMPTY_RECORD_LENGTH);
        assert_eq!(decode_records(&empty).expect("decode"), Records::new());
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let bytes = encode_records(&sample()).expect("encode");
        for length in 0..bytes.len() {
            assert!(
                decode_records(&bytes[..length]).is_err(),
                "truncated to {length}"
            );
        }
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            assert!(decode_records(&damaged).is_err(), "flipped byte {index}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_records(&longer).is_err());
    }

    #[test]
    fn a_well_checksummed_but_non_canonical_record_is_refused() {
        // Two entries with the same key, checksummed correctly: only a bug or
        // a forger writes this, and it must not decode.
        let mut body = Vec::new();
        body.extend_from_slice(&2u32.to_be_bytes());
        for _ in 0..2 {
            body.extend_from_slice(&1u16.to_be_bytes());
            body.push(b'k');
            body.extend_from_slice(&0u32.to_be_bytes());
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        let error = decode_records(&bytes).expect_err("duplicate keys");
        assert!(error.contains("strictly ascending"), "{error}");
    }

    #[test]
    fn bounds_are_enforced_on_encode() {
        let mut records = Records::new();
        records.insert(vec![0; SAFETY_KEY_BYTES_MAX + 1], vec![]);
        assert!(matches!(
            encode_records(&records),
            Err(Error::SafetyLimit {
                what: "key length in bytes",
                ..
            })
        ));
        let records: Records = (0..=SAFETY_ENTRIES_MAX)
            .map(|index| ((index as u32).to_be_bytes().to_vec(), vec![]))
            .collect();
        assert!(matches!(
            encode_records(&records),
            Err(Error::SafetyLimit {
                what: "entries",
                ..
            })
        ));
        let mut records = Records::new();
        records.insert(b"big".to_vec(), vec![0; SAFETY_RECORD_BYTES_MAX]);
        assert!(matches!(
            encode_records(&records),
            Err(Error::SafetyLimit {
                what: "record size in bytes",
                ..
            })
        ));
    }
}
