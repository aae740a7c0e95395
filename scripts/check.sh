#!/usr/bin/env bash
# Every check CI runs, in order, stopping at the first failure.
set -euo pipefail
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "ruff check";          ruff check src tests bench
step "ruff format --check"; ruff format --check src tests bench
step "mypy src";            mypy
step "pytest";              "$PYTHON" -m pytest -n auto -q
step "ledgers";             autopack tidy --check --repo .
step "benchmarks (smoke)"
for bench in bench/*.py; do
  "$PYTHON" "$bench" --quick
done
