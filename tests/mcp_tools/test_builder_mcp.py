"""The Builder with MCP tools: a scripted Builder calls the tools of a real MCP server
(notes_server.py, written with the official SDK) through ``autopack run``, and the run
is checked as a person would check it afterwards: the branch, the cassette, the events,
``autopack show``, and ``autopack replay`` with the server gone."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.workspace.runner import bwrap_works

SERVER = Path(__file__).with_name("notes_server.py")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("A = 1\n")
    (root / "tools").mkdir()
    shutil.copy(SERVER, root / "tools" / SERVER.name)  # a server the project ships
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    return root


def configure(
    repo: Path,
    server: str = f"tools/{SERVER.name}",
    *args: str,
    timeout_s: float = 30,
    extra: str = "",
) -> None:
    """``[mcp.servers.notes]`` in autopack.toml, kept out of git (it is local config).

    The server is the repository's own (``tools/``, relative to the worktree it starts
    in): the sandbox shows a server the worktree, the interpreter and system folders,
    nothing else."""
    command = [sys.executable, server, *args]
    (repo / "autopack.toml").write_text(
        'test_command = "true"\n\n[mcp.servers.notes]\n'
        f"command = {json.dumps(command)}\ntimeout_s = {timeout_s}\n{extra}"
    )
    (repo / ".git" / "info" / "exclude").write_text("autopack.toml\n")


def write_plan(repo: Path, tools: list[str]) -> Path:
    plan = {
        "run": {"goal": "Greet", "id": "mcp-run", "max_attempts": 1},
        "tiers": [
            {
                "id": "only",
                "phases": [
                    {
                        "id": "greet",
                        "goal": "Change A",
                        "scope": {"paths": ["a.py"]},
                        "mcp_tools": tools,
                    }
                ],
            }
        ],
    }
    path = repo.parent / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def write_script(repo: Path, calls: list[dict[str, Any]]) -> Path:
    """The Builder makes ``calls`` (one a step), writes a.py and finishes; the Auditor
    approves."""
    builder = [{"tool_calls": [call]} for call in calls]
    builder += [
        {
            "tool_calls": [
                {"name": "write_file", "arguments": {"path": "a.py", "content": "A = 2\n"}}
            ]
        },
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
    ]
    script = {
        "version": 1,
        "replies": {
            "*": {"builder": builder, "auditor": [{"verdict": "approve", "summary": "ok"}]}
        },
    }
    path = repo.parent / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    return path


def run(repo: Path, plan: Path, script: Path) -> Any:
    return CliRunner().invoke(
        app, ["run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}"]
    )


def cassette(repo: Path, run_id: str = "mcp-run") -> list[dict[str, Any]]:
    path = repo / ".autopack" / "runs" / run_id / "cassette.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def tool_results(repo: Path) -> list[str]:
    """What the Builder was told after each of its tool calls (from its recorded requests)."""
    requests = [e["request"] for e in cassette(repo) if "request" in e]
    last = max((r for r in requests if r["role"] == "builder"), key=lambda r: r["call_index"])
    return [m["content"] for m in last["messages"] if m["role"] == "tool"]


def mcp_events(repo: Path, run_id: str = "mcp-run") -> list[dict[str, Any]]:
    store = Runtime.open(repo).store
    return [e.data for e in store.events(run_id) if e.type == "mcp_called"]


def lookup(topic: str) -> dict[str, Any]:
    return {"name": "mcp__notes__lookup", "arguments": {"topic": topic}}


def test_a_recorded_mcp_call_replays_with_the_server_gone(repo: Path) -> None:
    configure(repo)
    plan = write_plan(repo, ["notes.lookup"])
    done = run(repo, plan, write_script(repo, [lookup("greetings")]))
    assert done.exit_code == 0, done.output
    assert "greet: MCP notes.lookup ok" in done.output  # the live view
    assert git(repo, "show", "autopack/mcp-run:a.py") == "A = 2\n"

    assert tool_results(repo)[0] == "note on greetings: greetings end with an exclamation mark"
    recorded = [e["mcp"] for e in cassette(repo) if "mcp" in e]
    assert [(r["server"], r["op"]) for r in recorded] == [("notes", "list"), ("notes", "call")]
    assert recorded[1]["request"] == {"tool": "lookup", "arguments": {"topic": "greetings"}}
    (event,) = mcp_events(repo)
    assert (event["server"], event["tool"], event["is_error"], event["replayed"]) == (
        "notes",
        "lookup",
        False,
        False,
    )
    shown = CliRunner().invoke(app, ["show", "mcp-run", "greet", "--repo", str(repo)])
    assert "notes.lookup: ok" in shown.output

    configure(repo, "/nonexistent/notes_server.py")  # the server is gone
    replayed = CliRunner().invoke(app, ["replay", "mcp-run", "--repo", str(repo)])
    assert replayed.exit_code == 0, replayed.output
    assert "every phase's tree hash equals the original's" in replayed.output
    (event,) = mcp_events(repo, "mcp-run-replay-1")
    assert (event["tool"], event["replayed"]) == ("lookup", True)


def test_a_tool_the_phase_does_not_allow_is_refused(repo: Path) -> None:
    configure(repo)
    plan = write_plan(repo, ["notes.lookup"])
    calls = [
        {"name": "mcp__notes__delete_everything", "arguments": {}},
        {"name": "mcp__notes__lookup", "arguments": {"topic": 7}},
    ]
    done = run(repo, plan, write_script(repo, calls))
    assert done.exit_code == 0, done.output
    refused, malformed = tool_results(repo)[:2]
    assert refused.startswith("refused: 'mcp__notes__delete_everything' is not an MCP tool")
    assert "mcp__notes__lookup" in refused
    assert malformed.startswith("error: bad arguments for mcp__notes__lookup: 7 is not of type")
    assert mcp_events(repo) == []  # neither reached the server
    recorded = [e["mcp"]["op"] for e in cassette(repo) if "mcp" in e]
    assert recorded == ["list"]


def test_an_unknown_server_in_the_plan_is_refused_before_the_run(repo: Path) -> None:
    configure(repo)
    plan = write_plan(repo, ["nowhere.lookup"])
    done = run(repo, plan, write_script(repo, []))
    assert done.exit_code == 2
    assert "mcp_tools nowhere.lookup: no such server" in done.output
    assert not (repo / ".autopack" / "runs").exists()


def test_a_server_writing_outside_the_scope_is_caught(repo: Path) -> None:
    """In its worktree, a server's write outside the phase's scope is refused at apply, as
    a ``run`` command's is; outside its worktree the sandbox lets it write nothing."""
    configure(repo)
    plan = write_plan(repo, ["notes.write_note"])
    main_checkout = repo / "escaped.py"  # under /tmp: the sandbox's /tmp is private
    outside = Path(__file__).with_name(f"escaped-{os.getpid()}.py")  # not shown to it
    calls = [
        {"name": "mcp__notes__write_note", "arguments": {"path": "b.py", "text": "B = 1\n"}},
        {"name": "mcp__notes__write_note", "arguments": {"path": str(main_checkout), "text": ""}},
    ]
    if bwrap_works():  # without the sandbox this would really write there
        calls.append(
            {"name": "mcp__notes__write_note", "arguments": {"path": str(outside), "text": ""}}
        )
    done = run(repo, plan, write_script(repo, calls))
    assert done.exit_code == 1, done.output
    phase = Runtime.open(repo).store.view("mcp-run").phases["greet"]
    apply = (phase.attempts[-1]["steps"] if phase.attempts else phase.steps)["apply"]
    assert (apply["applied"], apply["outside_scope"]) == (False, ["b.py"])
    assert "b.py" not in git(repo, "ls-tree", "-r", "--name-only", "autopack/mcp-run")
    if bwrap_works():
        assert not main_checkout.exists()
        assert not outside.exists()
        assert tool_results(repo)[2].startswith(f"could not write {outside}")


