#!/usr/bin/env bash
# The Python wallet (examples/python) against a real local chain: proof that
# the gRPC API is language-neutral.
#
# It installs the example's requirements in a virtualenv (reused from
# $HOME/.cache/yuchain-pyenv while requirements.txt is unchanged), generates
# the Python protobuf code, runs the offline unit tests, starts a 4-validator
# devnet from already built binaries, and then: a new key made in Python is
# registered and funded by a bank with the Rust CLI; the Python wallet pays
# the bank back (signed and canonically encoded in Python), checks its
# balance proof itself against the genesis validators' keys, and refuses
# tampered answers; the Rust CLI and the Python wallet check each other's
# saved answers. The devnet it started is always stopped (by its PID).
#
# It builds nothing: the binaries come from $YUCHAIN_BIN_DIR, by default
# ${CARGO_TARGET_DIR:-$HOME/.cache/yuchain-ci-target}/debug.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
example="$root/examples/python"
bin_dir="${YUCHAIN_BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/yuchain-ci-target}/debug}"
cli="$bin_dir/yuchain"
node_binary="$bin_dir/yuchain-node"
started=$(date +%s)

say() {
  echo "python-wallet-test: $*"
  # The whole test is bounded: checked between steps, each step bounded too.
  (($(date +%s) - started < 290)) || fail "over the 290 s budget"
}
fail() {
  echo "python-wallet-test: FAILED: $*" >&2
  exit 1
}

for binary in "$cli" "$node_binary"; do
  [[ -x "$binary" ]] || fail "no $binary; build it first (cargo build -p yuchain-cli -p yuchain-node) or set YUCHAIN_BIN_DIR"
done
"$cli" wallet --help | grep -q "balance" ||
  fail "$cli has no \`wallet balance\`: it is older than the account-proof API"

# --- Python environment -----------------------------------------------------
env_dir="${YUCHAIN_PYENV:-$HOME/.cache/yuchain-pyenv}"
stamp="$(sha256sum "$example/requirements.txt" | cut -c1-16)"
if [[ ! -x "$env_dir/bin/python" || "$(cat "$env_dir/.requirements" 2>/dev/null)" != "$stamp" ]]; then
  say "installing the Python requirements into $env_dir"
  rm -rf "$env_dir"
  python3 -m venv "$env_dir" || fail "python3 -m venv failed (is python3-venv installed?)"
  "$env_dir/bin/pip" install --quiet -r "$example/requirements.txt" ||
    fail "pip install -r examples/python/requirements.txt failed"
  echo "$stamp" >"$env_dir/.requirements"
fi
python="$env_dir/bin/python"
PYTHON="$python" "$example/generate.sh" >/dev/null || fail "generating the Python protobuf code failed"
# Every step is bounded (a stuck node must not hang CI).
wallet() { timeout 90 "$python" "$example/wallet.py" "$@"; }
rust() { timeout 90 "$cli" "$@"; }

say "offline unit tests"
(cd "$example" && "$python" -m unittest -q test_wallet) || fail "the offline unit tests failed"

# --- The devnet ---------------------------------------------------------------
work="$(mktemp -d -t yuchain-pywallet-XXXXXX)"
devnet="$work/devnet"
devnet_pid=""
children=""
passed=0

