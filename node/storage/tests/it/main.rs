//! The integration tests of yuchain-storage, in one binary:
//!
//! - [`suite`]: one suite run against both [`MemStore`](yuchain_storage::MemStore)
//!   and [`RocksStore`](yuchain_storage::RocksStore);
//! - [`crash`]: reopening RocksStore after a clean close and after `kill -9`
//!   of a child process in the middle of a stream of commits.

mod crash;
mod fixtures;
mod suite;
