#!/usr/bin/env bash
# Create .venv and install wafer into it (editable). Usage: scripts/setup.sh [--test]
# llama-cpp-python builds llama.cpp from source the first time (~8 min on 2 cores); pip caches the wheel.
# --test also installs the test extras (SDKs, LangChain, LiteLLM, the Agents SDK, Playwright) and, when it
# is missing, Debian's chromium package, which the playground's browser tests drive.
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
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the playground's browser tests" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing and apt-get is not available: tests/test_playground.py needs it" >&2
  fi
fi
