"""The Auditor: reviews one phase's change and returns a schema-validated verdict.

The verdict is advice to the gate, not the decision. High-risk phases are reviewed by
two auditors on different models; when they disagree the stricter verdict stands, so
a second opinion can only make landing harder, never easier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopack.llm.base import Message, Model, ModelRequest, ModelResponse
from autopack.llm.errors import MalformedReply
from autopack.roles.brief import PhaseBrief
from autopack.roles.prompts import bullets, render
from autopack.roles.tokens import clip

if TYPE_CHECKING:
    from autopack.llm.door import ModelDoor

Verdict = Literal["approve", "request_changes", "reject"]
STRICTNESS: dict[str, int] = {"approve": 0, "request_changes": 1, "reject": 2}
DIFF_TOKENS = 16_000
"""Longest diff shown to an auditor; a longer one is cut and marked as cut."""
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class AuditIssue(BaseModel):
    """One concrete problem the auditor found."""

    model_config = ConfigDict(extra="forbid")
    severity: Literal["blocker", "major", "minor", "info"]
    path: str = ""
    line: int = Field(default=0, ge=0)
    message: str = Field(min_length=1)


class AuditVerdict(BaseModel):
    """The reply every auditor must give."""

    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    issues: list[AuditIssue] = Field(default_factory=list)
    summary: str


VERDICT_SCHEMA: dict[str, Any] = AuditVerdict.model_json_schema()


def audit(
    brief: PhaseBrief,
    *,
    diff: str,
    test_delta: dict[str, Any],
    risk: dict[str, Any],
    door: ModelDoor,
    models: Sequence[Model],
    call_counter: Callable[[str], int],
) -> dict[str, Any]:
    """Review the change of ``brief``'s phase; the strictest verdict of its auditors."""
    auditors = choose_auditors(brief.phase.risk, models)
    prompt = auditor_prompt(brief, diff=diff, test_delta=test_delta, risk=risk)
    votes = [(m.spec, _ask(brief, prompt, door, m, call_counter)) for m in auditors]
    result = merge_verdicts(votes)
    if brief.phase.risk == "high" and len(auditors) < 2:
        result["summary"] += " (high risk, but only one auditor model was available)"
    return result


def choose_auditors(risk: str, models: Sequence[Model]) -> list[Model]:
    """One auditor, or for a high-risk phase the first two models with different specs."""
    if not models:
        raise ValueError("audit needs at least one model")
    distinct: dict[str, Model] = {}
    for model in models:
        distinct.setdefault(model.spec, model)
    return list(distinct.values())[:2] if risk == "high" else [models[0]]


def auditor_prompt(
    brief: PhaseBrief, *, diff: str, test_delta: dict[str, Any], risk: dict[str, Any]
) -> str:
    phase = brief.phase
    return render(
        "auditor",
        run_goal=brief.run_goal,
        phase_id=phase.id,
        risk_level=phase.risk,
        goal=phase.goal,
        acceptance=bullets(phase.acceptance_criteria),
        deliverables=bullets(phase.deliverables),
        scope=", ".join(phase.scope.paths),
        test_delta=json.dumps(test_delta, indent=1, sort_keys=True, default=str),
        risk=json.dumps(risk, indent=1, sort_keys=True, default=str),
        diff=clip(diff, DIFF_TOKENS, note="[... diff truncated ...]") or "(empty diff)",
        instructions=brief.instructions or "(none)",
    )


def _ask(
    brief: PhaseBrief,
    prompt: str,
    door: ModelDoor,
    model: Model,
    call_counter: Callable[[str], int],
) -> AuditVerdict:
    """One auditor's verdict. The door checks the JSON schema and repairs once; this
    validates again with the model so a verdict the gate reads is always well-typed."""
    request = ModelRequest(
        messages=(Message(role="user", content=prompt),),
        json_schema=VERDICT_SCHEMA,
        max_tokens=2_048,
        role="auditor",
        phase_id=brief.phase.id,
        attempt=brief.attempt,
        call_index=call_counter("auditor"),
    )
    response: ModelResponse = door.complete(model, request)
    try:
        return parse_verdict(response.text)
    except ValueError as exc:
        message = f"auditor {model.spec} gave no valid verdict: {exc}"
        raise MalformedReply(message, response=response) from exc


def parse_verdict(text: str) -> AuditVerdict:
    """Validate an auditor's reply (bare JSON or one fenced block); ``ValueError`` if bad."""
    match = _FENCE.match(text)
    body = match.group(1) if match else text.strip()
    try:
        return AuditVerdict.model_validate_json(body)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(details) from exc


def merge_verdicts(votes: Sequence[tuple[str, AuditVerdict]]) -> dict[str, Any]:
    """Combine auditors: the strictest verdict stands; issues are pooled without repeats."""
    verdict = max((v.verdict for _, v in votes), key=STRICTNESS.__getitem__)
    issues: list[dict[str, Any]] = []
    for _, vote in votes:
        for issue in vote.issues:
            item = issue.model_dump()
            if item not in issues:
                issues.append(item)
    if len(votes) == 1:
        summary = votes[0][1].summary
    else:
        summary = "\n".join(f"{spec}: {v.verdict}: {v.summary}" for spec, v in votes)
    return {
        "verdict": verdict,
        "issues": issues,
        "summary": summary,
        "auditors": [spec for spec, _ in votes],
        "votes": {spec: v.verdict for spec, v in votes},
    }
