//! Consensus safety data, in a store of its own, apart from the block data.
//!
//! [`FileSafetyStore`] keeps every safety entry in one small file of two
//! mirrored slots, A then B, each holding the whole record with a
//! generation number. A [`write_safety`](SafetyStore::write_safety)
//! rewrites both in place:
//!
//! 1. the new record, with the next generation, over slot A, then
//!    `fdatasync`;
//! 2. the same record over slot B, then `fdatasync`.
//!
//! Opening takes the valid slot with the higher generation. So after
//! `kill -9` or power loss at any instant the latest write that returned is
//! read back, or a newer one: a crash while A is written leaves A torn and B
//! with the last returned record; a crash between the two leaves A with the
//! new record (never acknowledged, but it only says more than the old one);
//! a crash while B is written leaves A whole. A slot damaged later (a disk
//! error) is outvoted by its mirror. Only both slots damaged, or two slots
//! of one generation that differ, is [`Error::SafetyRecordCorrupt`]: never
//! read as "no data", which would let a validator vote again in a round it
//! already voted in. A missing file is [`Error::NotFound`]: only
//! [`FileSafetyStore::create`] makes one.
//!
//! Why in place: the file's blocks are allocated and written when it is
//! made, and a write never changes its size, so `fdatasync` has no
//! metadata to commit. A rename, or any write that allocates, makes ext4
//! commit its journal, and a journal commit waits for every other file's
//! dirty data (RocksDB's memtable flushes and compactions on the same
//! disk): under load that made one safety write take hundreds of
//! milliseconds, on the consensus path. A record that outgrows its slots
//! (rare: slots start at [`SLOT_BYTES_MIN`] and double) is written the old
//! way once, a new file of larger slots to `<file>.tmp`, fsync, rename,
//! directory fsync.
//!
//! A store holds an exclusive `flock` on `<file>.lock` for its lifetime, so
//! a second process (or a second handle) on the same record is refused with
//! [`Error::SafetyRecordInUse`]: two writers of one record could each let a
//! vote out that the other does not know about. The lock file is left in
//! place when the store closes; it holds no data.
//!
//! A slot, all integers big-endian, then zeros (or an older, longer
//! record's tail) up to the slot size; the file is exactly two slots:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `YCSAFE` ‖ 0 ‖ format version 2 |
//! | 8 | generation (1 when created, one more for every write) |
//! | 4 | body length |
//! | body | entry count (u32), then per entry in ascending key order: key length (u16), key, value length (u32), value |
//! | 32 | blake3 (derive-key mode, context [`CHECKSUM_CONTEXT`]) of everything before it |
//!
//! Keys are sorted and unique, so one set of entries has exactly one
//! encoding. A file of format version 1 (one record, no generation, replaced
//! by rename) is read and rewritten as version 2 when opened.
//! [`MemSafetyStore`] is the in-memory twin with the same bounds.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
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
/// The size of each slot in a new file; slots double when a record
/// outgrows them, up to the power of two that holds
/// [`SAFETY_RECORD_BYTES_MAX`].
pub const SLOT_BYTES_MIN: usize = 64 << 10;

const MAGIC: [u8; 8] = *b"YCSAFE\x00\x02";
/// The format of a file written before slots (one record, by rename).
const MAGIC_V1: [u8; 8] = *b"YCSAFE\x00\x01";
const CHECKSUM_LENGTH: usize = 32;
/// Magic, generation, body length, entry count and checksum: an empty record.
const EMPTY_RECORD_LENGTH: usize = MAGIC.len() + 8 + 4 + 4 + CHECKSUM_LENGTH;
/// The same for format version 1, which had no generation.
const EMPTY_RECORD_LENGTH_V1: usize = EMPTY_RECORD_LENGTH - 8;
/// The largest slot: the smallest power of two that holds the largest record.
const SLOT_BYTES_MAX: usize = SAFETY_RECORD_BYTES_MAX.next_power_of_two();

