"""The Planner drafts a valid plan, repairs it from validation errors, and gives up in bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from roles_helpers import Calls, scripted

from autopack.llm.door import ModelDoor
from autopack.plan import PlanError
from autopack.roles import draft_plan
from autopack.roles.planner import planner_prompt

VALID = """run:
  goal: Greet people
tiers:
  - id: t1
    phases:
      - id: greet
        goal: Add greet()
        scope: {paths: ["src/app/**"]}
        deliverables: [src/app/greet.py]
"""
INVALID = VALID.replace("deliverables: [src/app/greet.py]", "deliverables: [docs/greet.md]")


def test_a_valid_draft_is_returned_as_a_plan(worktree: Path, door: ModelDoor, calls: Calls) -> None:
    model = scripted({"plan": {"planner": [f"Here it is:\n```yaml\n{VALID}```\n"]}})
    plan = draft_plan("Greet people", worktree, door=door, model=model, call_counter=calls)
    assert plan.phase_ids() == ["greet"]
    assert calls.made["planner"] == 1


def test_validation_errors_are_repaired(worktree: Path, door: ModelDoor, calls: Calls) -> None:
    model = scripted({"plan": {"planner": [INVALID, VALID]}})
    plan = draft_plan("Greet people", worktree, door=door, model=model, call_counter=calls)
    assert plan.phase("greet").deliverables == ["src/app/greet.py"]
    assert calls.made["planner"] == 2


def test_repairs_are_bounded(worktree: Path, door: ModelDoor, calls: Calls) -> None:
    model = scripted({"plan": {"planner": [INVALID] * 5}})
    with pytest.raises(PlanError, match=r"outside scope\.paths"):
        draft_plan("x", worktree, door=door, model=model, call_counter=calls, max_repairs=1)
    assert calls.made["planner"] == 2


def test_the_prompt_reads_map_readme_and_ledgers(worktree: Path) -> None:
    (worktree / "docs").mkdir()
    (worktree / "docs/BUILD_HISTORY.md").write_text("## BUILD-007 | 2026-11-20 | Added core\n")
    prompt = planner_prompt("Greet people", worktree)
    assert "Greet people" in prompt
    assert "src/app/core.py" in prompt and "def core()" in prompt
    assert "Says hello." in prompt
    assert "BUILD-007" in prompt
    assert ".git/config" not in prompt
