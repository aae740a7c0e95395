"""What an edit is once parsed, whatever format it came in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["modify", "snippet", "write", "create", "delete", "rename"]


class EditParseError(ValueError):
    """Edit text that cannot be read as any (or the requested) format; CLI exit code 2."""


@dataclass(frozen=True)
class Hunk:
    """One change inside a file: lines to find and the lines that take their place.

    Lines keep the terminator the edit text gave them (``\\n``, ``\\r\\n`` or none for a
    last line marked ``\\ No newline at end of file``); matching ignores terminators,
    and writing takes them from the file unless the edit mixes endings on purpose.
    """

    search: tuple[str, ...]
    replace: tuple[str, ...]
    hint: int | None = None
    """1-based line of the first search line in the original file (unified diffs)."""
    follows: bool = False
    """Cut from the previous hunk at an elision: it lies after it, gap size unknown."""


@dataclass(frozen=True)
class FileEdit:
    """One operation on one file. ``kind`` decides which fields matter.

    - ``modify``: apply ``hunks`` in order.
    - ``snippet``: replace the exact text ``old`` with ``new`` (exactly one occurrence).
    - ``write``: the file's whole new ``content``; creates the file when missing.
    - ``create``: like ``write`` but the file must not exist yet.
    - ``delete``: remove the file; when ``content`` is given it must match first.
    - ``rename``: move ``path`` to ``new_path``, then apply ``hunks`` to it.
    """

    kind: Kind
    path: str
    hunks: tuple[Hunk, ...] = ()
    content: str | None = None
    old: str = ""
    new: str = ""
    new_path: str | None = None
    mode: int | None = None
    """Permission bits the edit asks for (a diff's ``new file mode 100755``), else kept."""


@dataclass(frozen=True)
class EditSet:
    """Everything one edit text asks for; applied wholly or not at all."""

    files: tuple[FileEdit, ...]
    format: str
