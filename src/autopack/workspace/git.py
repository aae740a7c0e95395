"""Git plumbing for runs: branches, worktrees, commits with trailers, notes, tree hashes.

Everything shells out to the real ``git``; commits use a fixed identity so that a run
works on machines with no git configuration. Ref updates are compare-and-swap
(``update-ref NEW OLD``): a phase lands only on the head it was checked against.

A worktree is written by sandboxed commands, and git outside the sandbox must not
trust anything they could have written. So every command here names its git
directory and work tree explicitly (:func:`locate`): a worktree's git directory comes
from the repository's own list of worktrees, never from the worktree's ``.git`` file.
And no configuration may make git run a command for us: fsmonitor, hooks, filter
drivers, external diff and textconv drivers are switched off on the command line,
which outranks every configuration file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autopack.configfile import STATE_DIR

IDENTITY = ("-c", "user.name=Autopack", "-c", "user.email=autopack@localhost")
NOTES_REF = "refs/notes/autopack"
SAFE_CONFIG = (
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "submodule.recurse=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "tag.gpgSign=false",
)
"""Settings no configuration file can override: no fsmonitor command, no hooks (a
``core.hooksPath`` may name a folder of the worktree), no recursion into nested
repositories (their configuration is the sandbox's), no ``ext::`` remote commands, no
signing program (``commit-tree`` would run ``gpg.program``)."""
INHERITED_LOCATION = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
"""Where-to-look variables a parent process (a git hook running Autopack) may have set:
dropped, the location is always our own."""
CREATES_REPOSITORY = frozenset({"init", "clone"})
"""Commands that make a repository rather than work in one: they get no location."""
WORKTREES_DIR = f"{STATE_DIR}/worktrees"
"""Where a repository's phase worktrees live (``Runtime.worktree``): the folders there
are written by sandboxed commands."""


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""


@dataclass(frozen=True)
class Location:
    """Where a git command works, named explicitly (``GIT_DIR``, ``GIT_WORK_TREE``)."""

    git_dir: Path
    work_tree: Path | None
    """``None`` for a bare repository."""
    linked: bool = False
    """A worktree Autopack added: ``git_dir`` is its folder under ``.git/worktrees/``."""


_LOCATIONS: dict[Path, Location] = {}
_NEUTRAL_DRIVERS: dict[tuple[Path, tuple[object, ...]], tuple[str, ...]] = {}


def run_git(
    cwd: Path,
    *args: str,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``git args`` for ``cwd`` at its trusted location, with nothing configured able
    to run a command; the caller reads the exit code.

    Bytes are decoded without newline translation: a diff of a CRLF file keeps its
    ``\r\n`` and applies again.
    """
    argv, full_env = command_line(cwd, args)
    proc = subprocess.run(
        argv,
        cwd=cwd,
        input=None if input_text is None else input_text.encode("utf-8"),
        capture_output=True,
        env={**full_env, **(env or {})},
        check=False,
    )
    stdout = proc.stdout.decode("utf-8")
    stderr = proc.stderr.decode("utf-8", errors="replace")
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def command_line(cwd: Path, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``git args`` run for ``cwd``: for a caller
    that streams git's output itself."""
    env = _base_env()
    guard: tuple[str, ...] = ()
    if not args or args[0] not in CREATES_REPOSITORY:
        where = locate(cwd)
        if where is not None:
            env["GIT_DIR"] = str(where.git_dir)
            if where.work_tree is not None:
                env["GIT_WORK_TREE"] = str(where.work_tree)
            guard = _neutral_drivers(where)
    return ["git", *SAFE_CONFIG, *guard, *IDENTITY, *args], env


def read_blob(repo: Path, spec: str) -> bytes | None:
    """The bytes of the blob ``spec`` (``TREE:path``), or ``None`` when there is none."""
    argv, env = command_line(repo, ("cat-file", "blob", spec))
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def git(
    cwd: Path,
    *args: str,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> str:
    """Run ``git args`` in ``cwd`` and return its stdout (stripped of the final newline)."""
    proc = run_git(cwd, *args, input_text=input_text, env=env)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.rstrip("\n")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_LOCATION}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    return env


def locate(path: Path) -> Location | None:
    """The trusted location of the repository or worktree at ``path``; ``None`` outside
    any repository.

    A folder inside a repository (the nearest folder above ``path`` with a ``.git``) is
    a worktree when that repository lists it, by the ``gitdir`` files under
    ``.git/worktrees/`` that git wrote when Autopack added it. An unlisted folder under
    the repository's ``.autopack/worktrees/`` is refused: its ``.git`` file is the
    sandbox's to write. Anything else is found as git finds it (the user's own
    checkout, Autopack's clones).
    """
    key = Path(os.path.abspath(path))
    found = _LOCATIONS.get(key)
    if found is None:
        found = _as_listed_worktree(key) or _discover(key)
        if found is not None:
            _LOCATIONS[key] = found
    return found


def _as_listed_worktree(path: Path) -> Location | None:
    enclosing_dir = next((p for p in path.parents if (p / ".git").exists()), None)
    enclosing = locate(enclosing_dir) if enclosing_dir is not None else None
    if enclosing is None:
        return None
    admin = _listed_admin(_common_of(enclosing), path)
    if admin is not None:
        return Location(admin, path, linked=True)
    if enclosing.linked or (
        enclosing.work_tree is not None and path.is_relative_to(enclosing.work_tree / WORKTREES_DIR)
    ):
        raise GitError(f"{path} is no worktree git lists: its .git file is not trusted")
    return None


def _common_of(where: Location) -> Path:
    commondir = where.git_dir / "commondir"
    if not commondir.is_file():
        return where.git_dir
    return Path(os.path.normpath(where.git_dir / commondir.read_text().strip()))


def _listed_admin(common: Path, worktree: Path) -> Path | None:
    """The folder under ``.git/worktrees/`` whose ``gitdir`` names ``worktree``."""
    wanted = os.path.join(os.path.realpath(worktree), ".git")
    try:
        admins = list((common / "worktrees").iterdir())
    except OSError:
        return None
    for admin in admins:
        try:
            named = (admin / "gitdir").read_text().strip()
        except OSError:
            continue
        if os.path.normpath(os.path.join(admin, named)) == wanted:
            return admin
    return None


def _discover(path: Path) -> Location | None:
    """Ask git where the repository at ``path`` is (its own discovery, no command run)."""
    if not path.is_dir():
        return None
    proc = subprocess.run(
        ["git", *SAFE_CONFIG, "rev-parse", "--absolute-git-dir", "--is-bare-repository"],
        cwd=path,
        capture_output=True,
        text=True,
        env=_base_env(),
        check=False,
    )
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        return None
    git_dir = Path(lines[0])
    if lines[1] == "true":
        return Location(git_dir, None)
    top = subprocess.run(
        ["git", *SAFE_CONFIG, "rev-parse", "--show-toplevel"],
        cwd=path,
        capture_output=True,
        text=True,
        env=_base_env(),
        check=False,
    )
    if top.returncode != 0:
        return None
    work_tree = Path(top.stdout.strip())
    if git_dir.is_relative_to(work_tree) and git_dir != work_tree / ".git":
        raise GitError(f"{work_tree}/.git leads to {git_dir}, inside the work tree: not trusted")
    return Location(git_dir, work_tree)


def _neutral_drivers(where: Location) -> tuple[str, ...]:
    """``-c`` settings that empty every configured filter driver: a driver's command
    may name a script of the worktree, and attributes (``.gitattributes``, written in
    the worktree) choose which driver a file gets. Content is stored as it is.
    Remembered until a configuration file changes."""
    key = (where.git_dir, _config_stamp(where))
    found = _NEUTRAL_DRIVERS.get(key)
    if found is None:
        proc = subprocess.run(
            ["git", *SAFE_CONFIG, "config", "--name-only", "--get-regexp", r"^filter\."],
            cwd=where.work_tree or where.git_dir,
            capture_output=True,
            text=True,
            env={**_base_env(), "GIT_DIR": str(where.git_dir)},
            check=False,
        )
        drivers = sorted({name.rsplit(".", 1)[0] for name in proc.stdout.split()})
        found = tuple(
            setting
            for driver in drivers
            for key in ("clean=", "smudge=", "process=", "required=false")
            for setting in ("-c", f"{driver}.{key}")
        )
        _NEUTRAL_DRIVERS[key] = found
    return found


def _config_stamp(where: Location) -> tuple[object, ...]:
    """Identity of every configuration file git reads for ``where`` (files it includes
    aside): the system, global, repository and worktree ones."""
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [
        os.environ.get("GIT_CONFIG_SYSTEM", "/etc/gitconfig"),
        os.environ.get("GIT_CONFIG_GLOBAL", home / ".gitconfig"),
        xdg / "git" / "config",
        _common_of(where) / "config",
        where.git_dir / "config.worktree",
    ]
    stamp: list[object] = []
    for name in files:
        try:
            info = os.stat(name)
        except OSError:
            stamp.append(None)
            continue
        stamp.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(stamp)


def _remember_worktree(repo: Path, path: Path) -> None:
    """Record where the worktree just added (or moved) at ``path`` keeps its git data:
    the folder the repository lists for it, wherever ``path`` lies."""
    where = locate(repo)
    admin = _listed_admin(_common_of(where), path) if where is not None else None
    if admin is None:
        raise GitError(f"git lists no worktree at {path}")
    key = Path(os.path.abspath(path))
    _LOCATIONS[key] = Location(admin, key, linked=True)


def forget_location(path: Path) -> None:
    """Drop what :func:`locate` remembers of ``path`` (a worktree added, moved, removed)."""
    _LOCATIONS.pop(Path(os.path.abspath(path)), None)


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
        forget_location(path)
        git(repo, "worktree", "add", "--detach", "--force", "--force", str(path), commit)
        _remember_worktree(repo, path)


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree; a half-removed one (crash, manual rm) is cleaned up too."""
    with worktree_admin(repo):
        forget_location(path)
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
    """A linked worktree's own folder under ``.git/worktrees/`` (its index, its HEAD), as
    the repository lists it; ``None`` for a folder that is no listed worktree."""
    try:
        where = locate(worktree)
    except GitError:
        return None
    return where.git_dir if where is not None and where.linked else None


def is_worktree(worktree: Path) -> bool:
    """Whether ``worktree`` is a worktree its repository lists (whatever its ``.git`` says)."""
    return worktree.is_dir() and admin_dir(worktree) is not None


def move_worktree(repo: Path, source: Path, target: Path) -> None:
    if target.exists():
        remove_worktree(repo, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with worktree_admin(repo):
        forget_location(source)
        forget_location(target)
        git(repo, "worktree", "move", str(source), str(target))
        _remember_worktree(repo, target)


def reset_worktree(worktree: Path, commit: str) -> None:
    """Make the (detached) worktree exactly ``commit``: changes and untracked files go,
    nested repositories too (``-ff``). Only files that differ are rewritten, but both
    commands look at every file."""
    git(worktree, "reset", "-q", "--hard", commit)
    git(worktree, "clean", "-ffdxq")


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
    proc = run_git(
        worktree,
        "--literal-pathspecs",
        "add",
        "-A",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        input_text="\0".join(paths),
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


PLAIN_DIFF = ("--binary", "--no-color", "--no-textconv", "--no-ext-diff")
"""A diff of the stored bytes, never a configured driver's rendering of them."""


def diff_against(worktree: Path, base: str) -> str:
    """Binary-safe diff of the worktree's content against ``base`` (stages everything)."""
    stage_all(worktree)
    return git(worktree, "diff", "--cached", *PLAIN_DIFF, base) + "\n"


def diff_between(repo: Path, base: str, tree: str) -> str:
    """What :func:`diff_against` gives for a worktree whose staged tree is ``tree``; it
    reads two trees instead of the whole index."""
    return git(repo, "diff", *PLAIN_DIFF, base, tree) + "\n"


def changed_between(repo: Path, base: str, tree: str) -> list[str]:
    """Paths that differ between ``base`` and ``tree`` (a rename is two paths)."""
    out = git(repo, "diff-tree", "-r", "--name-only", "--no-renames", "-z", base, tree)
    return [name for name in out.split("\0") if name]


def changed_entries(repo: Path, base: str, tree: str) -> list[tuple[str, str, str]]:
    """What ``tree`` holds at each path it adds or changes against ``base``: the path,
    its mode (``100644``, ``120000`` for a symbolic link, ``160000`` for a nested
    repository) and its object id."""
    out = git(repo, "diff-tree", "-r", "--no-renames", "-z", base, tree)
    fields = out.split("\0")
    entries = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        _, new_mode, _, new_id, status = meta.lstrip(":").split(" ")
        if status != "D":
            entries.append((path, new_mode, new_id))
    return entries


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
    proc = run_git(
        repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", head, candidate
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
