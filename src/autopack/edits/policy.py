"""The path policy: every write (and every read) of the edits engine passes through here.

A path from an edit is untrusted text written by a model. It is resolved inside the
root, and refused with a stable reason code when it could touch something a phase
must not: a path outside the tree, git's own data, Autopack's run state, a protected
file, or a file outside the phase's write scope.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from autopack.globs import path_matches

REASONS = (
    "invalid",
    "absolute",
    "traversal",
    "git_dir",
    "autopack_dir",
    "symlink_escape",
    "protected",
    "out_of_scope",
    "read_only",
)


class PathRefused(Exception):
    """A path the policy does not allow; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, path: str, reason: str, detail: str) -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}: {detail}")


def normalize_rel(rel_path: str) -> str:
    """Clean a model-written path: backslashes are separators, ``./`` and ``//`` vanish.

    Backslashes count as separators so ``src\\..\\..\\x`` cannot slip past the
    traversal check on a system where ``\\`` is an ordinary character.
    """
    text = rel_path.strip().replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    prefix = "/" if text.startswith("/") else ""
    return prefix + "/".join(parts)


@dataclass(frozen=True)
class PathPolicy:
    """Where edits may read and write, relative to ``root`` (a worktree)."""

    root: Path
    scope: tuple[str, ...] = ("**",)
    """Write-scope globs, matched like plan scopes (:func:`autopack.plan.path_matches`)."""
    protected: tuple[str, ...] = ()
    """Globs refused even when in scope (lock files, CI config, ...)."""
    declared: tuple[str, ...] = ()
    """Protected globs the phase's plan declares (``scope.protected``): writable, and the
    gate then asks a person to approve."""
    read_only: tuple[str, ...] = ()
    """The phase's read-only globs: refused even when in scope."""

    def resolve_write(self, rel_path: str) -> Path:
        """The absolute path to write for ``rel_path``, or raise :class:`PathRefused`."""
        clean, real_rel = self._resolve(rel_path, writing=True)
        for name in {clean, real_rel}:
            hit = next((glob for glob in self.protected if path_matches(name, glob)), None)
            if hit is not None and not any(path_matches(name, d) for d in self.declared):
                raise PathRefused(rel_path, "protected", f"{name!r} matches protected {hit!r}")
        for name in {clean, real_rel}:
            if not any(path_matches(name, glob) for glob in self.scope):
                scope = ", ".join(self.scope)
                raise PathRefused(rel_path, "out_of_scope", f"{name!r} is outside scope {scope}")
            hit = next((glob for glob in self.read_only if path_matches(name, glob)), None)
            if hit is not None:
                raise PathRefused(rel_path, "read_only", f"{name!r} matches read_only {hit!r}")
        return Path(self.real_root, real_rel)

    def resolve_read(self, rel_path: str) -> Path:
        """The absolute path to read: inside the root and not in ``.git/``; scope not needed."""
        return Path(self.real_root, self._resolve(rel_path, writing=False)[1])

    @cached_property
    def real_root(self) -> str:
        """The root with symlinks resolved (once: resolving costs a syscall per part)."""
        return os.path.realpath(self.root)

    def _resolve(self, rel_path: str, *, writing: bool) -> tuple[str, str]:
        """The cleaned path and the real path relative to the root, or raise."""
        if not rel_path.strip() or "\0" in rel_path:
            raise PathRefused(rel_path, "invalid", "empty path or NUL character")
        clean = normalize_rel(rel_path)
        if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
            raise PathRefused(rel_path, "absolute", "paths are relative to the worktree root")
        parts = PurePosixPath(clean).parts
        if not parts:
            raise PathRefused(rel_path, "invalid", "the path names the root itself")
        if ".." in parts:
            raise PathRefused(rel_path, "traversal", "'..' would leave the worktree")
        if ".git" in parts:
            raise PathRefused(rel_path, "git_dir", "git's own data is never edited")
        if writing and parts[0] == ".autopack":
            raise PathRefused(rel_path, "autopack_dir", ".autopack/ holds the run's own state")
        real = os.path.realpath(os.path.join(self.real_root, clean))
        real_rel = os.path.relpath(real, self.real_root)
        if real_rel == "." or real_rel == ".." or real_rel.startswith("../"):
            code = "invalid" if real_rel == "." else "symlink_escape"
            raise PathRefused(rel_path, code, f"resolves to {real}, not a file inside the root")
        real_parts = real_rel.split("/")
        if ".git" in real_parts or (writing and real_parts[0] == ".autopack"):
            reason = "git_dir" if ".git" in real_parts else "autopack_dir"
            raise PathRefused(rel_path, reason, f"a symlink leads into {real_parts[0]}/")
        return clean, real_rel
