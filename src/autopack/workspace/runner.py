"""The sandboxed command runner: one door for test commands and the Builder's ``run`` tool.

Every command runs with a timeout, an output cap, a scrubbed environment and resource
limits. Where bubblewrap works the sandbox contains root: no network, no capabilities, a
seccomp filter (``seccomp.py``), an unprivileged user in its own user namespace where the
kernel allows one, a new session killed with its parent, and a filesystem built from an
allow-list (``confine.py``). Where bubblewrap does not work the command runs as a plain
subprocess and the result says so in ``warning``, as it does for any protection that could
not be applied, so the evidence never claims isolation it did not have.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from autopack.config import SandboxLimits, Settings
from autopack.workspace.confine import (
    HOSTNAME,
    MB,
    SANDBOX_UID,
    SECCOMP,
    bwrap_data,
    filesystem,
    join_cgroup,
    joining,
    limited,
    missing_prlimit,
    pids_cgroup,
    pipes,
    set_limits,
)

NO_SANDBOX_WARNING = "bubblewrap not available: ran without sandbox"
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYENV_ROOT", "VIRTUAL_ENV")
NO_USERNS_WARNING = "no user namespace here: ran as root without capabilities"
NO_PIDS_WARNING = "no pids cgroup writable here: the number of processes is not limited"
POLL_S = 0.05
INFO, BLOCK = "info", "block"


@dataclass(frozen=True)
class CommandResult:
    """What one command did; ``exit_code`` is ``None`` when it was killed (timeout, cancel)."""

    command: str
    exit_code: int | None
    output: str
    timed_out: bool
    duration_s: float
    sandbox: str
    truncated: bool
    warning: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox(Protocol):
    """Runs a shell command in a worktree; implementations differ only in isolation."""

    name: str

    def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 600,
        env: Mapping[str, str] | None = None,
        output_cap: int = 200_000,
        writable: Sequence[Path] = (),
        cancel: threading.Event | None = None,
    ) -> CommandResult: ...


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name suggests it holds a credential."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def scrubbed_env(home: str, tmpdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The base environment: a short allow-list from the parent, never a credential.

    The running interpreter's directory goes first on ``PATH`` so ``python`` in a test
    command is the interpreter Autopack runs in, not whatever a shim resolves to.
    """
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH and not is_secret_name(k)}
    interpreter_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([interpreter_dir, env.get("PATH", "/usr/bin:/bin")])
    env.setdefault("LANG", "C.UTF-8")
    env.update(HOME=home, TMPDIR=tmpdir, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    env.update(extra or {})
    return env


class _CappedOutput:
    """Collects a stream, keeping its head and tail when it is longer than the cap.

    Both ends matter: the head shows what started, the tail shows the failure summary.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(cap, 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        excess = len(self.tail) - (self.cap - self.cap // 2)
        if excess > 0:
            del self.tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        dropped = self.total - len(self.head) - len(self.tail)
        return f"{head}\n[... {dropped} bytes of output omitted ...]\n{tail}"


def _pump(stream: IO[bytes], sink: _CappedOutput, stop: threading.Event) -> None:
    """Copy the command's output into ``sink`` until its end or ``stop``. The stream is
    closed by the caller only after this returns (closing it under a blocked read would
    race with the descriptor's reuse)."""
    fd = stream.fileno()
    while not stop.is_set():
        if not select.select([fd], [], [], POLL_S)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        sink.feed(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait(
    proc: subprocess.Popen[bytes], exited: int, deadline: float, cancel: threading.Event | None
) -> tuple[bool, bool]:
    """Wait for the command to end, its deadline, or a cancel; returns (timed out, cancelled).

    ``exited`` (the command's pidfd) is readable the moment the command ends, so a short
    command is not charged a polling interval.
    """
    while not select.select([exited], [], [], POLL_S)[0]:
        cancelled = cancel is not None and cancel.is_set()
        timed_out = not cancelled and time.monotonic() >= deadline
        if cancelled or timed_out:
            _kill_group(proc)
            proc.wait()
            return timed_out, cancelled
    proc.wait()
    return False, False


def _execute(
    argv: list[str],
    *,
    command: str,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    output_cap: int,
    cancel: threading.Event | None,
    sandbox: str,
    warnings: list[str],
    pass_fds: Sequence[int] = (),
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> CommandResult:
    """Start ``argv`` in its own process group and wait for it, a timeout or a cancel.

    ``started`` runs once the process exists; if it raises, the process is killed.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None
    if started is not None:
        try:
            started(proc)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            proc.stdout.close()
            raise
    sink = _CappedOutput(output_cap)
    stop_reading = threading.Event()
    reader = threading.Thread(target=_pump, args=(proc.stdout, sink, stop_reading), daemon=True)
    reader.start()
    exited = os.pidfd_open(proc.pid)
    try:
        timed_out, cancelled = _wait(proc, exited, start + timeout_s, cancel)
    finally:
        os.close(exited)
    _kill_group(proc)  # a background child left behind must not outlive its command
    reader.join(timeout=5)  # what is still buffered in the pipe; a leftover holder of
    stop_reading.set()  # the pipe (outside the process group) is not waited for
    reader.join()
    proc.stdout.close()
    if timed_out:
        warnings.append(f"timed out after {timeout_s:g}s: process group killed")
    if cancelled:
        warnings.append("cancelled")
    return CommandResult(
        command=command,
        exit_code=None if (timed_out or cancelled) else proc.returncode,
        output=sink.text(),
        timed_out=timed_out,
        duration_s=round(time.monotonic() - start, 3),
        sandbox=sandbox,
        truncated=sink.truncated,
        warning="; ".join(warnings),
    )


class BwrapSandbox:
    """bubblewrap, hardened to contain root: see the module docstring."""

    name = "bwrap"

    def __init__(
        self,
        executable: str = "bwrap",
        limits: SandboxLimits | None = None,
        *,
        user_namespace: bool = True,
    ) -> None:
        self.executable = executable
        self.limits = limits or SandboxLimits()
        self.user_namespace = user_namespace

    def argv(
        self, command: str, cwd: Path, writable: Sequence[Path], fds: Mapping[str, int]
    ) -> list[str]:
        """bubblewrap's command line; ``fds`` holds the descriptors of the seccomp filter
        and of the :class:`_Handshake`, when there are."""
        return [*self.prefix(cwd, writable, fds), "/bin/sh", "-c", command]

    def prefix(
        self, cwd: Path, writable: Sequence[Path], fds: Mapping[str, int], *, network: bool = False
    ) -> list[str]:
        """bubblewrap's arguments up to the program it starts; the network is shared only
        when ``network`` (an MCP server configured to reach it)."""
        argv = [self.executable, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts"]
        if not network:
            argv.append("--unshare-net")
        argv += ["--unshare-cgroup-try", "--hostname", HOSTNAME]
        if self.user_namespace:
            uid = str(SANDBOX_UID)
            argv += ["--unshare-user", "--disable-userns", "--uid", uid, "--gid", uid]
        for option, key in (("--seccomp", SECCOMP), ("--info-fd", INFO), ("--block-fd", BLOCK)):
            if key in fds:
                argv += [option, str(fds[key])]
        argv += filesystem(cwd, writable, tmp_bytes=self.limits.tmp_mb * MB)
        return [*argv, "--chdir", str(cwd.resolve())]

    def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 600,
        env: Mapping[str, str] | None = None,
        output_cap: int = 200_000,
        writable: Sequence[Path] = (),
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        warnings = [] if self.user_namespace else [NO_USERNS_WARNING]
        data = bwrap_data()
        if SECCOMP not in data:
            warnings.append(f"no seccomp filter for {platform.machine()}")
        with (
            pipes(data) as fds,
            pids_cgroup(self.limits.max_processes) as procs,
            _Handshake() as handshake,
        ):
            if procs is None and (not self.user_namespace or os.geteuid() == 0):
                warnings.append(NO_PIDS_WARNING)

            def confine(child: int) -> None:
                set_limits(child, self.limits, nproc=self.user_namespace)
                if procs is not None:
                    join_cgroup(procs, child)

            argv = self.argv(command, cwd, writable, {**fds, **handshake.fds})
            return _execute(
                argv,
                command=command,
                cwd=cwd,
                env=scrubbed_env("/tmp", "/tmp", env),
                timeout_s=timeout_s,
                output_cap=output_cap,
                cancel=cancel,
                sandbox=self.name,
                warnings=warnings,
                pass_fds=(*fds.values(), *handshake.fds.values()),
                started=lambda proc: handshake.release(confine),
            )


class _Handshake:
    """bubblewrap's ``--info-fd`` and ``--block-fd``: its child, namespaces made and
    nothing forked yet, waits until we have set its limits and moved it into the pids
    cgroup, so every process of the command inherits both."""

    def __init__(self) -> None:
        self.info_read, self.info_write = os.pipe()
        self.block_read, self.block_write = os.pipe()
        self.fds = {INFO: self.info_write, BLOCK: self.block_read}
        self._open = {self.info_read, self.info_write, self.block_read, self.block_write}

    def __enter__(self) -> _Handshake:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        """Close ``fd`` once. A second close of the same number would close whatever
        another thread opened under it meanwhile (a database file: DBG-042)."""
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def release(self, confine: Callable[[int], None]) -> None:
        """Once bubblewrap started: confine its child, then let it go on. Raises when the
        child cannot be confined (the caller kills it: it never runs unconfined)."""
        self._close(self.info_write)
        self._close(self.block_read)
        child = _child_pid(self.info_read)
        if child is None:
            return  # bubblewrap is ending before it made a child: its output says why
        try:
            confine(child)
            os.write(self.block_write, b"x")
        except (ProcessLookupError, BrokenPipeError):
            return  # the child failed its setup and is gone: bubblewrap's output says why


def _child_pid(info: int, timeout_s: float = 30) -> int | None:
    """The sandboxed child's pid from bubblewrap's info JSON (``None`` if bubblewrap
    ended before writing it: it failed to start and says why on its output)."""
    text = b""
    deadline = time.monotonic() + timeout_s
    while select.select([info], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(info, 4096)
        if not chunk:
            return None
        text += chunk
        with contextlib.suppress(ValueError):
            return int(json.loads(text)["child-pid"])
    raise OSError("bubblewrap did not report its sandboxed process in time")


class SubprocessSandbox:
    """A plain subprocess: same timeout, cap, environment and limits, but no isolation.

    ``warning`` is set on every result so the evidence records the missing sandbox.
    """

    name = "subprocess"

    def __init__(self, warning: str = NO_SANDBOX_WARNING, limits: SandboxLimits | None = None):
        self.warning = warning
        self.limits = limits or SandboxLimits()

    def run(
        self,
        command: str,
        cwd: Path,
        *,
        timeout_s: float = 600,
        env: Mapping[str, str] | None = None,
        output_cap: int = 200_000,
        writable: Sequence[Path] = (),
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        warnings = [self.warning, *missing_prlimit()]
        with (
            tempfile.TemporaryDirectory(prefix="autopack-run-") as private,
            pids_cgroup(self.limits.max_processes) as procs,
        ):
            argv = limited(["/bin/sh", "-c", command], self.limits, nproc=False)
            if procs is None:
                warnings.append(NO_PIDS_WARNING)
            return _execute(
                argv if procs is None else joining(procs, argv),
                command=command,
                cwd=cwd,
                env=scrubbed_env(private, private, env),
                timeout_s=timeout_s,
                output_cap=output_cap,
                cancel=cancel,
                sandbox=self.name,
                warnings=warnings,
            )


def bwrap_works(executable: str = "bwrap") -> bool:
    """Whether bubblewrap is installed (on PATH now) and can create its namespaces here."""
    path = shutil.which(executable)
    return path is not None and _bwrap_mode(path) is not None


@functools.cache
def _bwrap_mode(path: str) -> str | None:
    """How bubblewrap works here, probed once per binary (namespaces work or not for the
    process's life): ``userns`` (an unprivileged user in a user namespace), ``root``
    (the kernel refuses user namespaces: root without capabilities), or ``None``."""
    with tempfile.TemporaryDirectory(prefix="autopack-probe-") as scratch:
        for mode in ("userns", "root"):
            probe = BwrapSandbox(path, user_namespace=mode == "userns")
            try:
                done = probe.run("true", Path(scratch), timeout_s=10)
            except OSError:
                return None
            if done.exit_code == 0:
                return mode
    return None


def make_sandbox(kind: str = "auto", limits: SandboxLimits | None = None) -> Sandbox:
    """``auto`` picks bubblewrap when it works here, else a subprocess with a warning."""
    if kind == "subprocess":
        return SubprocessSandbox("sandbox disabled by configuration: ran without sandbox", limits)
    if kind not in ("auto", "bwrap"):
        raise ValueError(f"unknown sandbox kind {kind!r}: expected auto, bwrap or subprocess")
    path = shutil.which("bwrap")
    mode = _bwrap_mode(path) if path is not None else None
    if mode is not None:
        assert path is not None
        return BwrapSandbox(path, limits, user_namespace=mode == "userns")
    if kind == "bwrap":
        raise RuntimeError("bubblewrap was requested but does not work on this machine")
    return SubprocessSandbox(limits=limits)


def sandbox_for(settings: Settings) -> Sandbox:
    """The sandbox the settings ask for, with their limits."""
    return make_sandbox(settings.sandbox, settings.sandbox_limits)


@dataclass(frozen=True)
class ServerCommand:
    """How to start a long-lived helper (an MCP server) the way the runner runs commands:
    its argv, its scrubbed environment, the sandbox's name and the warnings the evidence
    keeps for the protections it runs without."""

    argv: list[str]
    env: dict[str, str]
    sandbox: str
    warning: str


SERVER_WARNING = "a server's processes are not counted by a pids cgroup"


def server_command(
    sandbox: Sandbox, argv: Sequence[str], cwd: Path, scratch: Path, *, network: bool = False
) -> ServerCommand:
    """``argv`` started as the sandbox starts a command, but kept running with its stdin
    and stdout open (the MCP SDK starts it and talks to it): under bubblewrap the same
    namespaces, seccomp filter (read from a file in ``scratch``, which must outlive the
    server), filesystem allow-list with ``cwd`` the only writable folder, and limits; no
    network unless ``network``. No pids cgroup: the SDK starts the process, so it cannot
    be moved into one before it forks (said in ``warning``)."""
    inner = getattr(sandbox, "inner", sandbox)  # the engine wraps the runtime's sandbox
    limits: SandboxLimits = getattr(inner, "limits", SandboxLimits())
    env = scrubbed_env("/tmp", "/tmp")
    if not isinstance(inner, BwrapSandbox):
        warning = getattr(inner, "warning", NO_SANDBOX_WARNING)
        return ServerCommand(limited(list(argv), limits, nproc=False), env, "subprocess", warning)
    warnings = [SERVER_WARNING] + ([] if inner.user_namespace else [NO_USERNS_WARNING])
    data = bwrap_data()
    fds = {SECCOMP: 3} if SECCOMP in data else {}
    wrapped = limited(
        [*inner.prefix(cwd, (), fds, network=network), "--", *argv], limits, nproc=False
    )
    if SECCOMP not in data:
        warnings.append(f"no seccomp filter for {platform.machine()}")
        return ServerCommand(wrapped, env, inner.name, "; ".join(warnings))
    program = scratch / "seccomp.bpf"
    program.write_bytes(data[SECCOMP])
    # bubblewrap reads the filter from descriptor 3, which the shell opens on the file
    shell = ["/bin/sh", "-c", 'exec "$@" 3< "$0"', str(program), *wrapped]
    return ServerCommand(shell, env, inner.name, "; ".join(warnings))
