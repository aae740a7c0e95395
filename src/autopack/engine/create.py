"""A new run: ``create_run`` turns a validated plan into a stored run (its settings, the
intention's constraints) with its own branch, ready for an executor."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autopack.engine.runtime import Runtime
from autopack.events import RunCreated
from autopack.plan import Plan
from autopack.workspace import git


class RepoProblem(RuntimeError):
    """The target repository cannot host a run (not a git repo, no commits)."""


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"run-{stamp}-{secrets.token_hex(2)}"


def run_created(
    plan: Plan,
    *,
    plan_source: str,
    repo: str,
    base_commit: str,
    branch: str,
    settings: dict[str, Any],
) -> RunCreated:
    """The first event of a run, the same for the local and the Temporal engine."""
    return RunCreated(
        plan=plan.model_dump(mode="json"),
        plan_digest=plan.digest(),
        plan_source=plan_source,
        repo=repo,
        base_commit=base_commit,
        branch=branch,
        settings=settings,
    )


def _intention_settings(repo: Path) -> dict[str, Any]:
    """The constraints of the repository's intention, when it has one, recorded with the
    run so that its gate checks the same constraints on a resume or a replay."""
    from autopack.autopilot.intention import intention_path, load_intention

    path = intention_path(repo)
    if not path.is_file():
        return {}
    constraints = load_intention(path).constraints
    return {"intention_constraints": constraints.model_dump(mode="json")}


def create_run(
    rt: Runtime, plan: Plan, *, plan_source: str, run_id: str | None = None, base: str = "HEAD"
) -> str:
    """Store a run for ``plan`` starting at ``base``, and create its branch."""
    base_commit = git.rev_parse(rt.repo, base)
    if base_commit is None:
        raise RepoProblem(f"{rt.repo}: no commit at {base!r}; commit something first")
    run_id = run_id or plan.run.id or new_run_id()
    created = run_created(
        plan,
        plan_source=plan_source,
        repo=str(rt.repo),
        base_commit=base_commit,
        branch=f"autopack/{run_id}",
        settings={
            "max_parallel": rt.settings.max_parallel,
            "model_override": rt.model_override,
            **_intention_settings(rt.repo),
        },
    )
    rt.store.create_run(run_id, created)
    git.create_branch(rt.repo, created.branch, base_commit)
    git.exclude_state_dir(rt.repo)
    return run_id
