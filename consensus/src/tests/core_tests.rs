//! Step-level tests of the core.
