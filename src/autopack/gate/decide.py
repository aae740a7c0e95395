"""The decision: facts derived from the evidence, matched against the policy's rules.

``decide`` is pure: the same evidence and policy always give the same decision, so a
replayed run decides exactly as the original did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from autopack.gate.policy import Policy
from autopack.gate.risk import RiskReport
from autopack.verify.attempt import VerifyEvidence
from autopack.verify.checks import CheckResult

LISTED = 5


@dataclass
class GateEvidence:
    """Everything the gate decides from."""

    apply_ok: bool
    edits_report: dict[str, Any]
    verify: VerifyEvidence | None
    checks: list[CheckResult]
    risk: RiskReport
    audit: dict[str, Any] | None = None
    approved: bool = False
    """A person approved this attempt: the rules marked ``unless_approved`` are lifted."""
    intention_violations: list[str] = field(default_factory=list)
    """Constraints of the project's intention the change breaks (frozen paths, declared
    dependencies, public names), checked on the attempt's tree against its base."""


@dataclass(frozen=True)
class GateDecision:
    """The decision, why, and which rules fired."""

    decision: str
    reasons: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - LISTED} more)" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def _verify_facts(evidence: VerifyEvidence | None) -> dict[str, list[str]]:
    if evidence is None:
        return {}
    delta = evidence.delta
    incomplete = [] if evidence.passed or delta.blocking else ["full suite not run"]
    return {
        "new_failures": delta.newly_failing,
        "tests_missing": delta.missing,
        "tests_unstable": delta.unstable,
        "fail_to_pass_failing": delta.fail_to_pass_failing,
        "collection_errors": delta.collection_errors,
        "test_run_errors": delta.run_errors,
        "hidden_tests_failing": delta.hidden_failing,
        "test_runner_tampered": delta.runner_tampered,
        "verification_incomplete": incomplete,
        "test_config_changed": delta.config_changed,
        "edited_tests_failing": delta.edited_failing,
    }


def _audit_facts(audit: Mapping[str, Any] | None) -> dict[str, list[str]]:
    verdict = (audit or {}).get("verdict")
    summary = [str((audit or {}).get("summary", ""))]
    return {
        "audit_reject": summary if verdict == "reject" else [],
        "audit_request_changes": summary if verdict == "request_changes" else [],
    }


def _apply_failure(report: Mapping[str, Any]) -> str:
    """Why nothing applied, with the edits engine's per-hunk report when it made one, so
    the retry feedback, ``autopack show``, the dashboard and the ledger all carry it."""
    why = report.get("refusal") or report.get("builder_error")
    return "edits refused or failed to apply" + (f"\n{why}" if why else "")


def _tests_edited(evidence: GateEvidence) -> list[str]:
    """Existing test files changed in any way (appending counts: a test of the same name
    shadows the real one), from the diff and from what the verification tree put back."""
    risk = evidence.risk
    paths = risk.paths_of("test_edited") + risk.paths_of("test_deleted")
    if evidence.verify is not None:
        paths += evidence.verify.delta.tests_edited
    return sorted(set(paths))


def facts(evidence: GateEvidence, policy: Policy) -> dict[str, list[str]]:
    """Each fact the rules can name, with the details that make it hold (empty = not)."""
    risk = evidence.risk
    found = {
        "apply_failed": [] if evidence.apply_ok else [_apply_failure(evidence.edits_report)],
        "checks_failed": [f"{c.name}: {c.detail}" for c in evidence.checks if not c.passed],
        "tests_edited": _tests_edited(evidence),
        "protected_path": risk.paths_of("protected_path"),
        "source_refers_to_test_runner": risk.paths_of("runner_reference"),
        "intention_violated": evidence.intention_violations,
        "risk_above_threshold": (
            [f"score {risk.score} > {policy.risk_threshold}"]
            if risk.score > policy.risk_threshold
            else []
        ),
        **_verify_facts(evidence.verify),
        **_audit_facts(evidence.audit),
    }
    return found


def decide(evidence: GateEvidence, policy: Policy) -> GateDecision:
    """The strongest decision among the rules whose facts hold, with every reason."""
    found = facts(evidence, policy)
    fired, lifted = [], []
    for rule in policy.rules:
        details = found.get(rule.id, [])
        if not details or rule.decision == "PASS":
            continue
        if rule.unless_approved and evidence.approved:
            lifted.append(f"{rule.reason}: {_listed(details)}")
            continue
        fired.append((rule, details))
    if not fired:
        reasons = [f"PASS: approved by a person: {reason}" for reason in lifted]
        return GateDecision("PASS", reasons or ["all evidence satisfied the policy"], [])
    strongest = min(policy.precedence.index(rule.decision) for rule, _ in fired)
    decision = policy.precedence[strongest]
    ordered = sorted(fired, key=lambda pair: policy.precedence.index(pair[0].decision))
    return GateDecision(
        decision,
        [f"{rule.decision}: {rule.reason}: {_listed(details)}" for rule, details in ordered],
        [rule.id for rule, _ in ordered],
    )
