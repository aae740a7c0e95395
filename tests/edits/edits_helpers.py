"""Helpers shared by the edits tests (a module name unique across the test tree)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autopack.edits import EditReport

Apply = Callable[..., EditReport]


def sr(path: str, search: str, replace: str) -> str:
    """A search/replace block as the scripted Builder writes it."""
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes, to prove nothing changed."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
