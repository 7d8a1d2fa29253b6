#!/usr/bin/env bash
# The gRPC API's checks: `buf lint` (buf's STANDARD rules, proto/buf.yaml)
# and `buf breaking` of the working tree's .proto files against the previous
# commit's (FILE rules: no field, message, RPC or enum value removed,
# renumbered or retyped). buf comes from the npm registry
# (@bufbuild/buf, pinned), installed once into $HOME/.cache/yuchain-buf.
#
#   bash scripts/buf-check.sh            # against HEAD~1 (what CI runs)
#   bash scripts/buf-check.sh main       # against another git ref
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.75.0
prefix="$HOME/.cache/yuchain-buf"
buf="$prefix/node_modules/.bin/buf"
if [[ ! -x "$buf" ]] || [[ "$("$buf" --version)" != "$version" ]]; then
  command -v npm >/dev/null || { echo "buf-check: npm is needed to install buf" >&2; exit 1; }
  echo "buf-check: installing @bufbuild/buf@$version into $prefix"
  mkdir -p "$prefix"
  npm install --silent --prefix "$prefix" "@bufbuild/buf@$version" >/dev/null
fi

echo "buf-check: buf lint"
(cd proto && "$buf" lint)

against="${1:-HEAD~1}"
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
  echo "buf-check: no commit $against to compare with (a shallow clone?); buf breaking skipped"
  exit 0
fi
# Before proto/buf.yaml existed the files sat at the root of proto/proto.
if git cat-file -e "$against:proto/buf.yaml" 2>/dev/null; then
  subdir=proto
else
  subdir=proto/proto
fi
echo "buf-check: buf breaking against $against"
"$buf" breaking proto --against ".git#ref=$against,subdir=$subdir"
echo "buf-check: the API is lint-clean and compatible with $against"
