//! The `yuchain` command line's library half: the pieces the binary, its
//! tests and its benchmarks share.
//!
//! - [`persist`]: from what the ledger applied to what the store commits, and
//!   back (reloading a ledger from a store);
//! - [`demo`]: `yuchain demo`, a day of city payments.

pub mod demo;
pub mod persist;
