"""``tidy_on_finish``: the run's end records it in the ledgers of its own branch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_helpers import git
from sqlalchemy import select

from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.engine import summary
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.ledger.sync import sot_rows, sync_sot
from autopack.ledger.tidy import TidyError
from autopack.plan import load_plan
from autopack.states import RunState
from autopack.store.sot import sot_entries

LEDGERS = ("BUILD_HISTORY.md", "DEBUG_LOG.md", "ARCHITECTURE_DECISIONS.md")


def _demo_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, str]:
    monkeypatch.setenv("AUTOPACK_TIDY_ON_FINISH", "1")
    repo = prepare_demo_repo(tmp_path / "repo")
    _, plan, script = demo_files()
    rt = Runtime.open(repo, model_override=f"scripted:{script}")
    run_id = create_run(rt, load_plan(plan), plan_source=str(plan))
    return rt, run_id


def _branch_docs(rt: Runtime, branch: str, into: Path) -> Path:
    """The run branch's ledger files, copied out of git into ``into/docs``."""
    (into / "docs").mkdir(parents=True)
    for name in LEDGERS:
        text = git(rt.repo, "show", f"{branch}:docs/{name}")
        (into / "docs" / name).write_text(text + "\n", encoding="utf-8")
    return into


def test_run_end_tidies_onto_the_run_branch_and_mirrors_the_ledgers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, run_id = _demo_run(tmp_path, monkeypatch)
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    branch = rt.store.view(run_id).branch

    subject = git(rt.repo, "log", "-1", "--format=%s", branch)
    touched = git(rt.repo, "show", "--name-only", "--format=", branch).split()
    assert subject.startswith("docs: tidy ledgers (BUILD-001, DBG-001")
    assert set(touched) <= {"README.md", "docs/INDEX.md", *(f"docs/{n}" for n in LEDGERS)}
    debug_log = git(rt.repo, "show", f"{branch}:docs/DEBUG_LOG.md")
    assert "test_word_count_keeps_hyphenated_words_whole" in debug_log
    assert "SOT_SUMMARY_START" in git(rt.repo, "show", f"{branch}:README.md")
    # The user's checkout is not the run branch: it stays as it was.
    assert git(rt.repo, "status", "--porcelain") == ""
    assert not (rt.repo / "docs" / "DEBUG_LOG.md").exists()
    record = json.loads((rt.run_dir(run_id) / "tidy.json").read_text())
    assert record["ok"] and record["commit"] == git(rt.repo, "rev-parse", branch)

    expected = sot_rows(_branch_docs(rt, branch, tmp_path / "copy"), rt.repo.name)
    with rt.store.engine.connect() as conn:
        stored = conn.execute(
            select(sot_entries.c.entry_id, sot_entries.c.content_hash).where(
                sot_entries.c.project == rt.repo.name
            )
        ).all()
    assert sorted(stored) == sorted((row.entry_id, row.content_hash) for row in expected)
    again = sync_sot(rt.store.engine, tmp_path / "copy", rt.repo.name)
    assert (again.inserted, again.updated) == (0, 0)


def test_a_failed_tidy_does_not_change_how_the_run_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, run_id = _demo_run(tmp_path, monkeypatch)

    def frozen(*_: object) -> None:
        raise TidyError("docs are frozen")

    monkeypatch.setattr(summary, "tidy", frozen)
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED

    branch = rt.store.view(run_id).branch
    record = json.loads((rt.run_dir(run_id) / "tidy.json").read_text())
    assert not record["ok"] and "docs are frozen" in record["error"]
    assert (rt.run_dir(run_id) / "summary.json").is_file()
    assert "tidy" not in git(rt.repo, "log", "-1", "--format=%s", branch)
    assert len(git(rt.repo, "worktree", "list").splitlines()) == 1  # the tidy one is gone


def test_the_repository_hooks_never_run_for_autopacks_own_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook would run, outside the sandbox, whatever the landed tree tells it to (a
    pre-commit configuration the Builder wrote): the tidy commit runs none."""
    rt, run_id = _demo_run(tmp_path, monkeypatch)
    marker = tmp_path / "hook-ran"
    for name in ("pre-commit", "commit-msg", "post-commit", "reference-transaction"):
        hook = rt.repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\nexit 1\n")
        hook.chmod(0o755)
    assert LocalExecutor(rt).execute(run_id) is RunState.SUCCEEDED
    record = json.loads((rt.run_dir(run_id) / "tidy.json").read_text())
    assert record["ok"], record
    assert not marker.exists()