stop_devnet() {
  if [[ -n "$devnet_pid" ]]; then
    if kill -0 "$devnet_pid" 2>/dev/null; then
      # The nodes are the devnet's children; they stop when it is gone
      # (they watch their parent), and are killed by PID if they linger.
      children="$(ps -o pid= --ppid "$devnet_pid" 2>/dev/null | tr -s ' \n' ' ' || true)"
      kill "$devnet_pid" 2>/dev/null || true
    fi
    wait "$devnet_pid" 2>/dev/null || true
    devnet_pid=""
  fi
  local pid deadline=$(($(date +%s) + 20))
  for pid in $children; do
    while kill -0 "$pid" 2>/dev/null && (($(date +%s) < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "python-wallet-test: node $pid did not stop; killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  children=""
}

on_exit() {
  local status=$?
  stop_devnet
  if ((passed)); then
    rm -rf "$work"
  else
    echo "python-wallet-test: kept $work for inspection (devnet log: $work/devnet.log)" >&2
    if [[ -f "$work/devnet.log" ]]; then
      echo "--- last lines of the devnet's output ---" >&2
      tail -n 20 "$work/devnet.log" >&2 || true
    fi
  fi
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

say "starting a devnet in $devnet (binaries from $bin_dir)"
"$cli" devnet --dir "$devnet" --rate 5 --wallets 10 --duration 240 --keep \
  --node-binary "$node_binary" >"$work/devnet.log" 2>&1 &
devnet_pid=$!

profile="$devnet/bank-0.toml"
deadline=$(($(date +%s) + 120))
until [[ -s "$profile" ]] && grep -q genesis "$profile"; do
  kill -0 "$devnet_pid" 2>/dev/null || fail "the devnet exited before it wrote $profile"
  (($(date +%s) < deadline)) || fail "no $profile after 120 s"
  sleep 1
done
genesis="$devnet/genesis.toml"
node_url="$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["node"])' "$profile")"
say "the chain is up after $(($(date +%s) - started)) s; node 0's gateway is $node_url"

field() { # field NAME: the value after "NAME:" in stdin's first such line
  sed -n "s/^$1:[[:space:]]*//p" | head -n 1
}

# --- Keys and addresses agree between the two implementations ----------------
key="$work/alice.pem"
made="$(wallet new-key --out "$key")" || fail "wallet.py new-key failed"
echo "$made"
public_key="$(field "public key" <<<"$made")"
address="$(field address <<<"$made")"
[[ ${#public_key} -eq 64 && "$address" == yu1* ]] || fail "new-key printed no public key or address"
rust_address="$(rust keys show "$key" | field address)"
[[ "$rust_address" == "$address" ]] ||
  fail "the Rust CLI reads the Python key as $rust_address, Python says $address"
bank="$(rust keys show "$devnet/keys/bank-0.pem" | field address)"
python_bank="$(wallet address --key "$devnet/keys/bank-0.pem" | field address)"
[[ "$python_bank" == "$bank" ]] ||
  fail "Python derives the bank's address as $python_bank, the Rust CLI as $bank"
say "addresses agree with the Rust CLI (the bank is $bank)"

# --- The bank opens and funds the wallet (Rust CLI) ---------------------------
rust operator register --profile "$profile" --public-key "$public_key" --tier 2 ||
  fail "the bank could not register the wallet"
rust wallet pay --profile "$profile" --to "$address" --amount 50.00 ||
  fail "the bank could not fund the wallet"

# --- The Python wallet pays and checks its balance ----------------------------
# Signed with the certified sequence: the wallet was registered and funded a
# moment ago, so this waits for the certified state to catch up first.
paid="$(wallet pay --node "$node_url" --key "$key" --genesis "$genesis" --to "$bank" --amount 12.34 --memo "from Python")" ||
  fail "wallet.py pay failed"
echo "$paid"
height="$(field height <<<"$paid")"
fee="$(field fee <<<"$paid")"
[[ "$(field result <<<"$paid")" == OK && -n "$height" && -n "$fee" ]] || fail "wallet.py pay printed no OK receipt"
grep -q "^sequence 0, certified at height" <<<"$paid" || fail "wallet.py pay did not sign with the certified sequence"

tx="$(field "tx id" <<<"$paid")"
history="$(wallet history --node "$node_url" --key "$key" --limit 10)" || fail "wallet.py history failed"
echo "$history"
grep -q "$tx transfer 12.34 to $bank OK" <<<"$history" || fail "the history does not show the payment $tx"
grep -q "transfer 50.00 from $bank OK" <<<"$history" || fail "the history does not show the funding"

if out="$(wallet pay --node "$node_url" --key "$key" --to "$bank" --amount 1.00 --chain-id not-this-chain 2>&1)"; then
  fail "a payment signed for another chain was accepted: $out"
fi
grep -q "INVALID_ARGUMENT.*\[yuchain/WRONG_CHAIN\]" <<<"$out" ||
  fail "a payment for another chain was refused, but not as INVALID_ARGUMENT [yuchain/WRONG_CHAIN]: $out"
say "a payment signed for another chain: $(grep '^error:' <<<"$out")"

answer="$work/answer.bin"
checked="$(wallet balance --node "$node_url" --key "$key" --genesis "$genesis" --min-height "$height" --save "$answer")" ||
  fail "wallet.py balance failed"
echo "$checked"
balance="$(field balance <<<"$checked" | cut -d' ' -f1)"
expected="$("$python" -c 'import sys
def fen(t):
    w, _, f = t.partition(".")
    return int(w) * 100 + int(f.ljust(2, "0") or 0)
left = fen("50.00") - fen("12.34") - fen(sys.argv[1])
print(f"{left // 100}.{left % 100:02d}")' "$fee")"
[[ "$balance" == "$expected" ]] ||
  fail "the verified balance is $balance yuan, expected 50.00 - 12.34 - fee $fee = $expected"
grep -q "^verified by [0-9]* of 4 validators at height" <<<"$checked" || fail "no verification line"
say "verified balance $balance yuan = 50.00 - 12.34 - fee $fee"

# --- Tampered answers are refused ----------------------------------------------
for how in balance hide-account height sibling root signature signer payload; do
  if out="$(wallet balance --node "$node_url" --key "$key" --genesis "$genesis" --min-height "$height" --tamper "$how" 2>&1)"; then
    fail "a tampered answer ($how) was accepted: $out"
  fi
  grep -q "does not check out" <<<"$out" || fail "tampering ($how) failed for another reason: $out"
  say "tampered ($how): refused: $(grep "does not check out" <<<"$out" | sed 's/^error: the account answer does not check out //')"
done
other_genesis="$work/other-genesis.toml"
"$python" - "$genesis" "$other_genesis" <<'EOF'
import sys, tomllib, os
doc = tomllib.load(open(sys.argv[1], "rb"))
with open(sys.argv[2], "w") as out:
    for _ in doc["validators"]:
        out.write(f'[[validators]]\nconsensus_public_key = "{os.urandom(32).hex()}"\n')
EOF
if wallet verify-proof "$answer" --address "$address" --genesis "$other_genesis" >/dev/null 2>&1; then
  fail "an answer was accepted against another chain's validators"
fi
say "another chain's validators: refused"

# --- Each implementation checks the other's saved answer ----------------------
rust wallet verify-proof "$answer" --address "$address" --genesis "$genesis" >/dev/null ||
  fail "the Rust CLI refuses the answer the Python wallet accepted"
rust_answer="$work/rust-answer.bin"
rust wallet balance "$address" --profile "$profile" --min-height "$height" --save "$rust_answer" >/dev/null ||
  fail "the Rust CLI's wallet balance failed"
wallet verify-proof "$rust_answer" --address "$address" --genesis "$genesis" >/dev/null ||
  fail "the Python wallet refuses the answer the Rust CLI accepted"
say "the Rust CLI and the Python wallet accept each other's saved answers"

stop_devnet
passed=1
say "PASSED in $(($(date +%s) - started)) s"
