#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests (including
# the consensus simulator's CI seed sweep) under nextest, then doctests, which
# nextest does not run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
