"""What an ended run leaves for the ledgers: :class:`RunSummary`, plain data.

The engine writes one ``.autopack/runs/<run_id>/summary.json`` at run end with these
fields (the JSON shape is documented in ``docs/ledger-format.md``); tidy and the
memory read them back with :func:`load_run_summaries`. Everything here is strings,
numbers and tuples so that the file is the whole contract.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUNS_DIR = Path(".autopack") / "runs"
SUMMARY_FILE = "summary.json"

_EXCEPTION = re.compile(r"\b\w*(?:Error|Exception|Exit)\b|\berror:")
_ERRORISH = re.compile(r"(error|exception|failed|failure|assert|refused|timeout)", re.I)
_VOLATILE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"(?:[\w.-]+/)+([\w.-]+)"), r"\1"),
    (re.compile(r"\d+(?:\.\d+)?"), "N"),
    (re.compile(r"\s+"), " "),
)


class SummaryError(ValueError):
    """A ``summary.json`` that does not describe a run."""


@dataclass(frozen=True)
class AttemptSummary:
    """One attempt of a phase: how it ended and, when it did not pass, why."""

    attempt: int
    outcome: str
    """``pass``, ``retry`` (the gate asked for another attempt) or ``fail``."""
    feedback: str = ""
    """Gate and auditor feedback of an attempt that did not pass."""
    signature: str = ""
    """Failure signature; derived from ``feedback`` by :func:`failure_signature` when empty."""
    change_summary: str = ""
    """What this attempt changed (the Builder's ``finish`` summary)."""
    root_cause: str = ""
    """The Builder's diagnosis of the failure this attempt set out to fix."""
    fix_kind: str = ""
    """Short tag for the kind of change, e.g. ``dependency``, ``import``, ``test``."""

    def failure_signature(self) -> str:
        return self.signature or failure_signature(self.feedback)


@dataclass(frozen=True)
class PhaseSummary:
    """One phase of the run and all its attempts, in order."""

    phase_id: str
    goal: str
    state: str
    """``COMPLETE``, ``FAILED`` or ``SKIPPED``."""
    scope: tuple[str, ...] = ()
    attempts: tuple[AttemptSummary, ...] = ()
    commit: str = ""


@dataclass(frozen=True)
class DecisionRecord:
    """A decision from the Builder's ``finish(decisions)`` or from the Planner."""

    title: str
    context: str
    decision: str
    rationale: str
    alternatives: str
    source: str = "builder"
    phase_id: str = ""


@dataclass(frozen=True)
class TestDelta:
    """Test counts on the run's base commit and on its final commit."""

    __test__ = False  # not a pytest test class, despite the name
    passed_before: int = 0
    passed_after: int = 0
    failed_before: int = 0
    failed_after: int = 0

    def describe(self) -> str:
        gained = self.passed_after - self.passed_before
        return (
            f"tests passing {self.passed_before} -> {self.passed_after} ({gained:+d}), "
            f"failing {self.failed_before} -> {self.failed_after}"
        )


@dataclass(frozen=True)
class RunSummary:
    """An ended run, as the ledgers need it."""

    run_id: str
    goal: str
    status: str
    """``SUCCEEDED``, ``FAILED`` or ``CANCELLED``."""
    ended_at: str
    """ISO 8601 time the run ended; its date is the ledger entries' date."""
    phases: tuple[PhaseSummary, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()
    commits: tuple[str, ...] = ()
    tests: TestDelta = field(default_factory=TestDelta)
    branch: str = ""

    @property
    def date(self) -> str:
        return self.ended_at[:10]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        try:
            return cls(
                run_id=str(data["run_id"]),
                goal=str(data["goal"]),
                status=str(data["status"]),
                ended_at=str(data["ended_at"]),
                phases=tuple(_phase(p) for p in data.get("phases", ())),
                decisions=tuple(DecisionRecord(**d) for d in data.get("decisions", ())),
                commits=tuple(str(c) for c in data.get("commits", ())),
                tests=TestDelta(**data.get("tests", {})),
                branch=str(data.get("branch", "")),
            )
        except (KeyError, TypeError) as exc:
            raise SummaryError(f"not a run summary: {exc}") from exc


def _phase(data: dict[str, Any]) -> PhaseSummary:
    attempts = tuple(AttemptSummary(**a) for a in data.get("attempts", ()))
    return PhaseSummary(
        phase_id=str(data["phase_id"]),
        goal=str(data.get("goal", "")),
        state=str(data["state"]),
        scope=tuple(str(s) for s in data.get("scope", ())),
        attempts=attempts,
        commit=str(data.get("commit", "")),
    )


def load_run_summaries(repo: Path) -> list[RunSummary]:
    """Every ended run's summary under ``.autopack/runs``, oldest end first."""
    runs = []
    for path in sorted((repo / RUNS_DIR).glob(f"*/{SUMMARY_FILE}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SummaryError(f"{path}: {exc}") from exc
        if not isinstance(data, dict):
            raise SummaryError(f"{path}: not a JSON object")
        try:
            runs.append(RunSummary.from_dict(data))
        except SummaryError as exc:
            raise SummaryError(f"{path}: {exc}") from exc
    return sorted(runs, key=lambda run: (run.ended_at, run.run_id))


def failure_signature(feedback: str) -> str:
    """A stable key for a failure: its most error-like line with volatile parts removed.

    An exception line wins over a generic "tests failed". Paths keep their last
    component and numbers and addresses become placeholders, so the same failure met
    in two runs (other line numbers, other temp dirs) gets one key.
    """
    lines = [line.strip() for line in feedback.splitlines() if line.strip()]
    if not lines:
        return ""
    line = next(
        (line for pattern in (_EXCEPTION, _ERRORISH) for line in lines if pattern.search(line)),
        lines[0],
    )
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    return line.strip()[:160]
