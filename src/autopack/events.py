"""Typed events: the append-only record of everything a run did.

An :class:`Event` is the envelope the store keeps (run, sequence number, time, type,
payload). Each payload type below documents one fact; run and phase state are
derived from them by :mod:`autopack.projection` and nowhere else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

STEPS: tuple[str, ...] = ("build", "apply", "verify", "audit", "gate", "commit")
"""The pipeline of one phase attempt, in order."""


class Payload(BaseModel):
    """Base of every event payload; ``TYPE`` is the event's name in the log."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str] = ""


class RunCreated(Payload):
    """A validated plan became a run against a repository."""

    TYPE: ClassVar[str] = "run_created"
    plan: dict[str, Any]
    plan_digest: str
    plan_source: str
    repo: str
    base_commit: str
    branch: str
    settings: dict[str, Any] = Field(default_factory=dict)


class RunStarted(Payload):
    """An executor took the run (first start or resume)."""

    TYPE: ClassVar[str] = "run_started"
    executor: str
    resumed: bool = False


class RunFinished(Payload):
    """The run reached SUCCEEDED, FAILED or CANCELLED."""

    TYPE: ClassVar[str] = "run_finished"
    state: str
    reason: str = ""


class RunPaused(Payload):
    """The run stopped without finishing (Ctrl-C, lost executor); it can be resumed."""

    TYPE: ClassVar[str] = "run_paused"
    reason: str = ""


class CancelRequested(Payload):
    """A person asked the run to stop at the next safe point."""

    TYPE: ClassVar[str] = "cancel_requested"
    reason: str = ""


class PhaseStarted(Payload):
    """An attempt of a phase began, from a base commit of the run branch."""

    TYPE: ClassVar[str] = "phase_started"
    phase_id: str
    attempt: int
    base_commit: str
    models: dict[str, str] = Field(default_factory=dict)
    rebase_tree: str = ""
    """Set when the attempt re-lands the previous attempt's change, merged onto a run
    branch that moved: no new Builder work, verification and the gate run again."""


class StepStarted(Payload):
    """A step of an attempt began (used for the live view and crash diagnosis)."""

    TYPE: ClassVar[str] = "step_started"
    phase_id: str
    attempt: int
    step: str


class StepCompleted(Payload):
    """A step of an attempt finished; ``result`` is what resume relies on instead of redoing it."""

    TYPE: ClassVar[str] = "step_completed"
    phase_id: str
    attempt: int
    step: str
    result: dict[str, Any]


class ModelCalled(Payload):
    """One model call went through the door: what it cost."""

    TYPE: ClassVar[str] = "model_called"
    phase_id: str | None = None
    attempt: int | None = None
    role: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: int = 0
    usage_fault: str = ""
    cache_read_tokens: int = 0
    """Part of ``input_tokens`` read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Part of ``input_tokens`` written to the provider's prompt cache."""
    """How the provider's reported usage broke the request's limits (then the call is
    charged within its reservation); empty when the report was plausible."""


class ModelRetrying(Payload):
    """A model call failed for a reason a retry may cure (rate limit, overload, timeout,
    dropped connection); the door waits ``delay_s`` before retry ``retry`` of ``max_retries``."""

    TYPE: ClassVar[str] = "model_retrying"
    phase_id: str | None = None
    attempt: int | None = None
    role: str
    model: str
    retry: int
    max_retries: int
    delay_s: float
    reason: str


class McpCalled(Payload):
    """The Builder called a tool of an MCP server (served from the cassette on replay)."""

    TYPE: ClassVar[str] = "mcp_called"
    phase_id: str
    attempt: int
    server: str
    tool: str
    is_error: bool
    """The server answered with an error, refused the call, or did not answer in time."""
    detail: str = ""
    """Why it is an error, in one line; empty when it is not."""
    duration_ms: int = 0
    replayed: bool = False


class ContextCondensed(Payload):
    """The Builder's conversation would have passed its context budget: older tool results
    were condensed to a note of what was dropped (the call they answer stays)."""

    TYPE: ClassVar[str] = "context_condensed"
    phase_id: str
    attempt: int
    step: int
    """The Builder step whose request was condensed."""
    condensed: list[str]
    """One line per condensed tool result: the tool call it answered."""
    tokens_before: int
    tokens_after: int
    budget: int
    """Prompt tokens the conversation must stay within (the model's context window less
    the reply it may write)."""


class PhaseFailed(Payload):
    """A phase ended without landing."""

    TYPE: ClassVar[str] = "phase_failed"
    phase_id: str
    attempt: int
    reason: str


class PhaseSkipped(Payload):
    """A phase was not attempted because what it needs did not land."""

    TYPE: ClassVar[str] = "phase_skipped"
    phase_id: str
    reason: str


class ApprovalGranted(Payload):
    """A person approved a phase that waited for approval."""

    TYPE: ClassVar[str] = "approval_granted"
    phase_id: str
    attempt: int
    note: str = ""
    by: str = ""


