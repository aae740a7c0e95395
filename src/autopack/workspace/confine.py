"""What a sandboxed command sees and may use: the filesystem allow-list and the limits.

The sandbox's root is an empty tmpfs, made read-only once everything is in place; only
what is listed here appears in it. That is the system's programs and libraries, a few
files of ``/etc`` (``passwd``, ``group``, ``hosts`` and ``nsswitch.conf`` synthetic, so
no account or host of the machine shows), the interpreter Autopack runs in and the
active virtualenv wherever they live (``/tmp`` and ``~/.pyenv`` included: exactly those
trees, never the home folder above them), Autopack's own package, a private ``/tmp``,
``/dev`` and ``/proc``; then the worktree and the extra writable paths, read-write. No
tree that holds a home folder, the worktree's parent (other checkouts, the repository's
``.autopack/``) or a ``.autopack/`` folder is ever bound.

Limits: memory, file size and (in a user namespace) processes are set on bubblewrap's
child before it starts the command (``prlimit`` for the unsandboxed fallback). A process
whose real user is root outside is exempt from the process limit by the kernel whatever
its namespace, so a ``pids`` cgroup, where one is writable, caps the whole sandbox too.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import os
import resource
import shutil
import site
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from autopack.config import SandboxLimits
from autopack.workspace.seccomp import compile_filter

MB = 1024 * 1024
SANDBOX_UID = 1000
"""The user the command runs as inside its user namespace; the invoking user outside,
so the worktree's files (owned by the invoking user, root included) stay writable."""
HOSTNAME = "autopack-sandbox"
SECCOMP = "seccomp"
PACKAGE_DIR = Path(__file__).resolve().parent.parent

SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "ld.so.cache", "localtime", "timezone", "os-release", "lsb-release", "debian_version",
    "mime.types", "protocols", "services", "locale.alias", "locale.conf", "gai.conf",
    "magic", "matplotlibrc", "mtab",
)  # fmt: skip
"""What programs read from ``/etc``, copied (or the symlink recreated) into the sandbox's
``/etc``; never ``shadow``, ``sudoers``, ``ssh`` or the like."""
ETC_DIRS = ("ssl", "pki", "crypto-policies", "alternatives")
"""Folders of ``/etc`` bound read-only over the copy: large or often updated ones."""
ETC_SMALL_DIRS = ("fonts", "xml", "python3", f"python3.{sys.version_info.minor}")
"""Small folders of ``/etc``, copied with the files (each bind costs the start time)."""
HOME_ROOTS = ("/root", "/home")
PIDS_PARENTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
"""Where a pids cgroup can be made: cgroup v1's pids hierarchy, then the v2 root."""
_CGROUP_NAMES = itertools.count()


def synthetic_etc() -> dict[str, bytes]:
    """The account and name files the sandbox gets instead of the host's."""
    uid = SANDBOX_UID
    passwd = f"root:x:0:0:root:/root:/bin/sh\nautopack:x:{uid}:{uid}:sandbox:/tmp:/bin/sh\n"
    passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    group = f"root:x:0:\nautopack:x:{uid}:\nnogroup:x:65534:\n"
    hosts = f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost ip6-loopback\n"
    nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
    files = {"passwd": passwd, "group": group, "hosts": hosts, "nsswitch.conf": nsswitch}
    return {f"/etc/{name}": text.encode() for name, text in files.items()}


def bwrap_data() -> dict[str, bytes]:
    """What bubblewrap reads from a descriptor: the seccomp filter, when this
    architecture has one."""
    with contextlib.suppress(KeyError):
        return {SECCOMP: compile_filter()}
    return {}


_ETC_LOCK = threading.Lock()
_ETC_COPIES: dict[tuple[tuple[str, int, int], ...], Path] = {}


def _etc_key() -> tuple[tuple[str, int, int], ...]:
    key = []
    for name in (*ETC_FILES, *ETC_SMALL_DIRS):
        with contextlib.suppress(OSError):
            stat = os.lstat(f"/etc/{name}")
            key.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(key)


