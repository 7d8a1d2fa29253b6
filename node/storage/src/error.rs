//! The one error type of the storage crate.

use std::path::PathBuf;

use yuchain_proto::Hash32;

use crate::home::ASSUME_NEVER_VOTED_FLAG;

/// What can go wrong when reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A commit's height is not the one after the head (0 for an empty
    /// store). Nothing of the commit was written.
    #[error("commit at height {got} rejected: the next height is {expected}")]
    HeightMismatch {
        /// The only height the store accepts next.
        expected: u64,
        /// The height of the rejected commit.
        got: u64,
    },

    /// A commit's block hash is already indexed at an earlier height. Nothing
    /// of the commit was written.
    #[error(
        "commit at height {height} rejected: block hash {block_hash} is already stored at height {existing_height}"
    )]
    DuplicateBlockHash {
        /// The height of the rejected commit.
        height: u64,
        /// The hash that is already indexed.
        block_hash: Hash32,
        /// The height the hash is indexed at.
        existing_height: u64,
    },

    /// The database breaks one of the store's invariants, for example a head
    /// whose block is missing, or a value of the wrong length. The node must
    /// not run on it; an operator restores it from a snapshot or resyncs.
    #[error("storage corruption: {detail}")]
    Corruption {
        /// What is inconsistent, with the values found.
        detail: String,
    },

    /// The database was written by a different storage schema version.
    #[error("storage schema version {found} is not the supported version {supported}")]
    SchemaVersion {
        /// The version recorded in the database.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A column family the store needs is not open.
    #[error("column family {name} is missing")]
    MissingColumnFamily {
        /// The column family's name.
        name: &'static str,
    },

    /// RocksDB reported an error.
    #[error("rocksdb error while {operation}: {source}")]
    Rocks {
        /// What the store was doing.
        operation: &'static str,
        /// The error RocksDB returned.
        source: rocksdb::Error,
    },

    /// An `open` found nothing to open. Opening never creates a store, so a
    /// mistyped or lost path is reported instead of becoming a fresh, empty
    /// one.
    #[error(
        "no {what} at {path}: opening never creates one; create it explicitly for a new node, \
         or restore it from backup",
        path = .path.display()
    )]
    NotFound {
        /// What was looked for ("block database", "safety record").
        what: &'static str,
        /// Where.
        path: PathBuf,
    },

    /// A `create` found something already at the path; it was left as is.
    #[error("{what} at {path} already exists: creating never overwrites; open it instead",
        path = .path.display())]
    AlreadyExists {
        /// What was to be created.
        what: &'static str,
        /// Where.
        path: PathBuf,
    },

    /// A validator's home holds a block database but no consensus safety
    /// record. Starting would forget what it voted, so it could sign a second,
    /// conflicting vote in a round it already voted in.
    #[error(
        "validator home {home} has a block database (head {head}) but no consensus safety record \
         at {path}: starting without it could make this validator vote twice in one round. \
         Restore {path} from this validator's backup. Only if you are sure this validator key \
         never voted (on this or any other machine), start once with {flag} \
         to create an empty record",
        home = .home.display(),
        path = .path.display(),
        flag = ASSUME_NEVER_VOTED_FLAG
    )]
    SafetyRecordMissing {
        /// The node home.
        home: PathBuf,
        /// Where the safety record belongs.
        path: PathBuf,
        /// The block database's head, described ("height 7", "none").
        head: String,
    },

    /// The safety record file is torn, truncated or damaged. It is never
    /// treated as absent: an empty record would let the validator vote again
    /// in rounds it already voted in.
    #[error(
        "consensus safety record {path} is corrupt ({detail}); it is not treated as absent. \
         Stop the validator and restore the file from its backup",
        path = .path.display()
    )]
    SafetyRecordCorrupt {
        /// The record file.
        path: PathBuf,
        /// What is wrong, with the values found.
        detail: String,
    },

    /// Another safety store, in this process or another, has the record
    /// open. Two writers of one record could each let out a vote the other
    /// does not know about.
    #[error(
        "consensus safety record {path} is in use by another process or handle (its lock file \
         {path}.lock is held): stop the other validator process on this home first",
        path = .path.display()
    )]
    SafetyRecordInUse {
        /// The record file.
        path: PathBuf,
    },

    /// A safety write would pass one of the store's bounds; nothing was
    /// written.
    #[error("safety data rejected: {what} is {size}, the maximum is {max}")]
    SafetyLimit {
        /// Which bound ("key length in bytes", "entries", "record size in bytes").
        what: &'static str,
        /// The size the write would have.
        size: usize,
        /// The bound.
        max: usize,
    },

    /// A file system operation failed.
    #[error("i/o error while {operation} {path}: {source}", path = .path.display())]
    Io {
        /// What the store was doing.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error the operating system returned.
        source: std::io::Error,
    },

    /// A `for_each_*` visitor stopped the iteration with this reason; the
    /// store itself is fine.
    #[error("visitor stopped the iteration: {reason}")]
    VisitorStopped {
        /// Why the visitor stopped.
        reason: String,
    },
}

/// The result type of the storage crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a RocksDB error with what the store was doing, for `map_err`.
    pub(crate) fn rocks(operation: &'static str) -> impl FnOnce(rocksdb::Error) -> Error {
        move |source| Error::Rocks { operation, source }
    }

    /// Wraps an I/O error with what the store was doing and where, for
    /// `map_err`.
    pub(crate) fn io(
        operation: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            operation,
            path,
            source,
        }
    }

    /// A corruption error with the given detail.
    pub(crate) fn corruption(detail: impl Into<String>) -> Error {
        Error::Corruption {
            detail: detail.into(),
        }
    }
}
