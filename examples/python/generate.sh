#!/usr/bin/env bash
# Generates the Python protobuf and gRPC modules of yuchain's .proto files
# into examples/python/gen/ (git-ignored). Run with the Python that has
# requirements.txt installed (or set PYTHON).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
include="$root/proto/proto"
out="$here/gen"
rm -rf "$out"
mkdir -p "$out"
"$python" -m grpc_tools.protoc \
  --proto_path="$include" \
  --python_out="$out" \
  --grpc_python_out="$out" \
  "$include/yuchain/v1/ledger.proto" \
  "$include/yuchain/v1/gateway.proto" \
  "$include/yuchain/v1/node.proto"
echo "generated Python modules in $out/yuchain/v1"