type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// Encodes `records` as a slot of generation `generation`, refusing any that
/// pass the bounds.
pub(crate) fn encode_slot(generation: u64, records: &Records) -> Result<Vec<u8>> {
    let body = encode_body(records)?;
    let body_length = u32::try_from(body.len()).map_err(|_| Error::SafetyLimit {
        what: "record size in bytes",
        size: body.len(),
        max: SAFETY_RECORD_BYTES_MAX,
    })?;
    let mut bytes = Vec::with_capacity(EMPTY_RECORD_LENGTH - 4 + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&generation.to_be_bytes());
    bytes.extend_from_slice(&body_length.to_be_bytes());
    bytes.extend_from_slice(&body);
    let checksum = checksum(&bytes);
    bytes.extend_from_slice(&checksum);
    Ok(bytes)
}

/// The entry count and entries, checked against the bounds (which count the
/// whole slot record).
fn encode_body(records: &Records) -> Result<Vec<u8>> {
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
        let size = EMPTY_RECORD_LENGTH + body.len() + 6 + key.len() + value.len();
        if size > SAFETY_RECORD_BYTES_MAX {
            return Err(too_large(size));
        }
        body.extend_from_slice(&key_length.to_be_bytes());
        body.extend_from_slice(key);
        body.extend_from_slice(&value_length.to_be_bytes());
        body.extend_from_slice(value);
    }
    Ok(body)
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LENGTH] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// Decodes the record at the start of a slot (what follows it in the slot
/// is ignored) into its generation and entries; any deviation from the one
/// valid encoding is an error whose text says what was found.
pub(crate) fn decode_slot(slot: &[u8]) -> std::result::Result<(u64, Records), String> {
    if slot.len() < EMPTY_RECORD_LENGTH {
        return Err(format!(
            "{} bytes, shorter than the smallest record ({EMPTY_RECORD_LENGTH})",
            slot.len()
        ));
    }
    if slot[..MAGIC.len()] != MAGIC {
        return Err(format!(
            "wrong magic {:02x?}, expected {MAGIC:02x?}",
            &slot[..MAGIC.len()]
        ));
    }
    let mut header = Reader(&slot[MAGIC.len()..]);
    let generation = header.u64("generation")?;
    let body_length = header.u32("body length")? as usize;
    let covered = MAGIC.len() + 8 + 4 + body_length;
    if body_length > SAFETY_RECORD_BYTES_MAX || covered + CHECKSUM_LENGTH > slot.len() {
        return Err(format!(
            "body length {body_length} does not fit a slot of {} bytes (torn or damaged write)",
            slot.len()
        ));
    }
    let (covered, rest) = slot.split_at(covered);
    if checksum(covered) != rest[..CHECKSUM_LENGTH] {
        return Err(format!(
            "checksum mismatch over {} bytes (torn or damaged write)",
            covered.len()
        ));
    }
    let records = decode_body(&covered[MAGIC.len() + 8 + 4..])?;
    Ok((generation, records))
}

/// Decodes a format version 1 file: one record, exactly as long as it says.
fn decode_v1(bytes: &[u8]) -> std::result::Result<Records, String> {
    if bytes.len() < EMPTY_RECORD_LENGTH_V1 {
        return Err(format!(
            "{} bytes, shorter than the smallest version 1 record ({EMPTY_RECORD_LENGTH_V1})",
            bytes.len()
        ));
    }
    let (covered, stored) = bytes.split_at(bytes.len() - CHECKSUM_LENGTH);
    if checksum(covered) != stored {
        return Err(format!(
            "version 1 record: checksum mismatch over {} bytes (torn or damaged write)",
            covered.len()
        ));
    }
    let mut reader = Reader(&covered[MAGIC_V1.len()..]);
    let body_length = reader.u32("body length")? as usize;
    if body_length != reader.0.len() {
        return Err(format!(
            "version 1 record: body length {body_length}, but {} bytes follow",
            reader.0.len()
        ));
    }
    decode_body(reader.0)
}

