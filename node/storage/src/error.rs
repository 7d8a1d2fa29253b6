//! The one error type of the storage crate.

use yuchain_proto::Hash32;

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

    /// A corruption error with the given detail.
    pub(crate) fn corruption(detail: impl Into<String>) -> Error {
        Error::Corruption {
            detail: detail.into(),
        }
    }
}
