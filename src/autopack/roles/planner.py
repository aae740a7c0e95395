"""The Planner: drafts a plan for a goal from what the repository already says.

It reads the repo map, the README and the ledgers, asks the model for YAML, and
validates the reply with the plan schema. Validation errors go back to the model, with
their lines, for a bounded number of repairs. The draft is only ever written for a
person to review; nothing here runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autopack.llm.base import Message, Model, ModelRequest
from autopack.plan import Plan, PlanError, parse_plan_text
from autopack.roles.instructions import from_checkout, gather
from autopack.roles.prompts import render
from autopack.roles.repomap import repo_map
from autopack.roles.tokens import clip

if TYPE_CHECKING:
    from autopack.llm.door import ModelDoor

MAP_TOKENS = 6_000
README_TOKENS = 3_000
LEDGER_TOKENS = 3_000
LEDGERS = ("BUILD_HISTORY.md", "DEBUG_LOG.md", "ARCHITECTURE_DECISIONS.md")
PLANNER_PHASE = "plan"
"""The ``phase_id`` of planner calls: drafting belongs to no phase of a plan yet."""
_YAML_FENCE = re.compile(r"```(?:ya?ml)?\s*\n(.*?)```", re.DOTALL)


def planner_prompt(goal: str, repo: Path, intention: str = "") -> str:
    """The Planner's prompt: the goal, the project's intention (``.autopack/intention.yaml``
    as YAML, when there is one) and what the repository says about itself."""
    return render(
        "planner",
        goal=goal,
        intention=intention or "(none)",
        repo_map=repo_map(repo, token_budget=MAP_TOKENS),
        readme=_readme(repo),
        ledgers=_ledgers(repo),
        instructions=gather(from_checkout(repo)),
    )


def _readme(repo: Path) -> str:
    for name in ("README.md", "README.rst", "README.txt", "README"):
        path = repo / name
        if path.is_file() and not path.is_symlink():
            return clip(path.read_text(encoding="utf-8", errors="replace"), README_TOKENS)
    return "(none)"


def _ledgers(repo: Path) -> str:
    """The newest part of each ledger (entries are appended, so the tail is the news)."""
    share = LEDGER_TOKENS // len(LEDGERS)
    parts = []
    for name in LEDGERS:
        path = repo / "docs" / name
        if path.is_file() and not path.is_symlink():
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"## docs/{name}\n{_tail(text, share)}")
    return "\n\n".join(parts) or "(none)"


def _tail(text: str, tokens: int) -> str:
    clipped = clip(text[::-1], tokens, note="")[::-1]
    return clipped if clipped == text else "[... older entries omitted ...]" + clipped


def extract_yaml(text: str) -> str:
    """The plan in a reply: the first fenced block if there is one, else the whole text."""
    match = _YAML_FENCE.search(text)
    return match.group(1) if match else text


def draft_plan(
    goal: str,
    repo: Path,
    *,
    door: ModelDoor,
    model: Model,
    call_counter: Callable[[str], int],
    max_repairs: int = 2,
    intention: str = "",
) -> Plan:
    """Draft and validate a plan for ``goal`` within ``intention``; raise the last
    :class:`PlanError` if every repair fails."""
    messages = [Message(role="user", content=planner_prompt(goal, repo, intention))]
    for repair in range(max_repairs + 1):
        request = ModelRequest(
            messages=tuple(messages),
            max_tokens=8_192,
            role="planner",
            phase_id=PLANNER_PHASE,
            attempt=1,
            call_index=call_counter("planner"),
        )
        reply = door.complete(model, request).text
        try:
            return parse_plan_text(extract_yaml(reply), source="draft")
        except PlanError as exc:
            if repair == max_repairs:
                raise
            messages += [
                Message(role="assistant", content=reply),
                Message(role="user", content=_repair_note(exc)),
            ]
    raise AssertionError("unreachable: the last repair returns or raises")


def _repair_note(error: PlanError) -> str:
    listed = "\n".join(f"- line {i.line}: {i.field}: {i.message}" for i in error.issues)
    return (
        f"The plan does not validate:\n{listed}\nReply with the whole corrected plan as YAML only."
    )
