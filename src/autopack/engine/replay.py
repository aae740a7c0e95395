"""Replay: run a recorded run again from its plan and starting commit, with every model
reply served from its cassette, and compare what each phase landed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from autopack.engine import RepoProblem, create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.states import RunState
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
    state = LocalExecutor(replay_rt).execute(new_id)
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
