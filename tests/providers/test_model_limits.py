"""Limits per model through ``autopack run``: the reply length asked for and the time one
call may take come from ``[models.limits]`` (or the defaults per known model), and a
model that stalls past its time limit ends the attempt as a model failure that says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeserver import FakeServer, Fault, Reply
from test_run_ends import EDIT, PLAN, make_repo, run, status
from typer.testing import CliRunner

from autopack.cli import app
from autopack.llm.limits import LimitTable
from autopack.states import RunState
from autopack.workspace import git

VERDICT = '{"verdict": "approve", "summary": "ok", "issues": []}'


def local_config(server: FakeServer, limits: str = "") -> str:
    return (
        f'[models.providers.local]\nbase_url = "{server.openai_url}"\n'
        '[prices."local:tiny"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n' + limits
    )


def test_a_model_that_stalls_past_its_time_limit_fails_the_attempt_with_the_reason(
    tmp_path: Path,
) -> None:
    limits = '[models.limits."local:tiny"]\ncall_seconds = 1\nmax_output_tokens = 512\n'
    with FakeServer() as server:
        server.default["openai"] = Fault(kind="hang", seconds=30)
        repo = make_repo(tmp_path, local_config(server, limits))
        code, output, view = run(tmp_path, repo, "local:tiny", ", max_attempts: 1")
        bodies = [r.body for r in server.requests]
    assert code == 1, output
    assert view.state is RunState.FAILED
    reason = view.phases["p"].reason
    assert "local:tiny gave no reply within its time limit of 1 s per call (2 tries)" in reason
    assert len(bodies) == 2  # the call and its one retry; then the attempt is over
    assert all(body["max_tokens"] == 512 for body in bodies)
    assert "gave no reply within its time limit" in " ".join(status(repo, view.run_id).split())
    assert view.spend.model_calls == 0  # nothing came back, nothing is charged
    assert git.git(repo, "show", f"{view.branch}:a.py") == "A = 1"


def test_known_models_and_unknown_ones_get_their_own_reply_length(tmp_path: Path) -> None:
    """A local model nobody configured asks for a short reply; a hosted one the default."""
    with FakeServer() as server:
        server.enqueue("openai", Reply(text=EDIT), Reply(text=VERDICT))
        repo = make_repo(tmp_path, local_config(server))
        code, output, _ = run(tmp_path, repo, "local:tiny")
        asked = [r.body["max_tokens"] for r in server.requests]
    assert code == 0, output
    table = LimitTable.default()
    assert asked[0] == table.for_spec("local:tiny").max_output_tokens == 2048
    assert table.for_spec("anthropic:claude-sonnet-4-6").context_window == 200_000
    assert table.for_spec("openai:gpt-4.1-2025-04-14").context_window == 1_047_576
    assert table.for_spec("openai-compatible:qwen").context_window == 32_768


@pytest.mark.parametrize(
    ("setting", "named"),
    [("call_seconds = -1", "call_seconds"), ("max_output = 10", "max_output")],
)
def test_a_bad_limit_is_refused_before_a_run_exists(
    tmp_path: Path, setting: str, named: str
) -> None:
    repo = make_repo(tmp_path, f'[models.limits."local:tiny"]\n{setting}\n')
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN % "")
    result = CliRunner().invoke(app, ["run", str(plan), "-C", str(repo), "--model", "local:tiny"])
    assert result.exit_code == 2, result.output
    assert named in result.output and "autopack.toml" in result.output
    assert "Traceback" not in result.output
    assert not (repo / ".autopack").exists()