fn decode_body(body: &[u8]) -> std::result::Result<Records, String> {
    let mut reader = Reader(body);
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

/// The record of the valid slot with the higher generation.
#[cfg(test)]
fn pick_slot(bytes: &[u8]) -> std::result::Result<(u64, Records), String> {
    pick_slot_noting(bytes).map(|(picked, _)| picked)
}

/// [`pick_slot`], and what was wrong with the other slot, if anything.
fn pick_slot_noting(bytes: &[u8]) -> std::result::Result<((u64, Records), Option<String>), String> {
    let slot_bytes = bytes.len() / 2;
    if !bytes.len().is_multiple_of(2)
        || slot_bytes < SLOT_BYTES_MIN
        || !slot_bytes.is_power_of_two()
    {
        return Err(format!(
            "{} bytes, not two slots (a slot is a power of two of at least {SLOT_BYTES_MIN} bytes)",
            bytes.len()
        ));
    }
    let (a, b) = bytes.split_at(slot_bytes);
    match (decode_slot(a), decode_slot(b)) {
        (Ok(a), Ok(b)) if a.0 == b.0 && a.1 != b.1 => Err(format!(
            "both slots have generation {} but different entries",
            a.0
        )),
        (Ok(a), Ok(b)) => Ok((if b.0 > a.0 { b } else { a }, None)),
        (Ok(a), Err(b)) => Ok((
            a,
            Some(format!(
                "slot B was unreadable ({b}); the record is slot A's"
            )),
        )),
        (Err(a), Ok(b)) => Ok((
            b,
            Some(format!(
                "slot A was unreadable ({a}); the record is slot B's"
            )),
        )),
        (Err(a), Err(b)) => Err(format!("both slots are unreadable: A: {a}; B: {b}")),
    }
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

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }
}

