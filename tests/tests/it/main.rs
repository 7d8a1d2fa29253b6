//! The simulator's test suite: sweeps over seeds, named scenarios, and
//! broken-rule builds that the checkers must catch.

mod scenarios;
mod sweep;
