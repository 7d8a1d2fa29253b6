#!/usr/bin/env bash
# The soak run: 30 minutes at half the sustained rate (SOAK_RATE, 5,000
# payments/s by default), sampling each node's memory and disk
# every 30 s. The report says whether memory stayed flat, how many bytes of
# disk each payment cost and whether finality drifted (first against last
# minutes). Extra arguments go to `yuchain bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/bench.sh --rate "${SOAK_RATE:-5000}" --duration 1800 --sample-every 30 "$@"
