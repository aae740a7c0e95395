"""Approve, reject and cancel are one set of commands (``autopack.engine.commands``):
every entry point changes a run through them and nothing else writes those events.

A real run (served by the API's embedded executor, scripted Builder) waits for a person
on a protected path; it is answered from the CLI or over HTTP, and each entry point then
refuses the same things with the same words."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import autopack
from autopack.api import ApiConfig, create_app
from autopack.cli import app as cli
from autopack.states import PhaseState, RunState
from autopack.store.keys import create_key
from autopack.workspace import git

WORKFLOW = ".github/workflows/ci.yml"
PLAN = {
    "run": {"id": "r1", "goal": "Add a greeting"},
    "tiers": [
        {
            "id": "only",
            "phases": [
                {
                    "id": "greet",
                    "goal": "Add a CI workflow",
                    "scope": {"paths": [WORKFLOW], "protected": [WORKFLOW]},
                    "tests": {"command": "true"},
                }
            ],
        }
    ],
}
BUILD = f"{WORKFLOW}\n<<<<<<< SEARCH\n=======\non: push\n>>>>>>> REPLACE\n"
COMMANDS = ("approve", "reject", "cancel")
WRITERS = ("ApprovalGranted", "ApprovalRejected", "CancelRequested", "RunPaused")


def make_repo(root: Path) -> tuple[Path, Path]:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("# repo\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    approve = {"verdict": "approve", "summary": "ok", "issues": []}
    replies = {"greet": {"builder": [BUILD], "auditor": [approve]}}
    script = root / "script.json"
    script.write_text(json.dumps({"version": 1, "replies": replies}))
    return repo, script


def until(check: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def answer(entry: str, client: TestClient, auth: dict[str, str], repo: Path, what: str) -> str:
    """Carry out ``what`` (approve, reject, cancel) on run r1 from ``entry``; the refusal's
    message, or "" when it was done."""
    if entry == "cli":
        args = {
            "approve": ["approve", "r1", "greet"],
            "reject": ["reject", "r1", "greet", "--note", "no"],
            "cancel": ["cancel", "r1"],
        }[what]
        result = CliRunner().invoke(cli, [*args, "-C", str(repo)])
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output
        said = " ".join(result.output.split()).removeprefix("error: ")
        return said if result.exit_code == 2 else ""
    path, body = {
        "approve": ("/runs/r1/phases/greet/approve", {}),
        "reject": ("/runs/r1/phases/greet/reject", {"note": "no"}),
        "cancel": ("/runs/r1/cancel", {}),
    }[what]
    response = client.post(path, headers=auth, json=body)
    assert response.status_code in (200, 202, 409), response.text
    return response.json()["error"]["message"] if response.status_code == 409 else ""


@pytest.mark.parametrize("entry", ["cli", "api"])
def test_every_entry_point_answers_and_refuses_through_the_same_commands(
    tmp_path: Path, entry: str
) -> None:
    repo, script = make_repo(tmp_path)
    api = create_app(ApiConfig(repo=repo, model_override=f"scripted:{script}"))
    store = api.state.ctx.rt.store
    _, secret = create_key(store.engine, "operator", "operate")
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(api) as client:
        assert client.post("/runs/start", headers=auth, json=PLAN).status_code == 201

        def waiting() -> bool:
            return store.view("r1").phases["greet"].state is PhaseState.AWAITING_APPROVAL

        until(waiting, "the protected path waits for a person")
        assert store.view("r1").state is RunState.RUNNING
        assert answer(entry, client, auth, repo, "approve") == ""
        until(lambda: store.view("r1").state is RunState.SUCCEEDED, "the run lands")
        refusals = {what: answer(entry, client, auth, repo, what) for what in COMMANDS}
    granted = [e for e in store.events("r1") if e.type == "approval_granted"]
    assert len(granted) == 1
    view = store.view("r1")
    assert git.git(repo, "show", f"{view.branch}:{WORKFLOW}") == "on: push"
    assert refusals == {
        "approve": "phase 'greet' of r1 is COMPLETE, not waiting for approval",
        "reject": "phase 'greet' of r1 is COMPLETE, not waiting for approval",
        "cancel": "run r1 has already ended (SUCCEEDED)",
    }


def test_only_the_commands_module_writes_answers_cancels_and_pauses() -> None:
    """No module but ``engine/commands.py`` constructs those events (the contract the
    tests above rely on: a new entry point cannot drift)."""
    source = Path(autopack.__file__).parent
    found = []
    for path in sorted(source.rglob("*.py")):
        if path.name == "events.py" or path.relative_to(source).as_posix() == "engine/commands.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in WRITERS:
                found.append(f"{path.relative_to(source)}:{node.lineno} {node.func.id}")  # type: ignore[attr-defined]
    assert found == []


AUTOPILOT_WRITERS = ("PlanApproved", "PlanRejected", "AutopilotStopRequested")


def test_only_the_autopilot_commands_write_plan_answers_and_stop_requests() -> None:
    """Likewise for autopilots: a plan's approval (a person's or the policy's), its
    rejection and a stop request are built in ``autopilot/commands.py`` only."""
    source = Path(autopack.__file__).parent
    found = []
    for path in sorted(source.rglob("*.py")):
        if path.name == "events.py" or path.relative_to(source).as_posix() == (
            "autopilot/commands.py"
        ):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = getattr(getattr(node, "func", None), "id", None)
            if isinstance(node, ast.Call) and name in AUTOPILOT_WRITERS:
                found.append(f"{path.relative_to(source)}:{node.lineno} {name}")
    assert found == []
    commands = (source / "autopilot/commands.py").read_text()
    assert all(f"{writer}(" in commands for writer in AUTOPILOT_WRITERS)
