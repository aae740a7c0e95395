"""``autopack show RUN PHASE`` is read by a person: a summary that fits one screen of
80 columns (test counts against the baseline, the failing tests whole, the gate's
decision and reasons, the diff stat, the edits report when edits were refused), and
``--json`` gives the full evidence as one JSON document."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app

NEWLY_FAILING = "tests/test_stats.py::test_word_count_keeps_hyphenated_words_whole"
PLAN = """\
run: {goal: Edit a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Change a
        scope: {paths: [a.py]}
        tests: {command: "true"}
        max_attempts: 2
"""
SCRIPT = """\
version: 1
replies:
  p:
    builder:
      - |
        a.py
        <<<<<<< SEARCH
        B = 7
        =======
        B = 8
        >>>>>>> REPLACE
      - |
        a.py
        <<<<<<< SEARCH
        A = 1
        =======
        A = 2
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""


def show(repo: Path, *args: str) -> str:
    done = CliRunner().invoke(app, ["show", *args, "-C", str(repo)], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    assert "Traceback" not in done.output
    return done.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    where = tmp_path_factory.mktemp("show") / "demo"
    done = CliRunner().invoke(app, ["demo", "--dir", str(where)])
    assert done.exit_code == 0, done.output
    return where, next((where / ".autopack" / "runs").iterdir()).name


def test_show_summarises_an_attempt_the_gate_sent_back(demo: tuple[Path, str]) -> None:
    repo, run_id = demo
    text = show(repo, run_id, "word-frequencies", "--attempt", "1")
    lines = text.splitlines()
    assert len(lines) <= 40, text
    assert all(len(line) <= 80 for line in lines), text
    assert "RETRY" in text and "tests that passed before now fail" in text
    # the affected tests stop at the proven regression; what they left unrun is named
    assert "2 passed, 1 failed" in text and "baseline: 6 passed" in text
    assert NEWLY_FAILING in lines[lines.index("newly failing (passed before):") + 1]
    assert "1 new tests, 3 affected not run (already failed)" in text
    stat = [line for line in lines if "src/textkit/stats.py" in line]
    assert stat and "+" in stat[0] and "-" in stat[0]
    assert "tests/test_top_words.py" in text
    assert "{" not in text  # no raw JSON


def test_show_json_is_the_full_evidence(demo: tuple[Path, str]) -> None:
    repo, run_id = demo
    data = json.loads(show(repo, run_id, "word-frequencies", "--attempt", "1", "--json"))
    assert data["attempt"] == 1
    assert data["steps"]["gate"]["decision"] == "RETRY"
    assert data["verify"]["delta"]["newly_failing"] == [NEWLY_FAILING]
    assert data["diff"].startswith("diff --git")


def test_show_gives_the_edits_report_when_edits_were_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "script.yaml").write_text(SCRIPT)
    args = ["run", str(tmp_path / "plan.yaml"), "-C", str(repo)]
    done = CliRunner().invoke(app, [*args, "--model", f"scripted:{tmp_path / 'script.yaml'}"])
    assert done.exit_code == 0, done.output
    run_id = next((repo / ".autopack" / "runs").iterdir()).name
    text = show(repo, run_id, "p", "--attempt", "1")
    assert "edits refused" in text
    assert "B = 7" in text or "SEARCH" in text or "not found" in text.lower()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    landed = show(repo, run_id, "p")
    assert "PASS" in landed and "a.py" in landed and "edits refused" not in landed