class ApprovalRejected(Payload):
    """A person rejected a waiting phase; ``fail`` ends it, otherwise the note is feedback."""

    TYPE: ClassVar[str] = "approval_rejected"
    phase_id: str
    attempt: int
    note: str
    by: str = ""
    fail: bool = False


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        RunCreated,
        RunStarted,
        RunFinished,
        RunPaused,
        CancelRequested,
        PhaseStarted,
        StepStarted,
        StepCompleted,
        ModelCalled,
        ModelRetrying,
        McpCalled,
        ContextCondensed,
        PhaseFailed,
        PhaseSkipped,
        ApprovalGranted,
        ApprovalRejected,
    )
}


# -- the autopilot's log (one per autopilot, beside the runs' logs) ----------------


class AutopilotStarted(Payload):
    """An autopilot began on its own branch from ``base_commit``, for one intention."""

    TYPE: ClassVar[str] = "autopilot_started"
    repo: str
    branch: str
    base_commit: str
    intention_source: str
    intention_digest: str
    """sha256 of the intention file's text: which intention this autopilot serves."""
    budget: dict[str, Any]
    """The intention's total budget (tokens, cost_usd, model_calls caps)."""
    iterations: int
    """At most this many iterations."""
    auto_approve: bool
    model: str | None = None


class IterationBegan(Payload):
    """An iteration scanned the autopilot branch's tip and found gaps to close."""

    TYPE: ClassVar[str] = "iteration_began"
    iteration: int
    tip: str
    gaps: int
    counts: dict[str, int]
    keys: list[list[str]]
    """Every gap's identity (kind, path, key): what a later scan compares against."""


class PlanDrafted(Payload):
    """The Planner drafted the iteration's plan; the run it becomes is ``run_id``."""

    TYPE: ClassVar[str] = "plan_drafted"
    iteration: int
    plan: dict[str, Any]
    plan_digest: str
    plan_path: str
    run_id: str
    tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    """What the Planner's calls cost."""


class PlanApprovalRequested(Payload):
    """The policy did not approve the plan: it waits for a person."""

    TYPE: ClassVar[str] = "plan_approval_requested"
    iteration: int
    reasons: list[str]


class PlanApproved(Payload):
    """The iteration's plan may run: by policy (``auto``) or by a person."""

    TYPE: ClassVar[str] = "plan_approved"
    iteration: int
    by: str
    auto: bool = False
    note: str = ""


class PlanRejected(Payload):
    """A person turned the iteration's plan down; the autopilot stops."""

    TYPE: ClassVar[str] = "plan_rejected"
    iteration: int
    by: str
    note: str


class IterationRunFinished(Payload):
    """The iteration's run ended (or stopped to wait for a person: ``state`` RUNNING)."""

    TYPE: ClassVar[str] = "iteration_run_finished"
    iteration: int
    run_id: str
    state: str
    tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0


class IterationEnded(Payload):
    """The iteration is over: where the branch stands and the gaps it closed."""

    TYPE: ClassVar[str] = "iteration_ended"
    iteration: int
    tip: str
    landed: bool
    """The autopilot branch moved to the run's result."""
    closed: int
    """Gaps of the iteration's scan no longer found at the new tip."""
    gaps: int
    counts: dict[str, int]
    keys: list[list[str]]
    detail: str = ""


class AutopilotStopRequested(Payload):
    """A person asked the autopilot to stop at its next safe point."""

    TYPE: ClassVar[str] = "autopilot_stop_requested"
    by: str


class AutopilotStopped(Payload):
    """The autopilot ended; ``reason`` is one of :data:`STOP_REASONS`."""

    TYPE: ClassVar[str] = "autopilot_stopped"
    reason: str
    detail: str = ""
    iterations: int = 0


STOP_REASONS: tuple[str, ...] = (
    "criteria met",
    "iterations spent",
    "budget spent",
    "no progress",
    "needs a person",
    "stopped by a person",
)

AUTOPILOT_PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        AutopilotStarted,
        IterationBegan,
        PlanDrafted,
        PlanApprovalRequested,
        PlanApproved,
        PlanRejected,
        IterationRunFinished,
        IterationEnded,
        AutopilotStopRequested,
        AutopilotStopped,
    )
}


class AutopilotEvent(BaseModel):
    """One entry of an autopilot's log. ``seq`` and ``ts`` are assigned by the store."""

    model_config = ConfigDict(frozen=True)
    autopilot_id: str
    seq: int = 0
    ts: str = ""
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, autopilot_id: str, payload: Payload) -> AutopilotEvent:
        data = payload.model_dump(mode="json")
        return cls(autopilot_id=autopilot_id, type=payload.TYPE, data=data)

    def payload(self) -> Payload:
        """The typed payload; raises ``KeyError`` for an unknown event type."""
        return AUTOPILOT_PAYLOAD_TYPES[self.type].model_validate(self.data)


class Event(BaseModel):
    """One entry of a run's event log. ``seq`` and ``ts`` are assigned by the store."""

    model_config = ConfigDict(frozen=True)
    run_id: str
    seq: int = 0
    ts: str = ""
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, run_id: str, payload: Payload) -> Event:
        return cls(run_id=run_id, type=payload.TYPE, data=payload.model_dump(mode="json"))

    def payload(self) -> Payload:
        """The typed payload; raises ``KeyError`` for an unknown event type."""
        return PAYLOAD_TYPES[self.type].model_validate(self.data)

    @property
    def phase_id(self) -> str | None:
        value = self.data.get("phase_id")
        return value if isinstance(value, str) else None