def etc_copy() -> Path:
    """The sandbox's ``/etc``: the listed files and small folders of the host's, the
    synthetic files, and empty mount points for :data:`ETC_DIRS`. Made once per
    process, and again when one of the host's entries changes: one bind instead of one
    per file keeps the sandbox's start fast (every mount costs at setup and teardown)."""
    key = _etc_key()
    with _ETC_LOCK:
        if key in _ETC_COPIES:
            return _ETC_COPIES[key]
        copy = Path(tempfile.mkdtemp(prefix="autopack-etc-"))
        for name, _, _ in key:
            source = f"/etc/{name}"
            if os.path.islink(source):
                os.symlink(os.readlink(source), copy / name)
            elif os.path.isdir(source):
                shutil.copytree(source, copy / name, symlinks=True)
            elif os.path.isfile(source):
                shutil.copyfile(source, copy / name)
        for destination, text in synthetic_etc().items():
            (copy / Path(destination).name).write_bytes(text)
        for name in etc_dirs():
            (copy / name).mkdir()
        for path in [copy, *copy.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        _ETC_COPIES[key] = copy
        if len(_ETC_COPIES) == 1:
            atexit.register(_remove_etc_copies)
        return copy


def _remove_etc_copies() -> None:
    for copy in _ETC_COPIES.values():
        shutil.rmtree(copy, ignore_errors=True)


def etc_dirs() -> list[str]:
    """The folders of the host's ``/etc`` bound into the sandbox (those that exist here)."""
    return [name for name in ETC_DIRS if os.path.isdir(f"/etc/{name}")]


def _mirror(path: str, flag: str) -> list[str]:
    """Bind ``path`` at the same place, or recreate it when it is a symlink."""
    if os.path.islink(path):
        return ["--symlink", os.readlink(path), path]
    if os.path.exists(path):
        return [flag, path, path]
    return []


def _holds(tree: str, path: str) -> bool:
    """Whether ``path`` is ``tree`` or inside it."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def refused(tree: str, keep_out: Sequence[str]) -> bool:
    """Whether binding ``tree`` would show what the sandbox must never see: the root, a
    home folder (or a folder holding one), a folder holding any of ``keep_out`` (the
    worktree: its siblings are other checkouts and ``.autopack/``), or ``.autopack/``."""
    homes = [*HOME_ROOTS, os.path.expanduser("~")]
    return (
        tree == "/"
        or ".autopack" in Path(tree).parts
        or any(_holds(tree, kept) for kept in [*homes, *keep_out])
    )


def interpreter_trees() -> list[str]:
    """The interpreter's own trees: prefixes, the real executable's prefix, the active
    virtualenv and the base interpreter it was made from, site directories on the path."""
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    candidates.append(str(Path(os.path.realpath(sys.executable)).parent.parent))
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        candidates.append(venv)
        python = Path(venv, "bin", "python")
        if python.exists():
            candidates.append(str(python.resolve().parent.parent))
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    candidates += [path for path in [*site.getsitepackages(), user_site] if path in sys.path]
    candidates.append(str(PACKAGE_DIR))
    return [os.path.realpath(path) for path in candidates if path]


def _outermost(trees: Sequence[str], covered: Sequence[str]) -> list[str]:
    """``trees`` without duplicates and without those inside another one or ``covered``."""
    kept: list[str] = []
    for tree in sorted(set(trees), key=len):
        if not any(_holds(other, tree) for other in [*covered, *kept]):
            kept.append(tree)
    return kept


def filesystem(cwd: Path, writable: Sequence[Path], *, tmp_bytes: int) -> list[str]:
    """bubblewrap's mount arguments: the allow-list, then the writable paths (their
    ``.git`` read-only), then the root made read-only."""
    argv: list[str] = []
    for tree in SYSTEM_TREES:
        argv += _mirror(tree, "--ro-bind")
    argv += ["--ro-bind", str(etc_copy()), "/etc"]
    for name in etc_dirs():
        argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    argv += ["--dev", "/dev", "--proc", "/proc", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    rw = [os.path.realpath(path) for path in [cwd, *writable]]
    system = [os.path.realpath(tree) for tree in SYSTEM_TREES if os.path.isdir(tree)]
    allowed = [t for t in interpreter_trees() if os.path.isdir(t) and not refused(t, rw)]
    for tree in _outermost(allowed, system):
        argv += ["--ro-bind", tree, tree]
    for path in rw:
        argv += ["--bind", path, path]
    for path in rw:  # a command may not rewrite the worktree's git link or repository
        if os.path.lexists(os.path.join(path, ".git")):
            argv += ["--ro-bind", os.path.join(path, ".git"), os.path.join(path, ".git")]
    return [*argv, "--remount-ro", "/"]


@contextlib.contextmanager
def pipes(data: Mapping[str, bytes]) -> Iterator[dict[str, int]]:
    """One pipe per blob, already written and closed for writing; yields the read ends.

    Each blob is far below a pipe's buffer, so writing before bubblewrap reads never
    blocks; the read ends are closed when the command is done.
    """
    fds: dict[str, int] = {}
    try:
        for key, blob in data.items():
            read, write = os.pipe()
            fds[key] = read
            with os.fdopen(write, "wb") as sink:
                sink.write(blob)
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def limited(inner: list[str], limits: SandboxLimits, *, nproc: bool) -> list[str]:
    """``inner`` started under ``prlimit`` with the memory, file and process limits.

    Hard and soft limits are set alike, so the command cannot raise them again.
    ``nproc`` only where the kernel counts the command's processes alone (a user
    namespace); outside one the count would include all of the user's processes.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return inner
    argv = [prlimit, f"--data={limits.memory_mb * MB}", f"--fsize={limits.max_file_mb * MB}"]
    if nproc:
        argv.append(f"--nproc={limits.max_processes}")
    return [*argv, "--", *inner]


