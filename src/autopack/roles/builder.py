"""The Builder: a bounded tool loop inside one phase's worktree.

One model call per step. A reply with tool calls runs them (writes through the path
policy, commands through the sandbox) and feeds the results back; ``finish`` ends the
loop. A reply without tool calls is the text protocol: its text holds the edits, which
the engine applies with the edits engine. Steps, wall time and a stuck detector bound
the loop; the door bounds the spend.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from autopack.edits import EditParseError, parse_edits
from autopack.events import ContextCondensed
from autopack.llm.base import Message, Model, ModelRequest, ModelResponse, ToolCall
from autopack.llm.tokens import estimate_prompt_tokens
from autopack.roles.brief import BuildResult, PhaseBrief, StopReason
from autopack.roles.context import Selection, select_context
from autopack.roles.prompts import bullets, render
from autopack.roles.tokens import clip
from autopack.roles.tools import TOOL_SPECS, ExtraTools, Toolbox, ToolLimits, parse_decisions
from autopack.workspace.portable import portable

if TYPE_CHECKING:
    from autopack.edits import PathPolicy
    from autopack.llm.door import ModelDoor
    from autopack.workspace.runner import Sandbox

EDIT_FORMAT = """Edit blocks look like this (SEARCH must match the file exactly, once; an empty
SEARCH creates a new file):

