#!/usr/bin/env bash
# Create .venv and install wafer into it (editable). Usage: scripts/setup.sh [--test]
# llama-cpp-python builds llama.cpp from source the first time (~8 min on 2 cores); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".${extras}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import llama_cpp, wafer" || { echo "setup failed: wafer or llama_cpp does not import" >&2; exit 1; }
