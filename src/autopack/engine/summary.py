"""What an ended run leaves for the ledgers and the memory: ``runs/<id>/summary.json``.

:func:`close_run` is the run's last act: the summary first, then (as configured) tidy
onto the run branch and memory indexing. The run has already ended by then; those
chores may fail without changing that, so a failure is logged and written to
``runs/<id>/tidy.json`` or ``index.json`` instead of raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from autopack.engine.runtime import Runtime
from autopack.ledger.summary import (
    AttemptSummary,
    DecisionRecord,
    PhaseSummary,
    RunSummary,
    SummaryError,
    TestDelta,
)
from autopack.ledger.sync import sync_sot
from autopack.ledger.tidy import TidyError, commit_message, tidy
from autopack.memory.service import MemoryService
from autopack.projection import PhaseView, RunView
from autopack.telemetry import TELEMETRY_FILE, TelemetryError, destination, telemetry_enabled
from autopack.workspace import git

SUMMARY_FILE = "summary.json"
TIDY_FILE = "tidy.json"
INDEX_FILE = "index.json"
CHORE_ERRORS = (TidyError, TelemetryError, git.GitError, SummaryError, SQLAlchemyError, OSError)
"""What an after-run chore may fail with: git, the files, the database. Anything else is
a bug and is raised."""

log = logging.getLogger(__name__)


def close_run(rt: Runtime, view: RunView, ended_at: str) -> RunSummary:
    """Write the ended run's summary, then tidy, index and export telemetry as the settings
    ask (a replay exports nothing: its calls were served from a recorded run's cassette)."""
    summary = run_summary(view, ended_at)
    run_dir = rt.run_dir(view.run_id)
    write_summary(run_dir, summary)
    if rt.settings.tidy_on_finish:
        _chore(run_dir / TIDY_FILE, "tidy", lambda: tidy_run_branch(rt, summary, view.branch))
    if rt.settings.enable_sot_memory_indexing:
        _chore(run_dir / INDEX_FILE, "memory index", lambda: index_memory(rt))
    if rt.replay_from is None and telemetry_enabled(rt.settings.telemetry):
        _chore(run_dir / TELEMETRY_FILE, "telemetry", lambda: export_telemetry(rt, view.run_id))
    return summary


def export_telemetry(rt: Runtime, run_id: str) -> dict[str, Any]:
    """The run's trace and metrics, derived from its events, to the configured OTLP
    endpoint (telemetry is off by default)."""
    where = destination(rt.settings.telemetry)
    from autopack.telemetry.export import export_run, read_cassette

    events, view = rt.store.events(run_id), rt.store.view(run_id)
    return export_run(events, read_cassette(rt.run_dir(run_id)), where, view)


def tidy_run_branch(rt: Runtime, summary: RunSummary, branch: str) -> dict[str, Any]:
    """Record the run in the ledgers of its branch, as one docs commit on that branch.

    The user's checkout is left alone unless it is on the run branch: otherwise tidy
    works in a detached worktree at the branch head and moves the branch to its commit
    (compare-and-swap, so a branch that moved meanwhile is not overwritten). The new
    ledgers are mirrored into ``sot_entries``.
    """
    if git.current_branch(rt.repo) == branch:
        return _tidy_and_commit(rt, rt.repo, summary)
    head = git.rev_parse(rt.repo, f"refs/heads/{branch}")
    if head is None:
        raise TidyError(f"the run branch {branch} does not exist")
    tree = rt.state_dir / "worktrees" / f"{summary.run_id}.tidy"
    git.add_worktree(rt.repo, tree, head)
    try:
        done = _tidy_and_commit(rt, tree, summary)
        if done["commit"]:
            git.move_branch(rt.repo, branch, done["commit"], head)
        return done
    finally:
        git.remove_worktree(rt.repo, tree)


def index_memory(rt: Runtime) -> dict[str, Any]:
    """Index the repository's ledgers and runs into the memory and ``sot_entries``."""
    report = MemoryService.for_repo(rt.repo).index_repo(rt.repo)
    synced = sync_sot(rt.store.engine, rt.repo)
    return {"documents": report.documents, "updated": report.updated, "sot": asdict(synced)}


def _tidy_and_commit(rt: Runtime, tree: Path, summary: RunSummary) -> dict[str, Any]:
    result = tidy(tree, [summary])
    sha = None
    if result.changed:
        git.git(tree, "add", "--", *result.changed_files)
        message = commit_message(result.new_entries)
        git.git(tree, "commit", "--quiet", "-m", message, "--", *result.changed_files)
        sha = git.rev_parse(tree, "HEAD")
    synced = sync_sot(rt.store.engine, tree, rt.repo.name)
    return {"entries": result.new_entries, "commit": sha, "sot": asdict(synced)}


def _chore(record: Path, name: str, action: Callable[[], dict[str, Any]]) -> None:
    """Run one after-run chore; its outcome, good or bad, goes to ``record``."""
    try:
        outcome = {"ok": True, **action()}
    except CHORE_ERRORS as exc:
        log.warning("%s after the run failed: %s", name, exc)
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    record.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_summary(view: RunView, ended_at: str) -> RunSummary:
    """The run's summary, from its projected state alone."""
    phases = tuple(_phase(view, phase) for phase in view.phases.values())
    decisions = tuple(
        _decision(phase.id, item)
        for phase in view.phases.values()
        for attempt in _all_attempts(phase)
        for item in attempt.get("build", {}).get("decisions", [])
        if isinstance(item, dict)
    )
    return RunSummary(
        run_id=view.run_id,
        goal=view.plan.run.goal,
        status=view.state.value,
        ended_at=ended_at,
        phases=phases,
        decisions=decisions,
        commits=tuple(phase.commit for phase in view.phases.values() if phase.commit),
        tests=_tests(view),
        branch=view.branch,
    )


def write_summary(run_dir: Path, summary: RunSummary) -> Path:
    path = run_dir / SUMMARY_FILE
    path.write_text(summary.to_json(), encoding="utf-8")
    return path


def _all_attempts(phase: PhaseView) -> list[dict[str, Any]]:
    """The steps of every attempt that started, the current one even when it recorded no
    step (its Builder or provider failed it before any step completed)."""
    earlier = [entry["steps"] for entry in phase.attempts]
    started = phase.attempt > len(phase.attempts)
    return earlier + ([phase.steps] if phase.steps or started else [])


def _phase(view: RunView, phase: PhaseView) -> PhaseSummary:
    spec = view.plan.phase(phase.id)
    attempts = tuple(
        _attempt(number, steps, phase) for number, steps in enumerate(_all_attempts(phase), start=1)
    )
    return PhaseSummary(
        phase_id=phase.id,
        goal=spec.goal,
        state=phase.state.value,
        scope=tuple(spec.scope.paths),
        attempts=attempts,
        commit=phase.commit,
    )


def _attempt(number: int, steps: dict[str, Any], phase: PhaseView) -> AttemptSummary:
    gate = steps.get("gate", {})
    landed = "commit" in steps and "conflict" not in steps["commit"]
    last = number == len(_all_attempts(phase))
    outcome = "pass" if landed else ("fail" if last and phase.reason else "retry")
    feedback = "" if landed else str(gate.get("feedback") or phase.reason)
    return AttemptSummary(
        attempt=number,
        outcome=outcome,
        feedback=feedback,
        change_summary=str(steps.get("build", {}).get("summary", "")),
    )


def _decision(phase_id: str, item: dict[str, Any]) -> DecisionRecord:
    fields = ("title", "context", "decision", "rationale", "alternatives")
    values = {key: str(item.get(key, "")) for key in fields}
    return DecisionRecord(**values, source="builder", phase_id=phase_id)


def _tests(view: RunView) -> TestDelta:
    """Counts from the first attempt's baseline and the last landed attempt's full run."""
    before = after = None
    for phase in view.phases.values():
        for steps in _all_attempts(phase):
            counts = steps.get("verify", {}).get("counts")
            if counts and before is None:
                before = counts.get("baseline")
            if counts and "commit" in steps:
                after = counts.get("full")
    before, after = before or {}, after or {}
    return TestDelta(
        passed_before=int(before.get("passed", 0)),
        passed_after=int(after.get("passed", 0)),
        failed_before=int(before.get("failed", 0)) + int(before.get("error", 0)),
        failed_after=int(after.get("failed", 0)) + int(after.get("error", 0)),
    )
