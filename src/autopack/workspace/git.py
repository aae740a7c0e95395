"""Git plumbing for runs: branches, worktrees, commits with trailers, notes, tree hashes.

Everything shells out to the real ``git``; commits use a fixed identity so that a run
works on machines with no git configuration. Ref updates are compare-and-swap
(``update-ref NEW OLD``): a phase lands only on the head it was checked against.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

IDENTITY = ("-c", "user.name=Autopack", "-c", "user.email=autopack@localhost")
NOTES_REF = "refs/notes/autopack"


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""


def git(
    cwd: Path,
    *args: str,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> str:
    """Run ``git args`` in ``cwd`` and return its stdout (stripped of the final newline).

    Bytes are decoded without newline translation: a diff of a CRLF file keeps its
    ``\r\n`` and applies again.
    """
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    proc = subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=cwd,
        input=None if input_text is None else input_text.encode("utf-8"),
        capture_output=True,
        env=full_env,
        check=False,
    )
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {stderr}")
    return proc.stdout.decode("utf-8").rstrip("\n")


def is_repo(path: Path) -> bool:
    return git(path, "rev-parse", "--git-dir", check=False) != "" if path.is_dir() else False


def toplevel(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel"))


def rev_parse(repo: Path, ref: str) -> str | None:
    out = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return out or None


def current_branch(repo: Path) -> str:
    return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)


def create_branch(repo: Path, branch: str, at: str) -> None:
    """Create ``branch`` at commit ``at`` unless it exists (then it must already be there)."""
    existing = rev_parse(repo, f"refs/heads/{branch}")
    if existing is None:
        git(repo, "update-ref", f"refs/heads/{branch}", at, "0" * 40)


def move_branch(repo: Path, branch: str, new: str, old: str) -> None:
    """Compare-and-swap: move ``branch`` from ``old`` to ``new``; fail when it moved."""
    git(repo, "update-ref", f"refs/heads/{branch}", new, old)


def exclude_state_dir(repo: Path, name: str = ".autopack/") -> None:
    """Keep Autopack's state out of ``git status`` without touching tracked files."""
    info = Path(git(repo, "rev-parse", "--git-path", "info/exclude"))
    info = info if info.is_absolute() else repo / info
    info.parent.mkdir(parents=True, exist_ok=True)
    lines = info.read_text().splitlines() if info.exists() else []
    if name not in lines:
        info.write_text("\n".join([*lines, name]) + "\n")