def set_limits(pid: int, limits: SandboxLimits, *, nproc: bool) -> None:
    """:func:`limited`'s limits, set on a waiting process from outside (see the runner's
    handshake with bubblewrap): one program fewer to start per command."""
    values = [(resource.RLIMIT_DATA, limits.memory_mb * MB)]
    values.append((resource.RLIMIT_FSIZE, limits.max_file_mb * MB))
    if nproc:
        values.append((resource.RLIMIT_NPROC, limits.max_processes))
    for which, value in values:
        resource.prlimit(pid, which, (value, value))


def missing_prlimit() -> list[str]:
    """The warning for the evidence when limits could not be applied."""
    if shutil.which("prlimit") is None:
        return ["prlimit not found: memory and file size not limited"]
    return []


def _pids_parent() -> Path | None:
    for parent in PIDS_PARENTS:
        controllers = parent / "cgroup.subtree_control"
        v2 = controllers.exists() and "pids" in controllers.read_text().split()
        v1 = parent.name == "pids" and (parent / "cgroup.procs").exists()
        if (v1 or v2) and os.access(parent, os.W_OK):
            return parent
    return None


@contextlib.contextmanager
def pids_cgroup(max_processes: int) -> Iterator[Path | None]:
    """A fresh pids cgroup capped at ``max_processes``; yields its ``cgroup.procs``
    (``None`` where no cgroup can be made here) and removes it afterwards."""
    parent = _pids_parent()
    if parent is None:
        yield None
        return
    group = parent / f"autopack-sandbox-{os.getpid()}-{next(_CGROUP_NAMES)}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(max_processes))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield group / "cgroup.procs"
    finally:
        _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    """Remove the cgroup; while its killed processes are still exiting (rmdir is refused
    till then) a background thread retries, so the command's result is not held up."""
    try:
        group.rmdir()
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            threading.Thread(target=_remove_later, args=(group,), daemon=True).start()


def _remove_later(group: Path, wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            group.rmdir()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return


def join_cgroup(procs: Path, pid: int) -> None:
    """Move ``pid`` (not yet forked anything) into the cgroup whose ``cgroup.procs`` this is."""
    procs.write_text(str(pid))


def joining(procs: Path, argv: list[str]) -> list[str]:
    """``argv`` started from a shell that first moves itself into the cgroup, so every
    process of the command is counted from its very first fork."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *argv]
