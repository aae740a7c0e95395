"""Seed-compatible entry point: ``python -m autopack.autonomous_executor --run-id ID``.

Executes (or continues) a stored run of the repository in the current directory, or
of ``--repo``; the same as ``autopack resume``.
"""

from __future__ import annotations

import argparse
import sys

from autopack.cli.app import app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m autopack.autonomous_executor")
    parser.add_argument("--run-id", required=True, help="The stored run to execute.")
    parser.add_argument("--repo", default=".", help="The target git repository.")
    args = parser.parse_args(argv)
    app(["resume", args.run_id, "--repo", args.repo], standalone_mode=True)


if __name__ == "__main__":
    main(sys.argv[1:])
