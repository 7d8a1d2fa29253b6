//! The `yuchain` command line's library half: the pieces the binary and its
//! tests share. Wallet, merchant, operator, issuer, audit and devnet commands
//! talk to nodes over gRPC; nothing here reaches into a node's internals.