/// The file safety store; see the [module docs](self).
#[derive(Debug)]
pub struct FileSafetyStore {
    path: PathBuf,
    temporary: PathBuf,
    /// `<file>.lock`, exclusively locked while this store lives.
    _lock: File,
    /// The open record file and what the next write needs; held across the
    /// syncs, so writers go one at a time. Readers never take it.
    writer: Mutex<Writer>,
    /// What the file holds, replaced only after a write is durable.
    records: RwLock<Records>,
    /// Set when [`open`](FileSafetyStore::open) found one slot unreadable.
    damaged_slot: Option<String>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    /// The size of each of the two slots.
    slot_bytes: usize,
    /// The generation of the last write attempted, durable or not: the
    /// next one must be higher than anything either slot may hold.
    generation: u64,
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
        FileSafetyStore::replace(path, lock, 1, Records::new())
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
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found());
            }
            Err(error) => return Err(Error::io("opening", path)(error)),
        };
        // Read at most one byte past the bound, so an oversized file is
        // reported without reading all of it.
        let mut bytes = Vec::new();
        (&mut file)
            .take(2 * SLOT_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("reading", path))?;
        let corrupt = |detail| Error::SafetyRecordCorrupt {
            path: path.to_path_buf(),
            detail,
        };
        if bytes.len() > 2 * SLOT_BYTES_MAX {
            return Err(corrupt(format!(
                "larger than the maximum of two {SLOT_BYTES_MAX}-byte slots"
            )));
        }
        if bytes.starts_with(&MAGIC_V1) {
            // Written before slots: rewritten as slots once, by rename.
            let records = decode_v1(&bytes).map_err(corrupt)?;
            drop(file);
            return FileSafetyStore::replace(path, lock, 1, records);
        }
        let ((generation, records), damaged_slot) = pick_slot_noting(&bytes).map_err(corrupt)?;
        Ok(FileSafetyStore {
            path: path.to_path_buf(),
            temporary: with_suffix(path, ".tmp"),
            _lock: lock,
            writer: Mutex::new(Writer {
                file,
                slot_bytes: bytes.len() / 2,
                generation,
            }),
            records: RwLock::new(records),
            damaged_slot,
        })
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was wrong with one slot when the store was opened, if anything:
    /// a write cut short by a crash, or damage on disk. The record was read
    /// from the other slot, and the next write rewrites both. Worth a
    /// warning: after a clean stop it means the disk damaged the file.
    pub fn damaged_slot(&self) -> Option<&str> {
        self.damaged_slot.as_deref()
    }

    /// Writes a new file of two slots holding `records` at `generation`,
    /// by rename, and opens it.
    fn replace(
        path: &Path,
        lock: File,
        generation: u64,
        records: Records,
    ) -> Result<FileSafetyStore> {
        let temporary = with_suffix(path, ".tmp");
        let slot = encode_slot(generation, &records)?;
        let (file, slot_bytes) = write_slots_by_rename(path, &temporary, &slot)?;
        Ok(FileSafetyStore {
            path: path.to_path_buf(),
            temporary,
            _lock: lock,
            writer: Mutex::new(Writer {
                file,
                slot_bytes,
                generation,
            }),
            records: RwLock::new(records),
            damaged_slot: None,
        })
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A writer that panicked mid-write left the file as any crash
        // would; the next write still goes to A then B, with a higher
        // generation.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_records(&self) -> RwLockReadGuard<'_, Records> {
        // Replaced whole after a durable write, so never half-updated.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_records(&self) -> RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes a file of two copies of `slot`, each padded to the slot size
/// that holds it, to `temporary`; fsyncs it, renames it over `path`,
/// fsyncs the directory, and returns it open with its slot size.
fn write_slots_by_rename(path: &Path, temporary: &Path, slot: &[u8]) -> Result<(File, usize)> {
    let slot_bytes = slot.len().next_power_of_two().max(SLOT_BYTES_MIN);
    let mut contents = vec![0; 2 * slot_bytes];
    contents[..slot.len()].copy_from_slice(slot);
    contents[slot_bytes..slot_bytes + slot.len()].copy_from_slice(slot);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temporary)
        .map_err(Error::io("creating", temporary))?;
    file.write_all(&contents)
        .map_err(Error::io("writing", temporary))?;
    file.sync_all().map_err(Error::io("syncing", temporary))?;
    std::fs::rename(temporary, path).map_err(Error::io("renaming the new record onto", path))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(Error::io("syncing the directory", directory))?;
    Ok((file, slot_bytes))
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
    /// Writes the whole record, with the changes applied, over slot A and
    /// then slot B; returns once both are durable. On an error the store
    /// keeps serving the old entries, and the caller must treat the write
    /// as not done (not send what depended on it); the file then holds the
    /// old record or the new.
    fn write_safety(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let mut writer = self.lock_writer();
        let mut records = self.read_records().clone();
        apply_changes(&mut records, changes);
        let generation = writer.generation.checked_add(1).ok_or(Error::SafetyLimit {
            what: "generation",
            size: usize::MAX,
            max: usize::MAX,
        })?;
        let slot = encode_slot(generation, &records)?;
        // Taken before the attempt: a failed write may have reached a slot.
        writer.generation = generation;
        if slot.len() > writer.slot_bytes {
            let (file, slot_bytes) = write_slots_by_rename(&self.path, &self.temporary, &slot)?;
            writer.file = file;
            writer.slot_bytes = slot_bytes;
        } else {
            for offset in [0, writer.slot_bytes] {
                writer
                    .file
                    .write_all_at(&slot, offset as u64)
                    .map_err(Error::io("writing", &self.path))?;
                writer
                    .file
                    .sync_data()
                    .map_err(Error::io("syncing", &self.path))?;
            }
        }
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
        encode_slot(0, &next)?;
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
        let bytes = encode_slot(7, &records).expect("encode");
        assert_eq!(decode_slot(&bytes).expect("decode"), (7, records.clone()));
        assert_eq!(encode_slot(7, &records.clone()).expect("again"), bytes);
        let empty = encode_slot(1, &Records::new()).expect("empty");
        assert_eq!(empty.len(), EMPTY_RECORD_LENGTH);
        assert_eq!(decode_slot(&empty).expect("decode"), (1, Records::new()));
        // What follows a record in its slot (padding, or the tail of an
        // older, longer record) is not part of it.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xAB; 100]);
        assert_eq!(decode_slot(&padded).expect("padded"), (7, records));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let bytes = encode_slot(3, &sample()).expect("encode");
        for length in 0..bytes.len() {
            assert!(
                decode_slot(&bytes[..length]).is_err(),
                "truncated to {length}"
            );
        }
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            assert!(decode_slot(&damaged).is_err(), "flipped byte {index}");
        }
    }

    /// A file of two slots of `slot_bytes`, holding `a` and `b`.
    fn file_of(slot_bytes: usize, a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut file = vec![0; 2 * slot_bytes];
        file[..a.len()].copy_from_slice(a);
        file[slot_bytes..slot_bytes + b.len()].copy_from_slice(b);
        file
    }

    #[test]
    fn the_higher_valid_generation_wins_and_a_torn_slot_loses() {
        let old = encode_slot(4, &Records::new()).expect("old");
        let new = encode_slot(5, &sample()).expect("new");
        let mut torn = new.clone();
        torn.truncate(new.len() / 2);
        let slot = SLOT_BYTES_MIN;
        // Crash between the two writes: A is new, B old.
        assert_eq!(pick_slot(&file_of(slot, &new, &old)), Ok((5, sample())));
        // Crash while A is written: B has the last durable record.
        assert_eq!(
            pick_slot(&file_of(slot, &torn, &old)),
            Ok((4, Records::new()))
        );
        // Crash while B is written, or B damaged later: A has it.
        assert_eq!(pick_slot(&file_of(slot, &new, &torn)), Ok((5, sample())));
        assert_eq!(pick_slot(&file_of(slot, &new, &new)), Ok((5, sample())));
        // Both unreadable: corrupt, with both reasons.
        let error = pick_slot(&file_of(slot, &torn, &[0; 64])).expect_err("both bad");
        assert!(error.contains("A: checksum mismatch"), "{error}");
        assert!(error.contains("B: wrong magic"), "{error}");
        // One generation, two contents: no write makes this.
        let other = encode_slot(5, &Records::new()).expect("other");
        let error = pick_slot(&file_of(slot, &new, &other)).expect_err("conflict");
        assert!(
            error.contains("generation 5 but different entries"),
            "{error}"
        );
        // Not two slots.
        let mut odd = file_of(slot, &new, &new);
        odd.pop();
        assert!(pick_slot(&odd).expect_err("odd").contains("not two slots"));
    }

    #[test]
    fn a_version_1_file_is_read_and_rewritten_as_slots() {
        // Format version 1 as it was written: magic, body length, body,
        // checksum, nothing after it.
        let body = encode_body(&sample()).expect("body");
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v1.extend_from_slice(&body);
        let sum = checksum(&v1);
        v1.extend_from_slice(&sum);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("safety");
        std::fs::write(&path, &v1).expect("write v1");
        let store = FileSafetyStore::open(&path).expect("open v1");
        assert_eq!(
            store.safety(b"last_vote").expect("get"),
            Some(b"round 7".to_vec())
        );
        drop(store);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 2 * SLOT_BYTES_MIN);
        assert_eq!(pick_slot(&bytes), Ok((1, sample())));
        // A damaged version 1 file is corrupt, as before.
        let mut damaged = v1.clone();
        damaged[20] ^= 1;
        std::fs::write(&path, &damaged).expect("write damaged");
        let error = FileSafetyStore::open(&path).expect_err("damaged v1");
        assert!(
            error
                .to_string()
                .contains("version 1 record: checksum mismatch"),
            "{error}"
        );
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
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        let error = decode_slot(&bytes).expect_err("duplicate keys");
        assert!(error.contains("strictly ascending"), "{error}");
    }

    #[test]
    fn bounds_are_enforced_on_encode() {
        let mut records = Records::new();
        records.insert(vec![0; SAFETY_KEY_BYTES_MAX + 1], vec![]);
        assert!(matches!(
            encode_slot(1, &records),
            Err(Error::SafetyLimit {
                what: "key length in bytes",
                ..
            })
        ));
        let records: Records = (0..=SAFETY_ENTRIES_MAX)
            .map(|index| ((index as u32).to_be_bytes().to_vec(), vec![]))
            .collect();
        assert!(matches!(
            encode_slot(1, &records),
            Err(Error::SafetyLimit {
                what: "entries",
                ..
            })
        ));
        let mut records = Records::new();
        records.insert(b"big".to_vec(), vec![0; SAFETY_RECORD_BYTES_MAX]);
        assert!(matches!(
            encode_slot(1, &records),
            Err(Error::SafetyLimit {
                what: "record size in bytes",
                ..
            })
        ));
    }
}
