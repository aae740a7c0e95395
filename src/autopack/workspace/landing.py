"""What may land on a run branch, held to the tree whatever wrote it.

The path policy guards the writes of the edits engine and the Builder's file tools;
a sandboxed command writes what it likes. So the change itself is checked, as git
stores it: a symbolic link must stay inside the worktree, a nested repository (a
gitlink) or anything under a ``.git`` never lands, and the worktree may hold no
special file (fifo, socket, device), which git could not store and a test could
block on.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from autopack.workspace import git

SYMLINK = "120000"
GITLINK = "160000"


def refusals(worktree: Path, base: str, tree: str) -> list[str]:
    """Why the change ``base -> tree`` of ``worktree`` may not land; empty when it may.

    ``worktree`` holds ``tree`` on disk, so a link is also followed as it would be.
    """
    problems = []
    for path, mode, blob in git.changed_entries(worktree, base, tree):
        if mode == GITLINK:
            problems.append(f"{path}: a nested git repository; changes to .git never land")
        elif any(part.lower() == ".git" for part in path.split("/")):
            problems.append(f"{path}: inside a .git folder; changes to .git never land")
        elif mode == SYMLINK:
            problem = _link_problem(worktree, path, git.read_blob(worktree, blob) or b"")
            if problem is not None:
                problems.append(f"{path}: {problem}")
    return problems


def _link_problem(worktree: Path, path: str, target_bytes: bytes) -> str | None:
    """Why the symbolic link at ``path`` pointing at ``target_bytes`` may not land."""
    target = os.fsdecode(target_bytes)
    if target.startswith("/"):
        return f"a symbolic link to the absolute path {target!r}"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if joined == ".." or joined.startswith("../"):
        return f"a symbolic link to {target!r}, which leaves the worktree"
    root = os.path.realpath(worktree)
    real = os.path.relpath(os.path.realpath(os.path.join(root, path)), root)
    if real == ".." or real.startswith("../"):
        return f"a symbolic link to {target!r}, which resolves outside the worktree"
    if any(part.lower() == ".git" for part in [*joined.split("/"), *real.split("/")]):
        return f"a symbolic link to {target!r}, into .git"
    return None


def special_files(worktree: Path) -> list[str]:
    """Paths in ``worktree`` that are neither files, folders nor symbolic links (``.git``
    entries are git's and not looked into)."""
    found: list[str] = []
    folders = [worktree]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name == ".git":
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    folders.append(Path(entry.path))
                elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                    found.append(Path(entry.path).relative_to(worktree).as_posix())
    return sorted(found)
