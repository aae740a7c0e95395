"""Replay: run a recorded run again from its plan and starting commit, with every model
reply served from its cassette, and compare what each phase landed.

A replay that cannot finish (it asked for something the cassette does not hold, or its
executor stopped otherwise) is ended FAILED with the reason, and its branch and
worktrees are removed: there is nothing to resume, and nothing of it may linger in the
user's repository. Its run folder stays, with the reason and the diff.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace

from autopack.engine.create import RepoProblem, create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.events import RunFinished
from autopack.llm.errors import ReplayDivergence
from autopack.states import RUN_TERMINAL, RunState
from autopack.workspace import git


@dataclass(frozen=True)
class PhaseComparison:
    phase_id: str
    original_tree: str
    replay_tree: str

    @property
    def same(self) -> bool:
        return bool(self.original_tree) and self.original_tree == self.replay_tree


@dataclass(frozen=True)
class ReplayResult:
    run_id: str
    state: RunState
    phases: list[PhaseComparison]

    @property
    def identical(self) -> bool:
        return self.state is RunState.SUCCEEDED and all(p.same for p in self.phases)


def replay(rt: Runtime, run_id: str) -> ReplayResult:
    """Re-execute ``run_id`` on a fresh branch from its base commit, offline."""
    original = rt.store.view(run_id)
    cassette = rt.run_dir(run_id) / "cassette.jsonl"
    if not cassette.exists():
        raise RepoProblem(f"run {run_id} has no cassette at {cassette}")
    replay_rt = replace(
        rt, model_override=original.settings.get("model_override"), replay_from=cassette
    )
    taken = {row.id for row in rt.store.list_runs(limit=10_000)}
    number = next(n for n in range(1, 10_000) if f"{run_id}-replay-{n}" not in taken)
    new_id = f"{run_id}-replay-{number}"
    create_run(
        replay_rt,
        original.plan,
        plan_source=original.plan_source,
        run_id=new_id,
        base=original.base_commit,
    )
    try:
        state = LocalExecutor(replay_rt).execute(new_id)
    except Exception as exc:
        _abandon(rt, new_id, exc)
        raise
    replayed = rt.store.view(new_id)
    phases = [
        PhaseComparison(
            phase_id,
            git.commit_tree(rt.repo, phase.commit) if phase.commit else "",
            _tree(rt, replayed.phases[phase_id].commit),
        )
        for phase_id, phase in original.phases.items()
    ]
    return ReplayResult(new_id, state, phases)


def _tree(rt: Runtime, commit: str) -> str:
    return git.commit_tree(rt.repo, commit) if commit else ""


def _abandon(rt: Runtime, run_id: str, exc: BaseException) -> None:
    """End a replay that stopped on ``exc``: FAILED with the reason, no branch, no worktree."""
    view = rt.store.view(run_id)
    for phase_id in view.phases:
        git.remove_worktree(rt.repo, rt.worktree(run_id, phase_id))
    shutil.rmtree(rt.state_dir / "worktrees" / run_id, ignore_errors=True)
    git.git(rt.repo, "update-ref", "-d", f"refs/heads/{view.branch}", check=False)
    if view.state not in RUN_TERMINAL:
        diverged = any(isinstance(e, ReplayDivergence) for e in _chain(exc))
        what = "replay diverged" if diverged else f"replay stopped ({type(exc).__name__})"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{what}: {first_line}".rstrip(": ")
        rt.store.append(run_id, RunFinished(state=RunState.FAILED.value, reason=reason))


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found
