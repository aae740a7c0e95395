"""The sandboxed command runner: one door for test commands and the Builder's ``run`` tool.

Every command runs with a timeout, an output cap and a scrubbed environment. Where
bubblewrap works, the command sees a read-only root, a writable worktree, a private
``/tmp`` and no network. Where it does not, the command runs as a plain subprocess and
the result says so in ``warning``, so the evidence never claims isolation it did not have.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

NO_SANDBOX_WARNING = "bubblewrap not available: ran without sandbox"
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYENV_ROOT", "VIRTUAL_ENV")
POLL_S = 0.05


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


PACKAGE_DIR = Path(__file__).resolve().parent.parent


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


def _pump(stream: IO[bytes], sink: _CappedOutput) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
        sink.feed(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


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
) -> CommandResult:
    """Start ``argv`` in its own process group and wait for it, a timeout or a cancel."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    sink = _CappedOutput(output_cap)
    reader = threading.Thread(target=_pump, args=(proc.stdout, sink), daemon=True)
    reader.start()
    timed_out = cancelled = False
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            cancelled = True
        elif time.monotonic() - start >= timeout_s:
            timed_out = True
        if cancelled or timed_out:
            _kill_group(proc)
            proc.wait()
            break
        if cancel is not None:
            cancel.wait(POLL_S)
        else:
            time.sleep(POLL_S)
    _kill_group(proc)  # a background child left behind must not outlive its command
    reader.join(timeout=5)
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
    """bubblewrap: read-only root, writable worktree, private /tmp, no network."""

    name = "bwrap"

    def __init__(self, executable: str = "bwrap") -> None:
        self.executable = executable

    def argv(self, command: str, cwd: Path, writable: Sequence[Path]) -> list[str]:
        argv = [self.executable, "--unshare-all", "--die-with-parent", "--new-session"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # Autopack's own package stays readable even when installed under /tmp: its pytest
        # plugin (per-test coverage) runs inside the sandbox.
        argv += ["--ro-bind-try", str(PACKAGE_DIR), str(PACKAGE_DIR)]
        for path in [cwd, *writable]:
            real = str(Path(path).resolve())
            argv += ["--bind", real, real]
        argv += ["--chdir", str(cwd.resolve()), "/bin/sh", "-c", command]
        return argv

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
        return _execute(
            self.argv(command, cwd, writable),
            command=command,
            cwd=cwd,
            env=scrubbed_env("/tmp", "/tmp", env),
            timeout_s=timeout_s,
            output_cap=output_cap,
            cancel=cancel,
            sandbox=self.name,
            warnings=[],
        )


class SubprocessSandbox:
    """A plain subprocess: same timeout, cap and environment, but no isolation.

    ``warning`` is set on every result so the evidence records the missing sandbox.
    """

    name = "subprocess"

    def __init__(self, warning: str = NO_SANDBOX_WARNING) -> None:
        self.warning = warning

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
        with tempfile.TemporaryDirectory(prefix="autopack-run-") as private:
            return _execute(
                ["/bin/sh", "-c", command],
                command=command,
                cwd=cwd,
                env=scrubbed_env(private, private, env),
                timeout_s=timeout_s,
                output_cap=output_cap,
                cancel=cancel,
                sandbox=self.name,
                warnings=[self.warning],
            )


def bwrap_works(executable: str = "bwrap") -> bool:
    """Whether bubblewrap is installed (on PATH now) and can create its namespaces here."""
    path = shutil.which(executable)
    return path is not None and _bwrap_probe(path)


@functools.cache
def _bwrap_probe(path: str) -> bool:
    """One probe per binary: starting namespaces works or not for the process's life."""
    with tempfile.TemporaryDirectory(prefix="autopack-probe-") as scratch:
        probe = BwrapSandbox(path).argv("true", Path(scratch), ())
        try:
            done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def make_sandbox(kind: str = "auto") -> Sandbox:
    """``auto`` picks bubblewrap when it works here, else a subprocess with a warning."""
    if kind == "subprocess":
        return SubprocessSandbox("sandbox disabled by configuration: ran without sandbox")
    if kind == "bwrap":
        if not bwrap_works():
            raise RuntimeError("bubblewrap was requested but does not work on this machine")
        return BwrapSandbox()
    if kind == "auto":
        return BwrapSandbox() if bwrap_works() else SubprocessSandbox()
    raise ValueError(f"unknown sandbox kind {kind!r}: expected auto, bwrap or subprocess")
