"""What a role is told about a phase, and what the Builder hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autopack.plan import Phase

StopReason = Literal["finish", "text", "max_steps", "stuck", "wall_time"]


@dataclass(frozen=True)
class PhaseBrief:
    """Everything about one phase attempt that goes into a role's prompt."""

    run_goal: str
    phase: Phase
    attempt: int
    feedback: str = ""
    """The previous attempt's gate feedback ("" on the first attempt)."""
    lessons: tuple[str, ...] = ()
    """Retrieved lessons and promoted rules, filled by the memory service."""
    instructions: str = ""
    """The repository's instructions for agents (AGENTS.md, CLAUDE.md, CONVENTIONS.md) as
    of the phase's base commit, each under its path (see :mod:`autopack.roles.instructions`)."""


@dataclass
class BuildResult:
    """The Builder's outcome for one attempt."""

    edits_text: str
    """Edits the engine still applies with the edits engine ("" when tools already wrote)."""
    summary: str
    decisions: list[dict[str, str]]
    """From ``finish(decisions)``: title, context, decision, rationale, alternatives."""
    steps: int
    """Model calls made."""
    stop_reason: StopReason
    prompt: str
    """The first prompt actually sent."""
