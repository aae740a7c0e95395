"""Plan, build, tidy, memory, reuse: what one run learned reaches the next run's Builder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import load_plan, parse_plan_text
from autopack.states import RunState

NEXT_PLAN = """\
run: {goal: Count sentences}
tiers:
  - id: more
    phases:
      - id: sentences
        goal: Add textkit.stats.sentence_count; keep word_count and words() as they are
        scope: {paths: [src/textkit/stats.py]}
"""

NEXT_SCRIPT = """\
version: 1
replies:
  sentences:
    builder:
      - |
        src/textkit/stats.py
        <<<<<<< SEARCH
        def char_count(text: str, spaces: bool = True) -> int:
        =======
        def sentence_count(text: str) -> int:
            \"\"\"Sentences end with '.', '!' or '?'.\"\"\"
            return sum(text.count(mark) for mark in ".!?")


        def char_count(text: str, spaces: bool = True) -> int:
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""


def _run(repo: Path, plan_path: Path, script: Path) -> str:
    rt = Runtime.open(repo, model_override=f"scripted:{script}")
    plan = load_plan(plan_path)
    run_id = create_run(rt, plan, plan_source=str(plan_path))
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    return run_id


def test_failure_fixed_in_one_run_is_a_lesson_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = prepare_demo_repo(tmp_path / "repo")
    _, plan, script = demo_files()
    _run(repo, plan, script)

    runner = CliRunner()
    tidied = runner.invoke(app, ["tidy", "--repo", str(repo), "--no-commit"])
    assert tidied.exit_code == 0, tidied.output
    debug_log = (repo / "docs" / "DEBUG_LOG.md").read_text()
    assert "DBG-001" in debug_log and "test_word_count_keeps_hyphenated_words_whole" in debug_log

    indexed = runner.invoke(app, ["memory", "index", "--repo", str(repo)])
    assert indexed.exit_code == 0, indexed.output
    found = runner.invoke(
        app,
        [
            "memory",
            "search",
            "counting words broke for terms joined by dashes",
            "--repo",
            str(repo),
        ],
    )
    assert found.exit_code == 0, found.output
    assert "DBG-001" in found.output

    monkeypatch.setenv("AUTOPACK_SOT_RETRIEVAL_ENABLED", "1")
    (tmp_path / "next.yaml").write_text(NEXT_PLAN)
    (tmp_path / "next-script.yaml").write_text(NEXT_SCRIPT)
    parse_plan_text(NEXT_PLAN)
    run_id = _run(repo, tmp_path / "next.yaml", tmp_path / "next-script.yaml")
    prompt = Runtime.open(repo).run_dir(run_id) / "phases" / "sentences" / "1" / "prompt.txt"
    assert "DBG-001" in prompt.read_text()
