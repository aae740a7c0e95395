#!/usr/bin/env bash
# Refreshes requirements/dev.lock, the exact versions the checks and CI install.
# pyproject.toml keeps the ranges a user's install resolves within; the lock pins the
# development and test environment so a new machine gets the versions CI last passed
# with, whatever the registries serve that day. Run it, then `make test`, then commit
# the lock with the figures. pip-tools runs from its own virtualenv under /tmp.
set -euo pipefail
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
tools=$(mktemp -d /tmp/autopack-lock-XXXX)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools"
"$tools/bin/pip" install --quiet "pip-tools>=7.4,<8"
# autopack itself is the project, not a dependency: listed as unsafe, so left out.
"$tools/bin/pip-compile" --quiet --extra dev --strip-extras --no-header \
  --annotation-style line --unsafe-package autopack --no-emit-index-url --no-emit-find-links \
  --output-file requirements/dev.lock pyproject.toml
