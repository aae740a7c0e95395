"""The seal on a worktree's link to git, checked after every sandboxed command.

A sandboxed command may write anywhere in the worktree, the ``.git`` file included:
pointed at a git directory of the command's making, it would hand the next git
command outside the sandbox a configuration (``core.fsmonitor``, hooks) to run. Our
own git never reads that file (:func:`autopack.workspace.git.locate`); the seal makes
the attempt visible all the same, so the phase fails with the reason instead of
landing. It covers the ``.git`` file (a regular file naming the worktree's listed
folder under ``.git/worktrees/``) and the entries of that folder.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from autopack.workspace import git


class WorktreeTampered(RuntimeError):
    """The worktree's link to git is not what the repository records."""


@dataclass(frozen=True)
class Seal:
    """What the link looked like before a command: the ``.git`` file's bytes and the
    identity (type, inode, size, mtime) of every entry of the worktree's git folder."""

    worktree: Path
    admin: Path
    pointer: bytes
    entries: tuple[tuple[str, int, int, int, int], ...]


def take(worktree: Path) -> Seal:
    """Seal the worktree's link as the repository records it; raise when it is already
    not what git wrote."""
    admin = git.admin_dir(worktree)
    if admin is None:
        raise WorktreeTampered(f"{worktree} is no worktree its repository lists")
    pointer = _pointer_bytes(worktree)
    named = (pointer or b"").decode(errors="replace").strip().removeprefix("gitdir:").strip()
    if pointer is None or os.path.realpath(worktree / named) != os.path.realpath(admin):
        raise WorktreeTampered(f"{worktree}/.git does not name {admin}")
    return Seal(worktree, admin, pointer, _entries(admin))


def broken(seal: Seal) -> str | None:
    """How the link differs from ``seal`` now, or ``None`` when it is intact."""
    pointer = _pointer_bytes(seal.worktree)
    if pointer != seal.pointer:
        return "the worktree's .git file was changed, replaced or removed"
    if git.admin_dir(seal.worktree) != seal.admin:
        return f"the repository no longer lists the worktree at {seal.admin}"
    if _entries(seal.admin) != seal.entries:
        return f"the worktree's git folder {seal.admin} changed"
    return None


def restore(seal: Seal) -> None:
    """Put the ``.git`` file back as sealed, whatever now stands in its place (a
    symbolic link is removed, never written through)."""
    pointer = seal.worktree / ".git"
    if pointer.is_dir() and not pointer.is_symlink():
        shutil.rmtree(pointer)
    else:
        pointer.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(pointer, flags, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(seal.pointer)


def _pointer_bytes(worktree: Path) -> bytes | None:
    """The ``.git`` file's bytes; ``None`` when it is missing or not a regular file."""
    try:
        fd = os.open(worktree / ".git", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(4096)


def _entries(admin: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    try:
        listed = sorted(os.scandir(admin), key=lambda entry: entry.name)
    except OSError:
        return ()
    found = []
    for entry in listed:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        found.append((entry.name, info.st_mode, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(found)
