#!/usr/bin/env bash
# The local devnet: 4 validators (the city treasury and three banks) as 4
# real yuchain-node processes on loopback, wallets registered and funded
# through the gateways, and a steady stream of payments with live progress,
# until Ctrl-C or --duration; at the end every node must hold the same state
# root. Extra arguments go to `yuchain devnet` (see `--help`: --rate,
# --wallets, --duration, --dir, --keep, --json).
#
# It builds the whole workspace with all targets, exactly as the tests do, so
# the two commands share one build (the first build compiles RocksDB's C++:
# about twelve minutes on two cores; cargo shows its progress).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
echo "devnet: building (cargo build --workspace --all-targets)..."
cargo build --workspace --all-targets
exec "$target_dir/debug/yuchain" devnet "$@"
