"""``autopack serve`` with ``[pr]``: a reviewer's approval on the pull request lands the
phase the served run waits on, and the pull request is updated when the run ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.forge.conftest import TOKEN
from tests.forge.fakeforge import FakeForge
from tests.forge.test_pr_approvals import PLAN, SCRIPT
from typer.testing import CliRunner

from autopack.api import ApiConfig, create_app
from autopack.cli import app
from autopack.engine.create import create_run
from autopack.engine.runtime import Runtime
from autopack.plan import load_plan
from autopack.states import PhaseState, RunState


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.timeout(600)
def test_serve_syncs_approvals_and_updates_the_pull_request_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    repo, remote = tmp_path / "repo", tmp_path / "remote.git"
    (repo / "tests").mkdir(parents=True)
    (repo / "a.py").write_text("A = 1\n")
    (repo / "b.py").write_text("B = 1\n")
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    forge = FakeForge(remote=remote, token=TOKEN).start()
    (repo / "autopack.toml").write_text(
        f'[pr]\nforge = "github"\napi_url = "{forge.url}"\nrepository = "acme/textkit"\n'
        "open_on_finish = true\nsync_approvals = true\npoll_s = 0.2\n"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", str(remote)], check=True)
    subprocess.run(["git", "-C", str(repo), "push", "-q", "origin", "main"], check=True)
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    model = f"scripted:{tmp_path / 'script.yaml'}"
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    rt = Runtime.open(repo, model_override=model)
    create_run(rt, load_plan(tmp_path / "plan.yaml"), plan_source="plan.yaml")

    def waits_after_bump() -> bool:
        phases = Runtime.open(repo).store.view("r1").phases
        landed = phases["bump"].state is PhaseState.COMPLETE
        return landed and phases["tighten"].state is PhaseState.AWAITING_APPROVAL

    config = ApiConfig(repo=repo, no_auth=True, model_override=model)
    try:
        with TestClient(create_app(config)):
            until(waits_after_bump, "tighten waits, bump landed")
            done = CliRunner().invoke(app, ["pr", "r1", "-C", str(repo)])
            assert done.exit_code == 0 and "pull request #1 opened" in done.output, done.output
            assert "Waiting for your approval" in forge.pulls[1]["body"]
            forge.add_review(1, "bob", "APPROVED", "ship it")
            until(
                lambda: "**SUCCEEDED**" in forge.pulls[1]["body"] and len(forge.check_runs) == 2,
                "the pull request and a check run on the landed commit show the end",
            )
        view = Runtime.open(repo).store.view("r1")
        assert view.state is RunState.SUCCEEDED
        assert view.phases["tighten"].approval["by"] == "github:bob"  # type: ignore[index]
        checks = {c["head_sha"]: c for c in forge.check_runs.values()}
        landed = checks[view.phases["tighten"].commit]  # the head when the run ended
        assert landed["conclusion"] == "success", landed
        assert "approved by github:bob" in landed["output"]["title"]
        assert view.phases["tighten"].proof_hash in landed["output"]["summary"]
        waited = checks[view.phases["bump"].commit]  # the head while tighten waited
        assert waited["conclusion"] == "success" and "bump: PASS" in waited["output"]["title"]
        assert len(forge.pulls) == 1
    finally:
        forge.stop()
