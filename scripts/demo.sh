#!/usr/bin/env bash
# The ledger demo: a day of city payments through the ledger and RocksDB.
# Extra arguments go to `yuchain-node demo` (see `--help`).
#
# It builds the whole workspace with all targets, exactly as the tests do, so
# the two commands share one build (cargo picks dependency features per
# selection, and a narrower build would compile RocksDB a second time).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --workspace --all-targets
"$target_dir/debug/yuchain-node" demo "$@"
