"""Scope patterns: which relative paths a glob covers. Plain functions, no models, so
the edits engine and the CLI can use them without loading the plan schema."""

from __future__ import annotations

import fnmatch

__all__ = ["path_matches"]


def path_matches(path: str, pattern: str) -> bool:
    """Whether a relative path is covered by a scope pattern.

    ``*`` and ``?`` stay inside one path segment, ``**`` spans any number of segments,
    and a pattern naming a directory (``src/pkg`` or ``src/pkg/``) covers everything
    below it.
    """
    return _match_parts(_parts(path), _parts(pattern.rstrip("/")), prefix_ok=True)


def _parts(path: str) -> tuple[str, ...]:
    """Segments of a relative POSIX path, as PurePosixPath would give them, without its
    cost (this runs for every file of a repository against every scope pattern)."""
    return tuple(part for part in path.split("/") if part not in ("", "."))


def _match_parts(path: tuple[str, ...], pattern: tuple[str, ...], prefix_ok: bool) -> bool:
    if not pattern:
        return not path or prefix_ok
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(path[i:], rest, prefix_ok) for i in range(len(path) + 1))
    if not path or not fnmatch.fnmatchcase(path[0], head):
        return False
    return _match_parts(path[1:], rest, prefix_ok)
