"""Helpers for the roles tests (a uniquely named module, so test folders never collide)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from autopack.llm.scripted import Script, ScriptedModel
from autopack.plan import Phase
from autopack.roles import PhaseBrief


class Calls:
    """The engine's call counter, kept in memory: role -> next call index."""

    def __init__(self) -> None:
        self.made: Counter[str] = Counter()

    def __call__(self, role: str) -> int:
        index = self.made[role]
        self.made[role] += 1
        return index


def scripted(replies: dict[str, dict[str, list[Any]]], name: str = "m") -> ScriptedModel:
    return ScriptedModel(Script.from_data({"version": 1, "replies": replies}), name=name)


def make_phase(**overrides: Any) -> Phase:
    data: dict[str, Any] = {
        "id": "p1",
        "goal": "Add a greeting function",
        "scope": {"paths": ["src/app/**"], "read_only": ["README.md"]},
        "deliverables": ["src/app/greet.py"],
        "acceptance_criteria": ["greet('x') returns 'hello x'"],
    }
    data.update(overrides)
    return Phase.model_validate(data)


def make_brief(**overrides: Any) -> PhaseBrief:
    phase = overrides.pop("phase", None) or make_phase()
    return PhaseBrief(run_goal="Greet people", phase=phase, attempt=1, **overrides)
