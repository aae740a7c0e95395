"""``autopack plan GOAL``: the Planner drafts a plan for a person to review. It never runs it."""

from __future__ import annotations

import itertools
from pathlib import Path

from rich.console import Console

from autopack.autopilot.intention import intention_path, load_intention
from autopack.cli.view import retry_line
from autopack.config import ConfigError, load_settings
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, Spent, choose_model, resolve_model
from autopack.llm.limits import LimitTable
from autopack.llm.pricing import PriceTable
from autopack.plan import plan_to_yaml
from autopack.roles import draft_plan


def _intention_text(repo: Path) -> str:
    """The repository's intention for the Planner ("" without one); an invalid one stops
    the draft with its errors (exit 2) rather than being left out silently."""
    path = intention_path(repo)
    return load_intention(path).prompt_text() if path.exists() else ""


def draft(goal: str, repo: Path, out: Path, model_spec: str | None, console: Console) -> None:
    if out.exists():
        raise ConfigError(f"{out} exists; choose another --out (drafts never overwrite)")
    settings = load_settings(repo)
    models = settings.models.model_dump()
    model = resolve_model(choose_model("planner", "low", 1, models, model_spec), settings=models)
    door = ModelDoor(
        run_id="plan-draft",
        ledger=BudgetLedger(Caps(), {}, Spent(), {}),
        prices=PriceTable.default(settings.prices),
        on_call=lambda call: None,
        on_retry=lambda retry: console.print(retry_line(retry.model_dump()), soft_wrap=True),
        limits=LimitTable.default(models["limits"]),
    )
    counter = itertools.count()
    plan = draft_plan(
        goal,
        repo,
        door=door,
        model=model,
        call_counter=lambda role: next(counter),
        intention=_intention_text(repo),
    )
    out.write_text(plan_to_yaml(plan), encoding="utf-8")
    phases = sum(1 for _ in plan.phases())
    console.print(
        f"wrote {out}: {len(plan.tiers)} tiers, {phases} phases. Review it, then "
        f"`autopack run {out}`.",
        highlight=False,
    )
