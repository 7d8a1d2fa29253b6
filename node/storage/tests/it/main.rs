//! The integration tests of yuchain-storage, in one binary:
//!
//! - [`suite`]: one suite run against both [`MemStore`](yuchain_storage::MemStore)
//!   and [`RocksStore`](yuchain_storage::RocksStore);
//! - [`crash`]: reopening RocksStore after a clean close and after `kill -9`
//!   of a child process in the middle of a stream of commits;
//! - [`twin`]: both stores fed the same random commits agree on every read;
//! - [`safety`]: one suite for both safety stores, and damaged records;
//! - [`home`]: node homes (create vs open, the validator's safety check).

mod crash;
mod fixtures;
mod home;
mod safety;
mod suite;
mod twin;
