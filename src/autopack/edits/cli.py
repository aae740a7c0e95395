"""``autopack edits apply``: apply an edit file to a directory, fail-closed.

Exit codes (a stable contract): 0 applied (or already applied), 1 refused (nothing
written), 2 bad input (unreadable or unparseable edit file, bad format, bad root).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from autopack.config import ConfigError, load_settings
from autopack.edits.apply import apply_edits
from autopack.edits.model import EditParseError
from autopack.edits.parse import FORMATS, parse_edits
from autopack.edits.policy import PathPolicy

edits_app = typer.Typer(help="Apply edits exactly or not at all.", no_args_is_help=True)


@edits_app.callback()
def _group() -> None:
    """Apply edits (search/replace, unified diff, whole file, replace) fail-closed."""


@edits_app.command("apply")
def apply_command(
    edit_file: Annotated[str, typer.Argument(help="File with the edit text; '-' reads stdin.")],
    root: Annotated[Path, typer.Option("--root", help="Directory the paths are relative to.")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto, search-replace, unified, whole or replace.")
    ] = "auto",
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Write-scope glob; repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Apply EDIT_FILE under --root; protected globs come from the root's settings."""
    text = _read_edit_file(edit_file)
    if fmt not in FORMATS:
        _bad_input(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not root.is_dir():
        _bad_input(f"--root {root} is not a directory")
    try:
        protected = tuple(load_settings(root).protected_paths)
        edits = parse_edits(text, fmt)
    except (ConfigError, EditParseError) as exc:
        _bad_input(str(exc))
    policy = PathPolicy(root, tuple(scope or ("**",)), protected)
    report = apply_edits(edits, policy)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_text())
    raise typer.Exit(0 if report.applied else 1)


def _read_edit_file(edit_file: str) -> str:
    if edit_file == "-":
        return sys.stdin.read()
    try:
        return Path(edit_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _bad_input(f"cannot read {edit_file}: {exc}")


def _bad_input(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