path/to/file.py
<<<<<<< SEARCH
exact lines to replace
=======
new lines
>>>>>>> REPLACE"""
READ_ONLY_TOOLS = frozenset({"read_file", "list_dir", "search"})
"""Tools that change nothing: consecutive calls of these in one reply run together."""
READ_WORKERS = 4
REMINDER = (
    "Your reply had no tool call and no edit blocks. If the phase is done, call finish "
    "with a summary; otherwise carry on with the tools. A second reply like this one ends "
    "the attempt."
)
CONDENSED = "[condensed:"
"""How a condensed tool result starts."""
_EDIT_BLOCK = re.compile(r"[^\n]*\n<<<<<<< SEARCH.*?>>>>>>> REPLACE|```.*?```", re.DOTALL)


@dataclass(frozen=True)
class BuilderLimits:
    """Bounds of one Builder attempt (the door separately bounds tokens and cost)."""

    max_steps: int = 40
    """Model calls per attempt."""
    wall_seconds: float = 1800
    """Elapsed time per attempt, checked after every step."""
    context_tokens: int = 6_000
    """Repo map, scope listing and whole files in the first prompt. The first prompt is
    resent on every step, so it stays lean; the tools fetch the rest on demand."""
    map_share: float = 0.3
    """Part of ``context_tokens`` the repo map may take."""
    max_output_tokens: int = 8_192
    """Longest reply per call (the model's own ``max_output_tokens`` may lower it)."""
    context_window: int | None = None
    """Tokens the model reads per call, prompt plus reply; ``None``: the model's own
    ``context_window`` (``[models.limits]``, else its known default)."""
    condense_to: float = 0.6
    """When the conversation would pass the context budget, older tool results are
    condensed until it takes this share of the budget: condensing seldom, in one go,
    keeps the prompt prefix (and the provider's cache of it) stable between times."""
    keep_recent: int = 4
    """Latest tool results never condensed."""
    run_timeout_s: float = 300
    """Longest a ``run`` command may take."""
    run_output_cap: int = 20_000
    """Bytes of command output kept."""
    observation_tokens: int = 4_000
    """Longest tool result sent back."""
    stuck_repeats: int = 3
    """The same action with the same result this many times in the window means stuck."""
    stuck_window: int = 8
    """How many recent tool calls the stuck detector looks at."""


class StuckDetector:
    """Fires when the same action keeps producing the same result.

    An action and its observation are fingerprinted together: re-reading a file that
    changed, or re-running tests after an edit, is progress; repeating a failing edit
    or an identical command with identical output is not. Alternating loops (A, B, A,
    B, ...) are caught too, because the window counts repeats, not runs.
    """

    def __init__(self, repeats: int, window: int) -> None:
        self.repeats = repeats
        self.recent: deque[str] = deque(maxlen=window)

    def record(self, call: ToolCall, observation: str) -> bool:
        """Note one tool call and its result; ``True`` when the loop is stuck."""
        action = json.dumps([call.name, call.arguments, observation], sort_keys=True, default=str)
        fingerprint = hashlib.sha256(action.encode()).hexdigest()
        self.recent.append(fingerprint)
        return self.recent.count(fingerprint) >= self.repeats


def _groups(calls: list[ToolCall]) -> list[list[ToolCall]]:
    """Calls in order, consecutive read-only ones grouped; every other call alone."""
    groups: list[list[ToolCall]] = []
    for call in calls:
        if call.name in READ_ONLY_TOOLS and groups and groups[-1][0].name in READ_ONLY_TOOLS:
            groups[-1].append(call)
        else:
            groups.append([call])
    return groups


def _has_edits(text: str) -> bool:
    try:
        parse_edits(text)
    except EditParseError:
        return False
    return True


def builder_prompt(brief: PhaseBrief, worktree: Path, limits: BuilderLimits) -> str:
    """The Builder's first prompt for ``brief``; gate feedback is made replay-stable."""
    stable = replace(brief, feedback=portable(brief.feedback, worktree))
    return render_prompt(stable, _selection(brief, worktree, limits))


def _selection(brief: PhaseBrief, worktree: Path, limits: BuilderLimits) -> Selection:
    return select_context(
        brief.phase, worktree, token_budget=limits.context_tokens, map_share=limits.map_share
    )


def render_prompt(brief: PhaseBrief, selection: Selection) -> str:
    """The Builder's first prompt from a brief and an already selected context."""
    phase = brief.phase
    scope = "Write scope: " + ", ".join(phase.scope.paths)
    if phase.scope.read_only:
        scope += "\nRead-only context: " + ", ".join(phase.scope.read_only)
    return render(
        "builder",
        run_goal=brief.run_goal,
        phase_id=phase.id,
        attempt=str(brief.attempt),
        goal=phase.goal,
        description=phase.description.strip() or "(none)",
        acceptance=bullets(phase.acceptance_criteria),
        deliverables=bullets(phase.deliverables),
        scope=scope,
        scope_listing=selection.scope_listing,
        feedback=brief.feedback or "(first attempt)",
        lessons=bullets(brief.lessons),
        instructions=brief.instructions or "(none)",
        repo_map=selection.repo_map,
        context=selection.context,
        edit_format=EDIT_FORMAT,
    )


def build(
    brief: PhaseBrief,
    *,
    worktree: Path,
    policy: PathPolicy,
    sandbox: Sandbox,
    door: ModelDoor,
    model: Model,
    call_counter: Callable[[str], int],
    limits: BuilderLimits = BuilderLimits(),
    extra: ExtraTools | None = None,
    on_condense: Callable[[ContextCondensed], object] = lambda event: None,
) -> BuildResult:
    """Run the Builder for one attempt of a phase and say how it ended.

    ``extra`` tools (the phase's MCP tools) are offered beside the Builder's own; each
    call of one counts against ``max_steps`` as a model call does."""
    prompt = builder_prompt(brief, worktree, limits)
    tool_limits = ToolLimits(limits.run_timeout_s, limits.run_output_cap, limits.observation_tokens)
    model_limits = door.limits.for_spec(model.spec)
    reply = min(limits.max_output_tokens, model_limits.max_output_tokens)
    window = limits.context_window or model_limits.context_window
    limits = replace(limits, max_output_tokens=reply)
    loop = _Loop(brief, prompt, Toolbox(worktree, policy, sandbox, tool_limits), limits, extra)
    budget = max(window - reply, 0)
    started = time.monotonic()
    for step in range(1, limits.max_steps + 1):
        condensed = loop.condense(budget, step)
        if condensed is not None:
            on_condense(condensed)
        response = door.complete(model, loop.request(call_counter("builder")))
        result = loop.advance(response, step)
        if result is not None:
            return result
        if time.monotonic() - started >= limits.wall_seconds:
            return loop.stop(step, "wall_time")
        if step + loop.extra_calls >= limits.max_steps:
            return loop.stop(step, "max_steps")
    return loop.stop(limits.max_steps, "max_steps")


class _Loop:
    """The conversation of one attempt: requests out, tool results back in."""

    def __init__(
        self,
        brief: PhaseBrief,
        prompt: str,
        tools: Toolbox,
        limits: BuilderLimits,
        extra: ExtraTools | None = None,
    ) -> None:
        self.brief = brief
        self.prompt = prompt
        self.tools = tools
        self.limits = limits
        self.extra = extra
        self.specs = TOOL_SPECS + (extra.specs if extra is not None else ())
        self.messages: list[Message] = [Message(role="user", content=prompt)]
        self.stuck = StuckDetector(limits.stuck_repeats, limits.stuck_window)
        self.last_text = ""
        self.used_tools = False
        self.reminded = False

    def request(self, call_index: int) -> ModelRequest:
        return ModelRequest(
            messages=tuple(self.messages),
            tools=self.specs,
            max_tokens=self.limits.max_output_tokens,
            role="builder",
            phase_id=self.brief.phase.id,
            attempt=self.brief.attempt,
            call_index=call_index,
        )

    def condense(self, budget: int, step: int) -> ContextCondensed | None:
        """Condense the oldest tool results when the next request would pass ``budget``.

        The first prompt (goal, acceptance criteria, scope, the gate's feedback) and the
        latest ``keep_recent`` tool results stay verbatim; a condensed result keeps its
        place and its call, so every call still has its answer, and says what was dropped.
        The conversation is a function of the replies alone, so a replay condenses alike.
        """
        before = estimate_prompt_tokens(self.request(0))
        if before <= budget:
            return None
        target = int(budget * self.limits.condense_to)
        results = [i for i, m in enumerate(self.messages) if m.role == "tool"]
        older = results[: max(len(results) - self.limits.keep_recent, 0)]
        calls = {c.id: c for m in self.messages for c in m.tool_calls}
        dropped, total = [], before
        for index in older:
            message = self.messages[index]
            if total <= target or message.content.startswith(CONDENSED):
                continue
            call = calls.get(message.tool_call_id or "")
            what = f"{call.name} {json.dumps(call.arguments, sort_keys=True)}"[:200] if call else ""
            note = (
                f"{CONDENSED} the result of {what or 'this call'} ({len(message.content)} "
                "characters) was dropped to keep the conversation within the model's context "
                "window; call the tool again if you need it]"
            )
            total -= math.ceil(len(message.content) / 3) - math.ceil(len(note) / 3)
            self.messages[index] = replace(message, content=note)
            dropped.append(what)
        if not dropped:
            return None
        return ContextCondensed(
            phase_id=self.brief.phase.id,
            attempt=self.brief.attempt,
            step=step,
            condensed=dropped,
            tokens_before=before,
            tokens_after=estimate_prompt_tokens(self.request(0)),
            budget=budget,
        )

    def advance(self, response: ModelResponse, step: int) -> BuildResult | None:
        """Act on one reply; a result when the attempt is over, else ``None``.

        The calls of one reply run in order, except that consecutive read-only ones run
        together (their results still come back in order) and ``finish`` runs last, after
        every other call of its reply.
        """
        if not response.tool_calls:
            if self.used_tools and not self.reminded and not _has_edits(response.text):
                self.remind(response.text)
                return None
            return self.text_reply(response.text, step)
        self.last_text = response.text or self.last_text
        self.used_tools = True
        self.messages.append(
            Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
        )
        others = [c for c in response.tool_calls if c.name != "finish"]
        for group in _groups(others):
            for call, observation in zip(group, self._dispatch(group), strict=True):
                self.messages.append(
                    Message(role="tool", content=observation, tool_call_id=call.id)
                )
                if self.stuck.record(call, observation):
                    return self.stop(step, "stuck", f"repeated {call.name} without progress")
        for call in response.tool_calls:
            if call.name == "finish":
                summary = str(call.arguments.get("summary", "")).strip()
                decisions = parse_decisions(call.arguments.get("decisions", []))
                return BuildResult("", summary, decisions, step, "finish", self.prompt)
        return None

    @property
    def extra_calls(self) -> int:
        return self.extra.calls if self.extra is not None else 0

    def _dispatch(self, group: list[ToolCall]) -> list[str]:
        """Results of a group of calls, in order; a group of several is read-only tools,
        run together. An MCP tool's call is always alone (its server may change state)."""
        if len(group) == 1:
            return [self._dispatch_one(group[0])]
        with ThreadPoolExecutor(max_workers=min(len(group), READ_WORKERS)) as pool:
            return list(pool.map(self.tools.dispatch, group))

    def _dispatch_one(self, call: ToolCall) -> str:
        if self.extra is None or not self.extra.handles(call.name):
            return self.tools.dispatch(call)
        observation = portable(self.extra.dispatch(call), self.tools.worktree)
        return clip(observation, self.limits.observation_tokens)

    def remind(self, text: str) -> None:
        """A reply with neither tools nor edits in a tool session: one reminder, once."""
        self.reminded = True
        self.last_text = text or self.last_text
        self.messages.append(Message(role="assistant", content=text or "(an empty reply)"))
        self.messages.append(Message(role="user", content=REMINDER))

    def text_reply(self, text: str, step: int) -> BuildResult:
        """The text protocol; after tool use, prose without edits just ends the loop."""
        summary = _EDIT_BLOCK.sub("", text).strip()[:2_000]
        edits = text
        if self.used_tools:
            try:
                parse_edits(text)
            except EditParseError:
                edits = ""  # the tools already wrote; there is nothing left to apply
        return BuildResult(edits, summary, [], step, "text", self.prompt)

    def stop(self, step: int, reason: StopReason, detail: str = "") -> BuildResult:
        summary = f"stopped: {reason}" + (f" ({detail})" if detail else "")
        if self.last_text:
            summary += f"; last note: {self.last_text.strip()[:500]}"
        return BuildResult("", summary, [], step, reason, self.prompt)
