#!/usr/bin/env python3
"""Mirror a repository's ledgers into the ``sot_entries`` table.

The seed-compatible entry point for the sync that ``autopack tidy`` and ``autopack memory
index`` already run: it calls the same function (``autopack.ledger.cli.echo_sync``),
prints the same counts and exits with the same codes (2 bad configuration, 3 the
database). Usage: ``python scripts/tidy/sot_db_sync.py [--repo DIR]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import typer

from autopack.ledger.cli import echo_sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository")
    args = parser.parse_args(argv)
    try:
        echo_sync(args.repo)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
