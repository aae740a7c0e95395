"""A run always ends in a state that says what happened, and what a provider reports
cannot overspend it. Each failure is injected for real through ``autopack run``: a model
with no price, a key the provider refuses, an exception inside the executor, usage a
provider made up, a ``Retry-After: nan``; then the store and ``autopack status`` are
read as a person would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeserver import FakeServer, Fault, Reply
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine import attempts
from autopack.engine.local import EXECUTOR_ERROR_FILE
from autopack.engine.runtime import Runtime
from autopack.projection import RunView
from autopack.states import RunState
from autopack.workspace import git

PLAN = """\
run: {goal: Edit a%s}
tiers:
  - id: t
    phases:
      - id: p
        goal: Change a
        scope: {paths: [a.py]}
        tests: {command: "true"}
"""
EDIT = "a.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"
SCRIPT = f"""\
version: 1
replies:
  p:
    builder:
      - |
{"".join("        " + line + chr(10) for line in EDIT.splitlines())}
    auditor:
      - {{verdict: approve, summary: ok, issues: []}}
"""
KEY = "sk-test-run-ends-0123456789abcdefghij"


def make_repo(tmp_path: Path, config: str = "") -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    if config:
        (repo / "autopack.toml").write_text(config)
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def run(tmp_path: Path, repo: Path, model: str, budget: str = "") -> tuple[int, str, RunView]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN % budget)
    result = CliRunner().invoke(app, ["run", str(plan), "-C", str(repo), "--model", model])
    assert "Traceback" not in result.output, result.output
    (row,) = Runtime.open(repo).store.list_runs()
    return result.exit_code, result.output, Runtime.open(repo).store.view(row.id)


def status(repo: Path, run_id: str) -> str:
    result = CliRunner().invoke(app, ["status", run_id, "-C", str(repo)])
    assert result.exit_code == 0, result.output
    return result.output


def openai_config(server: FakeServer) -> str:
    return f'[models.providers.openai]\nbase_url = "{server.openai_url}"\ntimeout_seconds = 5\n'


def test_a_model_with_no_price_is_refused_before_a_run_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        repo = make_repo(tmp_path, openai_config(server))
        plan = tmp_path / "plan.yaml"
        plan.write_text(PLAN % "")
        args = ["run", str(plan), "-C", str(repo), "--model", "openai:gpt-unpriced-9"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "price" in result.output
    assert "Traceback" not in result.output
    assert Runtime.open(repo).store.list_runs() == []


def test_a_key_refused_mid_run_pauses_the_run_and_cancel_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key passed the preflight, then the provider refused it on the first call."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        server.enqueue("openai", Fault(401, message="the key was revoked"))
        repo = make_repo(tmp_path, openai_config(server))
        code, output, view = run(tmp_path, repo, "openai:gpt-4.1")
    assert code == 3, output
    assert view.state is RunState.PAUSED
    assert "credentials were refused" in view.reason
    assert KEY not in output + view.reason
    assert f"autopack resume {view.run_id}" in output
    shown = status(repo, view.run_id)
    assert "PAUSED" in shown and "credentials were refused" in shown
    assert git.rev_parse(repo, f"refs/heads/{view.branch}") is not None

    cancelled = CliRunner().invoke(app, ["cancel", view.run_id, "-C", str(repo)])
    assert cancelled.exit_code == 0, cancelled.output
    assert Runtime.open(repo).store.view(view.run_id).state is RunState.CANCELLED


def test_an_exception_in_the_executor_pauses_the_run_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)

    def broken(ctx: object) -> dict[str, object]:
        raise RuntimeError("the disk is on fire")

    with monkeypatch.context() as patch:
        patch.setitem(attempts.STEP_FUNCTIONS, "verify", broken)
        code, output, view = run(tmp_path, repo, f"scripted:{script}")
    assert code == 1, output
    assert view.state is RunState.PAUSED
    assert view.reason == "RuntimeError: the disk is on fire"
    trace = (repo / ".autopack" / "runs" / view.run_id / EXECUTOR_ERROR_FILE).read_text()
    assert "the disk is on fire" in trace and "Traceback" in trace
    assert (repo / ".autopack" / "worktrees" / view.run_id / "p").is_dir()
    assert "PAUSED" in status(repo, view.run_id)

    resumed = CliRunner().invoke(app, ["resume", view.run_id, "-C", str(repo)])
    assert resumed.exit_code == 0, resumed.output
    final = Runtime.open(repo).store.view(view.run_id)
    assert final.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{final.branch}:a.py") == "A = 2"


def model_calls(repo: Path, run_id: str) -> list[dict[str, object]]:
    events = Runtime.open(repo).store.events(run_id)
    return [e.data for e in events if e.type == "model_called"]


CAP = 20_000


@pytest.mark.parametrize(
    ("name", "reported"),
    [("output above max_tokens", (10, 200_000)), ("negative", (-1_900_000, -5))],
)
def test_usage_a_provider_made_up_never_passes_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, reported: tuple[int, int]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeServer(api_key=KEY) as server:
        made_up = Reply(text=EDIT, input_tokens=reported[0], output_tokens=reported[1])
        server.default["openai"] = made_up
        repo = make_repo(tmp_path, openai_config(server))
        _, output, view = run(tmp_path, repo, "openai:gpt-4.1", f", budget: {{tokens: {CAP}}}")
    calls = model_calls(repo, view.run_id)
    assert calls, output
    assert all(call["usage_fault"] for call in calls), calls
    assert all(int(c["input_tokens"]) >= 0 and int(c["output_tokens"]) >= 0 for c in calls)  # type: ignore[call-overload]
    assert all(float(c["cost_usd"]) >= 0 for c in calls)  # type: ignore[arg-type]
    assert 0 < view.spend.tokens <= CAP
    assert view.spend.cost_usd > 0
    assert view.state in (RunState.FAILED, RunState.SUCCEEDED)


@pytest.mark.parametrize("header", ["nan", "-5", "1e999", "soon", "inf"])
def test_a_malformed_retry_after_is_a_bounded_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    verdict = '{"verdict": "approve", "summary": "ok", "issues": []}'
    with FakeServer(api_key=KEY) as server:
        server.enqueue(
            "openai", Fault(429, retry_after=header), Reply(text=EDIT), Reply(text=verdict)
        )
        repo = make_repo(tmp_path, openai_config(server))
        code, output, view = run(tmp_path, repo, "openai:gpt-4.1")
    assert code == 0, output
    assert view.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{view.branch}:a.py") == "A = 2"


def test_nan_in_an_openai_tool_call_is_a_malformed_reply_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    verdict = '{"verdict": "approve", "summary": "ok", "issues": []}'
    nan_call = ("run", '{"command": "touch nan-ran", "timeout_s": NaN}')
    with FakeServer(api_key=KEY) as server:
        server.enqueue(
            "openai", Reply(tool_calls=[nan_call]), Reply(text=EDIT), Reply(text=verdict)
        )
        repo = make_repo(tmp_path, openai_config(server))
        code, output, view = run(tmp_path, repo, "openai:gpt-4.1")
        repair = json.dumps(server.requests[1].body["messages"])
    assert code == 0, output
    assert view.state is RunState.SUCCEEDED
    assert "NaN is not a JSON number" in repair
    tree = git.git(repo, "ls-tree", "-r", "--name-only", view.branch).split()
    assert "nan-ran" not in tree
    assert not list((repo / ".autopack").rglob("nan-ran"))
