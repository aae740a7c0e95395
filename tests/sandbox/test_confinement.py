"""What a sandboxed command is: its identity, what it sees, its limits, what outlives it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from autopack.config import SandboxLimits
from autopack.workspace import confine
from autopack.workspace.runner import (
    NO_SANDBOX_WARNING,
    BwrapSandbox,
    Sandbox,
    SubprocessSandbox,
    make_sandbox,
)


@pytest.fixture
def bwrap() -> Sandbox:
    return make_sandbox("bwrap")


def test_the_command_has_no_capability_no_new_privileges_and_a_filter(
    bwrap: Sandbox, tmp_path: Path
) -> None:
    result = bwrap.run("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; id -u", tmp_path)
    fields = dict(line.split(":", 1) for line in result.output.splitlines() if ":" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # a filter is installed
    assert result.output.split()[-1] == str(confine.SANDBOX_UID)
    assert result.warning == ""


def test_the_worktree_stays_writable_and_new_files_belong_to_the_invoking_user(
    bwrap: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("old\n")
    (tmp_path / "old.txt").chmod(0o644)
    result = bwrap.run("echo more >> old.txt && mkdir -p d && echo new > d/new.txt", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "old.txt").read_text() == "old\nmore\n"
    assert (tmp_path / "d" / "new.txt").stat().st_uid == os.getuid()


def test_only_the_allow_list_is_visible(bwrap: Sandbox, tmp_path: Path) -> None:
    result = bwrap.run("ls -A / ; echo --- ; ls -A /etc ; echo --- ; ls -A /root", tmp_path)
    root, etc, home = (part.split() for part in result.output.split("---"))
    assert set(root) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc"} | {
        "dev",
        "proc",
        "sys",
        "tmp",
        *(Path(tree).parts[1] for tree in confine.interpreter_trees()),
        Path(tmp_path).parts[1],
    }
    assert "home" not in root
    assert not {"shadow", "gshadow", "sudoers", "ssh", "environment"} & set(etc)
    assert set(home) <= {Path(t).parts[2] for t in confine.interpreter_trees() if t[:6] == "/root/"}
    passwd = bwrap.run("cat /etc/passwd", tmp_path).output
    assert passwd == confine.synthetic_etc()["/etc/passwd"].decode()


def test_no_tree_holding_a_home_or_the_worktree_or_the_state_is_bound(tmp_path: Path) -> None:
    worktree = str(tmp_path / "repo" / ".autopack" / "worktrees" / "run" / "phase")
    for tree in ("/", "/root", "/home", str(tmp_path), str(tmp_path / "repo")):
        assert confine.refused(tree, [worktree]), tree
    assert confine.refused(str(tmp_path / "x" / ".autopack" / "venv"), [])
    assert not confine.refused("/root/.pyenv/versions/3.11.7", [worktree])
    assert not confine.refused(str(tmp_path / "venv"), [worktree])


def test_an_interpreter_holding_the_worktree_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worktree = tmp_path / "repo" / ".autopack" / "worktrees" / "run" / "phase"
    worktree.mkdir(parents=True)
    venv = tmp_path / "venv"
    venv.mkdir()
    trees = [str(tmp_path), str(venv), "/usr/lib"]
    monkeypatch.setattr(confine, "interpreter_trees", lambda: trees)
    argv = BwrapSandbox().argv("true", worktree, [], {})
    binds = {argv[i + 1] for i, flag in enumerate(argv) if flag in ("--bind", "--ro-bind")}
    assert str(tmp_path) not in binds and "/" not in binds
    assert binds >= {"/usr", str(worktree), str(venv)}  # the venv inside it still is
    for flag in ("--unshare-user", "--unshare-net", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_limits_hold_and_cannot_be_raised_again(tmp_path: Path) -> None:
    limits = SandboxLimits(max_processes=32, memory_mb=512, max_file_mb=2)
    probe = (
        "import resource as r; "
        "print(r.getrlimit(r.RLIMIT_FSIZE), r.getrlimit(r.RLIMIT_DATA)); "
        "r.setrlimit(r.RLIMIT_FSIZE, (r.RLIM_INFINITY, r.RLIM_INFINITY))"
    )
    for sandbox in (make_sandbox("bwrap", limits), SubprocessSandbox(limits=limits)):
        result = sandbox.run(f'python -c "{probe}"', tmp_path)
        mb2, mb512 = 2 * 1024 * 1024, 512 * 1024 * 1024
        assert f"({mb2}, {mb2}) ({mb512}, {mb512})" in result.output
        assert "ValueError" in result.output  # raising the hard limit is refused


def test_the_fallback_applies_limits_and_says_it_is_not_isolated(tmp_path: Path) -> None:
    result = SubprocessSandbox(limits=SandboxLimits(max_processes=16)).run(
        'python -c "import os\nn = 0\ntry:\n    while n < 500:\n'
        "        if os.fork() == 0:\n            __import__('time').sleep(1)\n"
        "            os._exit(0)\n        n += 1\nexcept OSError:\n    print('refused', n)\"",
        tmp_path,
    )
    assert "refused" in result.output
    assert int(result.output.split()[-1]) < 16
    assert NO_SANDBOX_WARNING in result.warning


def test_nothing_outlives_its_command_and_no_cgroup_is_left(bwrap: Sandbox, tmp_path: Path) -> None:
    marker = f"{time.time_ns() % 10**6}.25"
    result = bwrap.run(f"sleep {marker} & sleep {marker}", tmp_path, timeout_s=1)
    assert result.timed_out
    time.sleep(0.5)
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                alive.append(cmdline)
        except OSError:
            continue
    assert alive == []
    parents = [p for p in confine.PIDS_PARENTS if p.exists()]
    for _ in range(100):  # removed in the background once its processes are gone
        left = [g for p in parents for g in p.glob(f"autopack-sandbox-{os.getpid()}-*")]
        if not left:
            break
        time.sleep(0.1)
    assert left == []


def test_python_inside_is_the_interpreter_autopack_runs_in(bwrap: Sandbox, tmp_path: Path) -> None:
    result = bwrap.run("python -c 'import sys; print(sys.prefix)'", tmp_path)
    assert result.output.strip() == sys.prefix


def test_a_sandbox_that_cannot_start_reports_why(bwrap: Sandbox, tmp_path: Path) -> None:
    result = bwrap.run("echo never", tmp_path, writable=[tmp_path / "missing"])
    assert result.exit_code not in (0, None)
    assert "never" not in result.output
    assert "missing" in result.output


def test_a_command_never_closes_a_descriptor_another_thread_opened(tmp_path: Path) -> None:
    """The handshake's pipes are closed once: a number freed during the command and
    reused by another thread (the API server's database file) stays open (DBG-042)."""
    from autopack.workspace.runner import _Handshake

    with _Handshake() as handshake:
        handshake.release(lambda child: None)  # closes its write and block ends
        reused = os.open(tmp_path / "db", os.O_RDWR | os.O_CREAT)  # the lowest free number
    os.write(reused, b"still mine")  # raised EBADF when the exit closed it again
    os.close(reused)
