#!/usr/bin/env bash
# The network fault scenario: 4 validators, each in its own Linux network
# namespace (yuns-n0..yuns-n3) joined by veth pairs to a bridge in a hub
# namespace (yuns-hub), where the driver (`yuchain scenario netns`) runs with
# a delaying TCP proxy per pair of nodes. Phases: (1) 20 ms one-way delay and
# 1% loss on every link; (2) one validator cut off (iptables DROP), then
# healed; (3) two cut off: commits must stop on every node without a fork,
# then resume after the heal with every node agreeing. Per phase it reports
# payments committed, committed/s, finality p50/p99, each node's height and
# whether the nodes agree; it exits non-zero if any check fails.
#
#   sudo bash scripts/netns-scenario.sh [--short] [--release] [driver args]
#
# --short: short phases (CI; well under 3 minutes once built). --release:
# build and run release binaries. Other arguments go to the driver (see
# `yuchain scenario netns --help`: --delay-ms, --loss, --rate, --wallets,
# --baseline-secs, --cut-secs, --heal-secs, --json, --keep, --node-binary).
# YUCHAIN_NODE_BINARY / YUCHAIN_CLI_BINARY use prebuilt binaries instead of
# building. Needs root (namespaces, iptables); installs iptables if missing.
# Everything it makes lives in namespaces named yuns-*, removed at the end
# (also on failure or Ctrl-C) and at the start (left over from a crash); the
# root namespace's interfaces, routes and firewall are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=yuns
hub="$prefix-hub"
nodes=4
subnet=10.77.0
short=0
profile=debug
driver_args=()
for arg in "$@"; do
  case "$arg" in
    --short) short=1; driver_args+=(--short) ;;
    --release) profile=release ;;
    *) driver_args+=("$arg") ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "netns-scenario: needs root (network namespaces and iptables)" >&2
  exit 2
fi
command -v ip >/dev/null || { echo "netns-scenario: needs ip (iproute2)" >&2; exit 2; }
if ! command -v iptables >/dev/null; then
  echo "netns-scenario: installing iptables"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iptables >/dev/null
fi

# The binaries: prebuilt if given, else built (the same units as the tests'
# debug build, so CI reuses it).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yuchain-ci-target}"
node_binary="${YUCHAIN_NODE_BINARY:-}"
cli_binary="${YUCHAIN_CLI_BINARY:-}"
if [ -z "$node_binary" ] || [ -z "$cli_binary" ]; then
  if [ "$profile" = release ]; then
    echo "netns-scenario: building (cargo build --release -p yuchain-node -p yuchain-cli)..."
    cargo build --release -p yuchain-node -p yuchain-cli
  else
    echo "netns-scenario: building (cargo build --workspace --all-targets)..."
    cargo build --workspace --all-targets
  fi
  node_binary="${node_binary:-$CARGO_TARGET_DIR/$profile/yuchain-node}"
  cli_binary="${cli_binary:-$CARGO_TARGET_DIR/$profile/yuchain}"
fi
for binary in "$node_binary" "$cli_binary"; do
  [ -x "$binary" ] || { echo "netns-scenario: no executable $binary" >&2; exit 2; }
done

# An iptables that works inside a namespace (the nft variant, else legacy):
# both a DROP and the statistic match the loss uses.
pick_iptables() {
  local candidate
  ip netns add "$prefix-probe"
  for candidate in iptables iptables-nft iptables-legacy; do
    command -v "$candidate" >/dev/null || continue
    if ip netns exec "$prefix-probe" "$candidate" -w -A OUTPUT -p tcp --dport 9 -j DROP 2>/dev/null &&
      ip netns exec "$prefix-probe" "$candidate" -w -A OUTPUT -p tcp --dport 9 \
        -m statistic --mode random --probability 0.01 -j DROP 2>/dev/null; then
      ip netns exec "$prefix-probe" "$candidate" -w -F OUTPUT
      ip netns del "$prefix-probe"
      echo "$candidate"
      return 0
    fi
  done
  ip netns del "$prefix-probe"
  return 1
}

# Removes every namespace of ours (and with them their veths and rules).
remove_namespaces() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

driver_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
    # The driver stops its nodes (they also stop when it dies).
    kill -TERM "$driver_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$driver_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
  remove_namespaces
  if ip netns list 2>/dev/null | grep -q "^$prefix-"; then
    echo "netns-scenario: could not remove every $prefix-* namespace" >&2
    status=1
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remove_namespaces
iptables_program=$(pick_iptables) || {
  echo "netns-scenario: no iptables works inside a network namespace" >&2
  exit 2
}

# The hub: a bridge at $subnet.1; node i at $subnet.(10+i) on eth0, its veth
# peer on the bridge. Created from inside the namespaces (ip -n), so nothing
# appears in the root namespace even for a moment.
ip netns add "$hub"
ip -n "$hub" link set lo up
ip -n "$hub" link add yuns-br type bridge
ip -n "$hub" addr add "$subnet.1/24" dev yuns-br
ip -n "$hub" link set yuns-br up
namespaces=()
hosts=()
for i in $(seq 0 $((nodes - 1))); do
  ns="$prefix-n$i"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$hub" link add "yuns-v$i" type veth peer name eth0 netns "$ns"
  ip -n "$hub" link set "yuns-v$i" master yuns-br up
  ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
  namespaces+=("$ns")
  hosts+=("$subnet.$((10 + i))")
done

echo "netns-scenario: namespaces $hub, ${namespaces[*]} ($iptables_program); running the driver"
join() { local IFS=,; echo "$*"; }
ip netns exec "$hub" "$cli_binary" scenario netns \
  --node-namespaces "$(join "${namespaces[@]}")" \
  --node-hosts "$(join "${hosts[@]}")" \
  --hub-host "$subnet.1" \
  --iptables "$iptables_program" \
  --node-binary "$node_binary" \
  "${driver_args[@]}" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
[ "$short" = 1 ] && echo "netns-scenario: short run done (status $status)"
exit "$status"
