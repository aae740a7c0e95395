"""Response and request bodies of the API, so the OpenAPI schema documents every field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RunSummary(BaseModel):
    """One run as lists show it."""

    id: str
    state: str
    goal: str
    repo: str
    branch: str
    reason: str
    phases_total: int
    phases_complete: int
    pending_approvals: int
    tokens: int
    cost_usd: float
    model_calls: int
    created_at: str
    updated_at: str
    last_seq: int


class RunList(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummary]
    total: int = Field(description="Runs matching the filter, over all pages.")
    limit: int
    offset: int


class PhaseSummary(BaseModel):
    """One phase of a run: where it is and what it cost."""

    id: str
    tier: int
    goal: str
    risk: str
    state: str
    attempt: int
    step: str | None
    reason: str
    decision: str = Field(description="The gate's latest decision, empty before the gate ran.")
    proof_hash: str
    commit: str
    tokens: int
    cost_usd: float
    model_calls: int


class TierView(BaseModel):
    id: str
    name: str
    phases: list[PhaseSummary]


class Budget(BaseModel):
    """Caps from the plan (``null``: no cap) next to what was used."""

    caps: dict[str, int | float | None]
    used: dict[str, int | float]


class RunDetail(BaseModel):
    """A run with its tiers and phases."""

    run: RunSummary
    tiers: list[TierView]
    budget: Budget
    cancel_requested: bool
    executing: bool = Field(description="Whether this process is executing the run now.")


class ActivePhase(BaseModel):
    id: str
    state: str
    step: str | None
    attempt: int


class Progress(BaseModel):
    """What a progress bar needs, cheaply."""

    run_id: str
    state: str
    phases_total: int
    phases_complete: int
    pending_approvals: int
    fraction: float = Field(description="Complete phases over all phases.")
    active: list[ActivePhase]
    budget: Budget


class AttemptEvidence(BaseModel):
    """One attempt of a phase: what changed, what the tests said, what was decided."""

    attempt: int
    steps: dict[str, dict[str, Any]]
    diff: str
    test_delta: dict[str, list[str]]
    tests_passed: bool | None
    decision: str
    reasons: list[str]
    audit_issues: list[dict[str, Any]]
    audit_summary: str
    proof_hash: str


class PhaseDetail(BaseModel):
    """A phase with the evidence of one attempt (the latest unless asked)."""

    run_id: str
    phase: PhaseSummary
    cached_tokens: int = 0
    """The phase's input tokens read from a provider's prompt cache (part of its tokens)."""
    uncached_tokens: int = 0
    """The phase's input tokens neither read from nor written to a prompt cache."""
    attempts: list[int]
    evidence: AttemptEvidence | None
    approval: dict[str, Any] | None
    rejection: dict[str, Any] | None


class Approval(BaseModel):
    """A phase waiting for a person."""

    run_id: str
    phase_id: str
    attempt: int
    goal: str
    risk: str
    reasons: list[str]
    waiting_since: str


class ApproveBody(BaseModel):
    note: str = Field("", max_length=4000)


class RejectBody(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="Why; the next attempt sees it.")
    fail: bool = Field(False, description="End the phase instead of trying again.")


class CancelBody(BaseModel):
    reason: str = Field("cancelled from the API", max_length=2000)


class RunAction(BaseModel):
    """The outcome of an action on a run or a phase."""

    run_id: str
    state: str
    phase_id: str | None = None
    phase_state: str | None = None


class LedgerEntry(BaseModel):
    id: str
    kind: str
    date: str
    title: str
    fields: dict[str, str]
    body: str


class LedgerEntries(BaseModel):
    entries: list[LedgerEntry]
    total: int


class MemoryHit(BaseModel):
    id: str
    title: str
    text: str
    score: float
    source: str


class MemoryResults(BaseModel):
    hits: list[MemoryHit]


class WhoAmI(BaseModel):
    key_id: str
    name: str
    scope: str


class IterationSummary(BaseModel):
    """One autopilot iteration: its scan, plan, approval, run and progress."""

    iteration: int
    began_at: str
    tip: str = Field(description="The autopilot branch's commit the iteration scanned.")
    gaps: int
    counts: dict[str, int] = Field(description="Gaps found at the start, per kind.")
    plan_path: str
    plan_digest: str
    run_id: str = Field(description="The run the plan becomes (once approved).")
    approval: str = Field(description='"", "waiting", "approved" or "rejected".')
    reasons: list[str] = Field(description="Why the policy did not approve the plan.")
    decided_by: str
    decided_at: str
    auto_approved: bool
    note: str
    run_state: str
    tokens: int
    cost_usd: float
    model_calls: int
    ended: bool
    landed: bool
    closed: int = Field(description="Gaps of the iteration's scan gone at its end.")
    tip_after: str
    gaps_after: int
    detail: str


class AutopilotSummary(BaseModel):
    """One autopilot as the list shows it."""

    id: str
    state: str = Field(description="RUNNING, AWAITING_APPROVAL or STOPPED.")
    branch: str
    base_commit: str
    intention_source: str
    intention_digest: str
    budget: dict[str, Any]
    max_iterations: int
    auto_approve: bool
    created_at: str
    updated_at: str
    stop_requested_by: str
    stop_reason: str
    stop_detail: str
    tokens: int
    cost_usd: float
    model_calls: int
    runs: list[str]
    iteration_count: int


class AutopilotList(BaseModel):
    autopilots: list[AutopilotSummary]


class AutopilotDetail(AutopilotSummary):
    iterations: list[IterationSummary]


class PlanRejectBody(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="Why; recorded.")


class AutopilotAction(BaseModel):
    """What a person's answer did."""

    id: str
    state: str
    iteration: int | None = None
