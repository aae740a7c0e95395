"""The ``autopack`` command. Exit codes: 0 success, 1 run failed, 2 bad input,
3 environment, 130 cancelled."""

from __future__ import annotations

from autopack.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