def test_a_server_that_hangs_is_killed_at_its_timeout(repo: Path) -> None:
    configure(repo, f"tools/{SERVER.name}", "hangs-marker-7f3a", timeout_s=2)
    plan = write_plan(repo, ["notes.hang", "notes.lookup"])
    calls = [{"name": "mcp__notes__hang", "arguments": {}}, lookup("after")]
    done = run(repo, plan, write_script(repo, calls))
    assert done.exit_code == 0, done.output
    hung, after = tool_results(repo)[:2]
    assert hung == "error: hang timed out: no answer within 2 s; the server was stopped"
    assert after.startswith("error: the MCP server 'notes' was stopped: no answer within 2 s")
    events = mcp_events(repo)
    assert [(e["tool"], e["is_error"]) for e in events] == [("hang", True), ("lookup", True)]
    assert "greet: MCP notes.hang error: no answer within 2 s" in done.output
    alive = [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and _runs(p, "hangs-marker-7f3a")
    ]
    assert alive == []


def _runs(proc: Path, marker: str) -> bool:
    try:
        return marker in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _scratch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs read no user config from the real home."""
    monkeypatch.setitem(os.environ, "HOME", str(tmp_path / "home"))


def test_mcp_calls_count_against_the_step_limit(repo: Path) -> None:
    """Each MCP call is a step as a model call is: with the default 40 steps, 20 model
    calls that each call a tool use them all up."""
    configure(repo)
    plan = write_plan(repo, ["notes.lookup"])
    run(repo, plan, write_script(repo, [lookup(f"t{n}") for n in range(30)]))
    phase = Runtime.open(repo).store.view("mcp-run").phases["greet"]
    build = (phase.attempts[-1]["steps"] if phase.attempts else phase.steps)["build"]
    assert (build["steps"], build["stop_reason"]) == (20, "max_steps")
    assert len(build["mcp_calls"]) == 20
    assert len(mcp_events(repo)) == 20
    assert git(repo, "show", "autopack/mcp-run:a.py") == "A = 1\n"  # never got to write it


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="the sandbox needs bubblewrap")


@needs_bwrap
@pytest.mark.parametrize("network", [False, True])
def test_a_server_reaches_the_network_only_when_configured(repo: Path, network: bool) -> None:
    with _http_answering("hello from the host") as url:
        configure(repo, extra=f"network = {str(network).lower()}\n")
        plan = write_plan(repo, ["notes.fetch"])
        fetch = {"name": "mcp__notes__fetch", "arguments": {"url": url}}
        done = run(repo, plan, write_script(repo, [fetch]))
    assert done.exit_code == 0, done.output
    answer = tool_results(repo)[0]
    if network:
        assert answer == "fetched: hello from the host"
    else:
        assert answer.startswith(f"could not fetch {url}")


def test_a_server_gets_no_credential_and_none_is_recorded(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-ant-builder-mcp-secret-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-0123456789-secret")
    configure(repo)
    plan = write_plan(repo, ["notes.environment"])
    done = run(
        repo, plan, write_script(repo, [{"name": "mcp__notes__environment", "arguments": {}}])
    )
    assert done.exit_code == 0, done.output
    environment = json.loads(tool_results(repo)[0])
    assert "ANTHROPIC_API_KEY" not in environment and "DEPLOY_TOKEN" not in environment
    recorded = (repo / ".autopack" / "runs" / "mcp-run" / "cassette.jsonl").read_text()
    assert secret not in recorded and "tok-0123456789-secret" not in recorded


def test_a_streamable_http_server_by_url_is_recorded_and_replayed(repo: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)])
    try:
        _wait_listening(port)
        (repo / "autopack.toml").write_text(
            f'test_command = "true"\n\n[mcp.servers.notes]\nurl = "http://127.0.0.1:{port}/mcp"\n'
        )
        plan = write_plan(repo, ["notes.lookup"])
        done = run(repo, plan, write_script(repo, [lookup("urls")]))
        assert done.exit_code == 0, done.output
    finally:
        server.terminate()
        server.wait(10)
    assert tool_results(repo)[0] == "note on urls: greetings end with an exclamation mark"
    replayed = CliRunner().invoke(app, ["replay", "mcp-run", "--repo", str(repo)])
    assert replayed.exit_code == 0, replayed.output


@contextlib.contextmanager
def _http_answering(body: str) -> Iterator[str]:
    """A plain HTTP server on a free loopback port of the host, answering ``body``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int) -> None:
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the MCP server did not start")
