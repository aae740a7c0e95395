"""Steering a live run: approvals, rejection with a note, cancellation mid-test."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.approvals import SIGNATURE_HEADER, signature
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.events import CancelRequested
from autopack.plan import parse_plan_text
from autopack.projection import RunView
from autopack.states import PhaseState, RunState
from autopack.workspace import git


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def edit(path: str, old: str, new: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


def start(
    repo: Path, plan: str, script: str
) -> tuple[Runtime, str, threading.Thread, list[RunState]]:
    script_path = repo.parent / "script.yaml"
    script_path.write_text(script)
    rt = Runtime.open(repo, model_override=f"scripted:{script_path}")
    run_id = create_run(rt, parse_plan_text(plan), plan_source="plan.yaml")
    result: list[RunState] = []
    executor = LocalExecutor(rt, poll_s=0.1)
    thread = threading.Thread(target=lambda: result.append(executor.execute(run_id)))
    thread.start()
    return rt, run_id, thread, result


def wait_until(rt: Runtime, run_id: str, check: Callable[[RunView], bool]) -> RunView:
    for _ in range(1200):
        view = rt.store.view(run_id)
        if check(view):
            return view
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached the expected state")


def block(text: str) -> str:
    return "      - |\n" + "".join(f"        {line}\n" for line in text.splitlines())


APPROVAL_PLAN = """\
run: {goal: edit a test}
tiers:
  - id: t
    phases:
      - id: touch-test
        goal: Tighten the test of a
        scope: {paths: [tests/test_a.py]}
        tests: {command: "true"}
"""


def approval_script() -> str:
    first = edit("tests/test_a.py", "    assert True", "    assert 1 == 1")
    second = edit("tests/test_a.py", "    assert True", "    assert 2 == 2")
    approve = "      - {verdict: approve, summary: ok, issues: []}\n"
    return (
        "version: 1\nreplies:\n  touch-test:\n    builder:\n"
        + block(first)
        + block(second)
        + "    auditor:\n"
        + approve * 2
    )


def test_reject_with_note_then_approve_lands_the_phase(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    rt, run_id, thread, result = start(repo, APPROVAL_PLAN, approval_script())

    def waiting(view: RunView) -> bool:
        return view.phases["touch-test"].state is PhaseState.AWAITING_APPROVAL

    view = wait_until(rt, run_id, waiting)
    assert view.phases["touch-test"].steps["gate"]["decision"] == "NEEDS_APPROVAL"
    assert rt.store.run(run_id).pending_approvals == 1

    runner = CliRunner()
    note = "use 2 == 2 instead"
    args = ["reject", run_id, "touch-test", "--note", note, "--repo", str(repo)]
    assert runner.invoke(app, args).exit_code == 0
    wait_until(rt, run_id, lambda v: waiting(v) and v.phases["touch-test"].attempt == 2)
    prompt = rt.run_dir(run_id) / "phases" / "touch-test" / "2" / "prompt.txt"
    assert note in prompt.read_text()

    approved = runner.invoke(app, ["approve", run_id, "touch-test", "--repo", str(repo)])
    assert approved.exit_code == 0, approved.output
    thread.join(timeout=120)
    assert result == [RunState.SUCCEEDED]
    view = rt.store.view(run_id)
    (commit,) = git.log_commits(repo, view.base_commit, view.branch)
    assert "2 == 2" in git.git(repo, "show", f"{commit}:tests/test_a.py")


def test_approve_refuses_a_phase_that_is_not_waiting(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    rt, run_id, thread, _ = start(repo, APPROVAL_PLAN, approval_script())
    wait_until(rt, run_id, lambda v: v.phases["touch-test"].state is PhaseState.AWAITING_APPROVAL)
    result = CliRunner().invoke(app, ["approve", run_id, "nope", "--repo", str(repo)])
    assert result.exit_code == 2
    rt.store.append(run_id, CancelRequested(reason="done"))
    thread.join(timeout=120)


CANCEL_PLAN = """\
run: {goal: two phases}
tiers:
  - id: first
    phases:
      - id: one
        goal: Change a
        scope: {paths: [a.py]}
        tests: {command: "true"}
  - id: second
    phases:
      - id: two
        goal: Change b
        scope: {paths: [b.py]}
        tests: {command: "sleep 600"}
