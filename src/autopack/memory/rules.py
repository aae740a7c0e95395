"""Learned rules: a failure met in two or more runs and fixed the same way each time.

Candidates are found in the run summaries; a person promotes or retires them
(``autopack rules``). Promoted rules are injected into the Builder's prompt for phases
whose scope overlaps the scopes where the failure was met, and every injection comes
back as a :class:`RuleInjection` for the phase's evidence. The book lives in
``.autopack/rules.json``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from autopack.config import STATE_DIR
from autopack.ledger import RunSummary

RULES_FILE = "rules.json"
MIN_RUNS = 2


class RuleError(ValueError):
    """An unknown rule id or an unreadable rules file."""


@dataclass(frozen=True)
class Rule:
    """A failure signature and the kind of fix that resolved it in several runs."""

    id: str
    signature: str
    fix_kind: str
    fix: str
    runs: tuple[str, ...]
    scope: tuple[str, ...]
    status: str = "candidate"
    """``candidate``, ``promoted`` or ``retired``."""


@dataclass(frozen=True)
class RuleInjection:
    """Evidence that a rule was put into a phase's Builder prompt."""

    rule_id: str
    phase_id: str
    signature: str
    matched_scope: tuple[str, ...]


@dataclass
class RuleBook:
    """All rules of a repository, keyed by id, in id order."""

    path: Path
    rules: dict[str, Rule] = field(default_factory=dict)

    @classmethod
    def load(cls, repo: Path) -> RuleBook:
        path = repo / STATE_DIR / RULES_FILE
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rules = [_rule(item) for item in data["rules"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RuleError(f"{path}: {exc}") from exc
        return cls(path, {rule.id: rule for rule in rules})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"rules": [asdict(rule) for rule in self.rules.values()]}
        self.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def refresh(self, runs: Sequence[RunSummary]) -> list[str]:
        """Add candidates and extend known rules from ``runs``; return the new rule ids."""
        known = {(r.signature, r.fix_kind): r.id for r in self.rules.values()}
        new = []
        for (signature, kind), seen in _fixed_failures(runs).items():
            run_ids = tuple(sorted({run for run, _, _ in seen}))
            scope = tuple(sorted({path for _, paths, _ in seen for path in paths}))
            if (signature, kind) in known:
                rule_id = known[(signature, kind)]
                self.rules[rule_id] = replace(self.rules[rule_id], runs=run_ids, scope=scope)
            elif len(run_ids) >= MIN_RUNS:
                rule_id = f"RULE-{len(self.rules) + 1:03d}"
                self.rules[rule_id] = Rule(rule_id, signature, kind, seen[-1][2], run_ids, scope)
                new.append(rule_id)
        return new

    def set_status(self, rule_id: str, status: str) -> Rule:
        if rule_id not in self.rules:
            raise RuleError(f"no rule {rule_id!r}; `autopack rules list` shows them")
        self.rules[rule_id] = replace(self.rules[rule_id], status=status)
        return self.rules[rule_id]

    def inject(self, phase_id: str, scope_paths: Sequence[str]) -> tuple[str, list[RuleInjection]]:
        """Prompt text with the promoted rules matching the phase's scope, and the evidence."""
        lines, injections = [], []
        for rule in self.rules.values():
            matched = tuple(p for p in scope_paths if any(_overlap(p, s) for s in rule.scope))
            if rule.status != "promoted" or not matched:
                continue
            lines.append(f"- {rule.id}: when you meet `{rule.signature}`, {rule.fix}")
            injections.append(RuleInjection(rule.id, phase_id, rule.signature, matched))
        if not lines:
            return "", []
        head = "Rules learned from earlier runs (follow them unless the task says otherwise):"
        return "\n".join([head, *lines]), injections


def _fixed_failures(
    runs: Sequence[RunSummary],
) -> dict[tuple[str, str], list[tuple[str, tuple[str, ...], str]]]:
    """(signature, fix kind) -> [(run id, phase scope, fix summary)] for every fixed failure."""
    found: dict[tuple[str, str], list[tuple[str, tuple[str, ...], str]]] = {}
    for run in runs:
        for phase in run.phases:
            for index, attempt in enumerate(phase.attempts):
                later = phase.attempts[index + 1 :]
                fixed_by = next((a for a in later if a.outcome == "pass"), None)
                signature = attempt.failure_signature()
                if attempt.outcome == "pass" or fixed_by is None or not fixed_by.fix_kind:
                    continue
                if signature:
                    key = (signature, fixed_by.fix_kind)
                    found.setdefault(key, []).append(
                        (run.run_id, phase.scope, fixed_by.change_summary)
                    )
    return found


def _overlap(path: str, pattern: str) -> bool:
    """Scopes overlap when either glob matches the other or they share a top directory."""
    if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(pattern, path):
        return True
    first, second = PurePosixPath(path).parts, PurePosixPath(pattern).parts
    return len(first) > 1 and len(second) > 1 and first[0] == second[0]


def _rule(item: dict[str, Any]) -> Rule:
    return Rule(**{**item, "runs": tuple(item["runs"]), "scope": tuple(item["scope"])})
