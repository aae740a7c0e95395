"""The sandboxed runner: isolation where bubblewrap works, honest fallback where not."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from autopack.workspace.runner import (
    NO_SANDBOX_WARNING,
    BwrapSandbox,
    SubprocessSandbox,
    bwrap_works,
    make_sandbox,
)

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap does not work here")


@pytest.fixture
def listener() -> object:
    """A TCP server on the host's loopback; reachable from the host, not from the sandbox."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    yield server.getsockname()[1]
    server.close()


def _connect_command(port: int) -> str:
    return f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 3)\""


@needs_bwrap
def test_network_connection_fails_inside_the_sandbox(tmp_path: Path, listener: int) -> None:
    result = BwrapSandbox().run(_connect_command(listener), tmp_path, timeout_s=30)
    assert result.exit_code != 0
    assert "Error" in result.output
    assert result.sandbox == "bwrap"
    assert result.warning == ""


def test_the_same_connection_works_without_the_sandbox(tmp_path: Path, listener: int) -> None:
    result = SubprocessSandbox().run(_connect_command(listener), tmp_path, timeout_s=30)
    assert result.exit_code == 0, result.output


@pytest.fixture
def host_dir() -> object:
    """A directory on the host's root filesystem, outside /tmp (which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="autopack-test-"))
    yield path
    shutil.rmtree(path)


@needs_bwrap
def test_writes_outside_the_worktree_fail_and_inside_succeed(
    tmp_path: Path, host_dir: Path
) -> None:
    outside = host_dir / "outside.txt"
    result = BwrapSandbox().run(f"echo x > {outside}", tmp_path)
    assert result.exit_code != 0
    assert "nonexistent" in result.output  # the host's folders are not in the sandbox at all
    assert not outside.exists()
    root = BwrapSandbox().run("echo x > /made-at-root", tmp_path)
    assert "Read-only file system" in root.output
    inside = BwrapSandbox().run("echo hello > made.txt", tmp_path)
    assert inside.exit_code == 0
    assert (tmp_path / "made.txt").read_text() == "hello\n"


@needs_bwrap
def test_extra_writable_paths_are_writable(tmp_path: Path) -> None:
    worktree, cache = tmp_path / "wt", tmp_path / "cache"
    worktree.mkdir()
    cache.mkdir()
    result = BwrapSandbox().run(f"echo x > {cache}/f", worktree, writable=[cache])
    assert result.exit_code == 0
    assert (cache / "f").exists()


@needs_bwrap
def test_tmp_is_private(tmp_path: Path) -> None:
    marker = f"autopack-private-{tmp_path.name}"
    result = BwrapSandbox().run(f"echo x > /tmp/{marker} && ls /tmp", tmp_path)
    assert result.exit_code == 0
    assert not Path("/tmp", marker).exists()


@pytest.mark.parametrize("sandbox", [BwrapSandbox(), SubprocessSandbox()], ids=lambda s: s.name)
def test_a_hanging_command_is_killed_at_the_timeout(sandbox: object, tmp_path: Path) -> None:
    if isinstance(sandbox, BwrapSandbox) and not bwrap_works():
        pytest.skip("bubblewrap does not work here")
    assert isinstance(sandbox, BwrapSandbox | SubprocessSandbox)
    result = sandbox.run("echo started; sleep 120 & sleep 120", tmp_path, timeout_s=1)
    assert result.timed_out
    assert result.exit_code is None
    assert "started" in result.output
    assert "timed out" in result.warning


def test_a_cancel_kills_the_command(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = make_sandbox().run("sleep 120", tmp_path, timeout_s=300, cancel=cancel)
    assert result.exit_code is None
    assert not result.timed_out
    assert "cancelled" in result.warning


def test_provider_keys_do_not_reach_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    result = make_sandbox().run("env", tmp_path, env={"MY_SETTING": "on"})
    assert result.exit_code == 0
    assert "secret" not in result.output
    assert "hunter2" not in result.output
    assert "MY_SETTING=on" in result.output


def test_output_is_capped_keeping_head_and_tail(tmp_path: Path) -> None:
    command = "echo FIRST; head -c 500000 /dev/zero | tr '\\0' x; echo; echo LAST"
    result = make_sandbox().run(command, tmp_path, output_cap=10_000)
    assert result.truncated
    assert len(result.output) < 11_000
    assert result.output.startswith("FIRST")
    assert result.output.rstrip().endswith("LAST")


def test_the_fallback_is_recorded_when_bubblewrap_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not bwrap_works()  # the probe follows PATH: no stale answer from earlier tests
    sandbox = make_sandbox("auto")
    monkeypatch.undo()
    result = sandbox.run("echo ok", tmp_path)
    assert result.sandbox == "subprocess"
    assert result.warning.startswith(NO_SANDBOX_WARNING)
    assert result.to_dict()["warning"] == result.warning


def test_exit_status_is_reported(tmp_path: Path) -> None:
    result = make_sandbox().run("exit 3", tmp_path)
    assert result.exit_code == 3
    assert not result.timed_out