"""


def test_cancel_during_a_test_command_stops_it_and_keeps_landed_phases(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    script = (
        "version: 1\nreplies:\n  one:\n    builder:\n"
        + block(edit("a.py", "A = 1", "A = 2"))
        + "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
        + "  two:\n    builder:\n"
        + block(edit("b.py", "B = 1", "B = 2"))
    )
    rt, run_id, thread, result = start(repo, CANCEL_PLAN, script)
    # The base tree's test run (``sleep 600``) starts before phase two's Builder call.
    wait_until(rt, run_id, lambda v: v.phases["two"].step == "build")
    cancelled = CliRunner().invoke(app, ["cancel", run_id, "--repo", str(repo)])
    assert cancelled.exit_code == 0, cancelled.output
    thread.join(timeout=120)
    assert not thread.is_alive(), "the running test command was not stopped"
    assert result == [RunState.CANCELLED]
    view = rt.store.view(run_id)
    assert view.phases["one"].state is PhaseState.COMPLETE
    commits = git.log_commits(repo, view.base_commit, view.branch)
    assert [git.trailers(repo, c)["Autopack-Phase"] for c in commits] == ["one"]
    assert not any(rt.worktree(run_id, phase).exists() for phase in view.phases)
    assert "verify" not in view.phases["two"].steps
    assert [
        e
        for e in rt.store.events(run_id)
        if e.data.get("phase_id") == "two" and e.type == "model_called"
    ] == []


def _configure(repo: Path, text: str) -> None:
    (repo / "autopack.toml").write_text(text)
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "config")


def test_an_unanswered_approval_times_out_and_fails_the_phase(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    _configure(repo, '[approvals]\ntimeout_s = 0.5\non_timeout = "fail"\n')
    rt, run_id, thread, result = start(repo, APPROVAL_PLAN, approval_script())
    thread.join(timeout=120)
    assert result == [RunState.FAILED]
    phase = rt.store.view(run_id).phases["touch-test"]
    assert phase.state is PhaseState.FAILED
    assert "no approval within 0.5 s" in phase.reason


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers.get(SIGNATURE_HEADER, "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_pending_approval_is_announced_with_an_hmac_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    repo = make_repo(tmp_path)
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    _configure(repo, f'[approvals]\nwebhook_url = "{url}"\nwebhook_secret_env = "HOOK_SECRET"\n')
    rt, run_id, thread, _ = start(repo, APPROVAL_PLAN, approval_script())
    wait_until(rt, run_id, lambda v: v.phases["touch-test"].state is PhaseState.AWAITING_APPROVAL)
    for _ in range(100):
        if _Hook.received:
            break
        time.sleep(0.05)
    rt.store.append(run_id, CancelRequested(reason="done"))
    thread.join(timeout=120)
    server.shutdown()
    (body, signed), *_ = _Hook.received
    payload = json.loads(body)
    assert payload["run_id"] == run_id and payload["phase_id"] == "touch-test"
    assert signed == signature("s3cret", body)


def test_a_run_over_its_wall_time_budget_stops_and_says_which(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    plan = CANCEL_PLAN.replace(
        "run: {goal: two phases}", "run: {goal: slow, budget: {wall_seconds: 2}}"
    )
    script = (
        "version: 1\nreplies:\n  one:\n    builder:\n"
        + block(edit("a.py", "A = 1", "A = 2"))
        + "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
        + "  two:\n    builder:\n"
        + block(edit("b.py", "B = 1", "B = 2"))
    )
    rt, run_id, thread, result = start(repo, plan, script)
    thread.join(timeout=120)
    assert result == [RunState.FAILED]
    assert "wall_seconds" in rt.store.view(run_id).reason


def test_ctrl_c_cancels_with_exit_130_and_the_run_resumes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    plan = CANCEL_PLAN.replace("sleep 600", "sleep 3")
    (tmp_path / "plan.yaml").write_text(plan)
    script = (
        "version: 1\nreplies:\n  one:\n    builder:\n"
        + block(edit("a.py", "A = 1", "A = 2"))
        + "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
        + "  two:\n    builder:\n"
        + block(edit("b.py", "B = 1", "B = 2"))
        + "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
    )
    (tmp_path / "script.yaml").write_text(script)
    model = f"scripted:{tmp_path / 'script.yaml'}"
    args = ["autopack", "run", str(tmp_path / "plan.yaml"), "--repo", str(repo), "--model", model]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rt = Runtime.open(repo)
    for _ in range(1200):
        runs = rt.store.list_runs()
        if runs and rt.store.view(runs[0].id).phases["two"].step == "verify":
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    run_id = rt.store.list_runs()[0].id
    assert rt.store.view(run_id).state is RunState.CANCELLED

    resumed = CliRunner().invoke(app, ["resume", run_id, "--repo", str(repo)])
    assert resumed.exit_code == 0, resumed.output
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    commits = git.log_commits(repo, view.base_commit, view.branch)
    assert [git.trailers(repo, c)["Autopack-Phase"] for c in commits] == ["one", "two"]
