#!/usr/bin/env bash
# The load generator on an optimised build: 4 validators as 4 real
# yuchain-node processes, 100,000 wallets funded at genesis, payments signed
# in advance and offered at a fixed rate through every validator's gateway.
# Extra arguments go to `yuchain bench` (see `--help`): --rate, --duration,
# --wallets, --sweep, --json, --chart, --dir.
#
#   bash scripts/bench.sh --rate 10000 --duration 300 --chart bench.svg
#   bash scripts/bench.sh --sweep --rate 2000 --sweep-step 2000 --duration 30
#
# Release builds live beside the debug ones in the target directory (the
# first compiles RocksDB's C++ at full optimisation: 15+ minutes on two
# cores).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
echo "bench: building (cargo build --release -p yuchain-node -p yuchain-cli)..." >&2
cargo build --release -p yuchain-node -p yuchain-cli
exec "$target_dir/release/yuchain" bench "$@"
