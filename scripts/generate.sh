#!/usr/bin/env bash
# Generate every client from the contracts in proto/wasteml/v1 — the one command behind
# `make generate`. The outputs are committed; scripts/check_generated.sh fails on drift.
#
#   1. Python: grpcio-tools' protoc with the protobuf, gRPC and mypy-protobuf plugins into
#      clients/python/wasteml/v1 (modules `wasteml.v1.<name>_pb2`, `_pb2_grpc`, `.pyi` stubs).
#   2. TypeScript: buf + @bufbuild/protoc-gen-es (target ts) into clients/ts/src/gen, then
#      `tsc --noEmit` type-checks the generated code together with clients/ts/src and test.
#
# Usage: scripts/generate.sh   (from anywhere; it works in the repository root)
# Environment: PYTHON (interpreter with grpcio-tools and mypy-protobuf, default .venv/bin/python),
#              SKIP_TS=1 to generate the Python stubs only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
PYTHON="${PYTHON:-.venv/bin/python}"
PY_OUT="clients/python"
PY_PKG="${PY_OUT}/wasteml/v1"

# --- Python -----------------------------------------------------------------------------------
# The well-known types (google/protobuf/*.proto) ship inside grpc_tools.
WKT_INCLUDE="$("${PYTHON}" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
# mypy-protobuf's protoc plugins live in the interpreter's scripts folder, which need not be on PATH.
SCRIPTS_DIR="$("${PYTHON}" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
# Remove stale outputs so a deleted .proto leaves no module behind.
rm -f "${PY_PKG}"/*_pb2.py "${PY_PKG}"/*_pb2.pyi "${PY_PKG}"/*_pb2_grpc.py "${PY_PKG}"/*_pb2_grpc.pyi
mkdir -p "${PY_PKG}"
"${PYTHON}" -m grpc_tools.protoc \
  -I proto -I "${WKT_INCLUDE}" \
  --plugin=protoc-gen-mypy="${SCRIPTS_DIR}/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="${SCRIPTS_DIR}/protoc-gen-mypy_grpc" \
  --python_out="${PY_OUT}" --grpc_python_out="${PY_OUT}" \
  --mypy_out="${PY_OUT}" --mypy_grpc_out="${PY_OUT}" \
  proto/wasteml/v1/*.proto
cat > "${PY_PKG}/__init__.py" <<'PYEOF'
"""Generated protobuf and gRPC modules of the wasteml v1 API (package ``wasteml.v1``).

Do not edit: ``scripts/generate.sh`` (``make generate``) writes every file in this folder from
``proto/wasteml/v1/*.proto``; ``scripts/check_generated.sh`` fails when they drift.
"""
PYEOF
touch "${PY_PKG}/py.typed"
echo "generate: Python stubs in ${PY_PKG}"

# --- TypeScript -------------------------------------------------------------------------------
if [[ "${SKIP_TS:-0}" == "1" ]]; then
  echo "generate: TypeScript skipped (SKIP_TS=1)"
  exit 0
fi
cd clients/ts
if [[ ! -d node_modules ]]; then
  npm ci --no-audit --no-fund
fi
npm run --silent generate
npm run --silent typecheck
echo "generate: TypeScript client in clients/ts/src/gen (type-checked)"