@contextmanager
def worktree_admin(repo: Path) -> Iterator[None]:
    """Serialise changes to the repository's worktree list: concurrent ``git worktree``
    commands race on ``.git/worktrees/`` (threads and other executors alike)."""
    lock_path = common_dir(repo) / "autopack-worktrees.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_worktree(repo: Path, path: Path, commit: str) -> None:
    """A detached worktree at ``commit``; a leftover one at the same path is replaced."""
    if path.exists():
        remove_worktree(repo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with worktree_admin(repo):
        git(repo, "worktree", "add", "--detach", "--force", "--force", str(path), commit)


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree; a half-removed one (crash, manual rm) is cleaned up too."""
    with worktree_admin(repo):
        git(repo, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            git(repo, "worktree", "prune", check=False)


def index_stamp(worktree: Path) -> tuple[int, int, int] | None:
    """Identity of the worktree's index file (inode, size, mtime), or None without one.

    Git replaces the index with a new file whenever a command changes it, so an equal
    stamp says no git command (of any process) touched this worktree's index since.
    """
    admin = admin_dir(worktree)
    try:
        stat = (admin / "index").stat() if admin is not None else None
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat is not None else None


def admin_dir(worktree: Path) -> Path | None:
    """A linked worktree's own folder under ``.git/worktrees/`` (its index, its HEAD)."""
    pointer = worktree / ".git"
    if not pointer.is_file():
        return None
    admin = Path(pointer.read_text().removeprefix("gitdir:").strip())
    return admin if admin.is_absolute() else worktree / admin


def move_worktree(repo: Path, source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with worktree_admin(repo):
        git(repo, "worktree", "move", str(source), str(target))


def reset_worktree(worktree: Path, commit: str) -> None:
    """Make the (detached) worktree exactly ``commit``: changes and untracked files go.
    Only files that differ are rewritten, but both commands look at every file."""
    git(worktree, "reset", "-q", "--hard", commit)
    git(worktree, "clean", "-fdxq")


def stage_all(worktree: Path) -> None:
    git(worktree, "add", "-A")


_IGNORED_ONLY = "ignored by one of your .gitignore files"


def stage_paths(worktree: Path, paths: Sequence[str]) -> None:
    """Stage what changed at ``paths`` (written, created or deleted) as ``add -A`` would,
    looking at those paths only: the caller knows nothing else changed.

    Ignored files stay out, as with ``add -A`` (git names them and exits 1). A path git
    cannot take on its own (one behind a symbolic link) makes it stage everything.
    """
    if not paths:
        return
    proc = subprocess.run(
        [
            "git",
            "--literal-pathspecs",
            "add",
            "-A",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
        ],
        cwd=worktree,
        input="\0".join(paths),
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        check=False,
    )
    if proc.returncode == 0 or (proc.returncode == 1 and _IGNORED_ONLY in proc.stderr):
        return
    stage_all(worktree)


def tree_hash(worktree: Path, *, staged: bool = False) -> str:
    """Hash of the worktree's content (tracked and new files, ignored ones excluded);
    ``staged=True`` when :func:`stage_all` just ran."""
    if not staged:
        stage_all(worktree)
    return git(worktree, "write-tree")


_TREES: dict[str, str] = {}
"""Tree of each commit looked up or made here: a commit's tree never changes."""


def commit_tree(repo: Path, commit: str) -> str:
    tree = _TREES.get(commit)
    if tree is None:
        tree = git(repo, "rev-parse", f"{commit}^{{tree}}")
        if _is_object_id(commit):
            _TREES[commit] = tree
    return tree


def _is_object_id(name: str) -> bool:
    return len(name) == 40 and all(c in "0123456789abcdef" for c in name)


def diff_against(worktree: Path, base: str) -> str:
    """Binary-safe diff of the worktree's content against ``base`` (stages everything)."""
    stage_all(worktree)
    return git(worktree, "diff", "--cached", "--binary", "--no-color", base) + "\n"


def diff_between(repo: Path, base: str, tree: str) -> str:
    """What :func:`diff_against` gives for a worktree whose staged tree is ``tree``; it
    reads two trees instead of the whole index."""
    return git(repo, "diff", "--binary", "--no-color", base, tree) + "\n"


def changed_between(repo: Path, base: str, tree: str) -> list[str]:
    """Paths that differ between ``base`` and ``tree`` (a rename is two paths)."""
    out = git(repo, "diff-tree", "-r", "--name-only", "--no-renames", "-z", base, tree)
    return [name for name in out.split("\0") if name]


def apply_diff(worktree: Path, diff: str) -> None:
    if diff.strip():
        git(worktree, "apply", "--binary", "--whitespace=nowarn", "-", input_text=diff)


def commit_tree_object(repo: Path, tree: str, parent: str, message: str) -> str:
    """A commit of exactly ``tree`` on ``parent``: what was verified is what lands,
    whatever caches a test run left in the worktree."""
    sha = git(repo, "commit-tree", tree, "-p", parent, "-F", "-", input_text=message)
    _TREES[sha] = tree
    return sha


def merge_onto(repo: Path, base: str, tree: str, head: str) -> tuple[str | None, list[str]]:
    """Three-way merge of the change ``base -> tree`` onto ``head`` (which descends from
    ``base``): the merged tree, or ``None`` and the conflicting paths. Touches no worktree."""
    candidate = commit_tree_object(repo, tree, base, "autopack: change to merge")
    proc = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", head, candidate],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line]
    if proc.returncode == 0:
        return lines[0], []
    if proc.returncode == 1:
        return None, sorted(set(lines[1:]))
    raise GitError(f"git merge-tree failed in {repo}: {proc.stderr.strip()}")


def read_tree_into(worktree: Path, tree: str) -> None:
    """Make the worktree's files exactly ``tree`` (HEAD stays where it is)."""
    git(worktree, "read-tree", "-u", "--reset", tree)


def trailers(repo: Path, commit: str) -> dict[str, str]:
    out = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", commit)
    result: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result


def log_commits(repo: Path, base: str, head: str) -> list[str]:
    """Commits reachable from ``head`` but not ``base``, oldest first."""
    out = git(repo, "rev-list", "--reverse", "--first-parent", f"{base}..{head}")
    return [line for line in out.splitlines() if line]


def add_note(repo: Path, commit: str, text: str, ref: str = NOTES_REF) -> None:
    """Attach ``text`` to ``commit``; waits out (or clears a stale) lock on the notes ref,
    which every run of the repository shares."""
    for _ in range(40):
        try:
            git(repo, "notes", "--ref", ref, "add", "-f", "-F", "-", commit, input_text=text)
            return
        except GitError as exc:
            if ".lock" not in str(exc):
                raise
            remove_if_stale(common_dir(repo) / f"{ref}.lock")
            time.sleep(0.25)
    raise GitError(f"the notes ref {ref} stayed locked")


STALE_LOCK_S = 5.0
"""A git lock older than this was left by a killed process: git holds them for milliseconds."""


_COMMON_DIRS: dict[Path, Path] = {}


def common_dir(repo: Path) -> Path:
    """The repository's shared ``.git`` (remembered per path: every worktree command
    asks for it to take the worktree lock)."""
    found = _COMMON_DIRS.get(repo)
    if found is None:
        path = Path(git(repo, "rev-parse", "--git-common-dir"))
        found = path if path.is_absolute() else (repo / path).resolve()
        _COMMON_DIRS[repo] = found
    return found


def remove_if_stale(lock: Path, age_s: float = STALE_LOCK_S) -> bool:
    try:
        if time.time() - lock.stat().st_mtime > age_s:
            lock.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def clear_run_locks(repo: Path, branch: str, worktrees: Sequence[Path]) -> list[Path]:
    """Remove the lock files a killed executor left in what only its run uses: the run
    branch's ref and its worktrees' indexes. Call it while holding the run's lease."""
    root = common_dir(repo)
    locks = [root / "refs" / "heads" / f"{branch}.lock"]
    for worktree in worktrees:
        admin = admin_dir(worktree)
        if admin is not None:
            locks.append(admin / "index.lock")
    removed = [lock for lock in locks if lock.exists()]
    for lock in removed:
        lock.unlink(missing_ok=True)
    remove_if_stale(root / f"{NOTES_REF}.lock")
    return removed


def read_note(repo: Path, commit: str, ref: str = NOTES_REF) -> str | None:
    out = git(repo, "notes", "--ref", ref, "show", commit, check=False)
    return out or None


def ls_files(repo: Path, ref: str = "HEAD", paths: Sequence[str] = ()) -> list[str]:
    out = git(repo, "ls-tree", "-r", "--name-only", "-z", ref, "--", *paths)
    return [name for name in out.split("\0") if name]
