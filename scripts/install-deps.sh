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
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

"$PYTHON" -m pip install --quiet --upgrade pip
"$PYTHON" -m pip install --quiet -e ".[dev]"
