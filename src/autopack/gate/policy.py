"""Policy as code: the package's default YAML, with ``autopack.toml`` ``[gate]`` overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

DECISIONS = ("PASS", "RETRY", "NEEDS_APPROVAL", "BLOCK")


class PolicyError(ValueError):
    """A policy (or an override) that names an unknown rule, decision or key."""


@dataclass(frozen=True)
class Rule:
    """When fact ``id`` holds, ``decision`` applies (lifted by approval if so marked)."""

    id: str
    decision: str
    reason: str
    unless_approved: bool = False


@dataclass(frozen=True)
class Policy:
    """The gate's whole configuration."""

    rules: tuple[Rule, ...]
    precedence: tuple[str, ...]
    risk_threshold: int
    protected_paths: tuple[str, ...]
    sensitive_paths: tuple[str, ...]

    def rule(self, rule_id: str) -> Rule:
        return next(rule for rule in self.rules if rule.id == rule_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "precedence": list(self.precedence),
            "risk_threshold": self.risk_threshold,
            "protected_paths": list(self.protected_paths),
            "sensitive_paths": list(self.sensitive_paths),
            "rules": {
                r.id: {
                    "decision": r.decision,
                    "reason": r.reason,
                    "unless_approved": r.unless_approved,
                }
                for r in self.rules
            },
        }


def _rule_body(rule: Rule) -> dict[str, Any]:
    return {
        "decision": rule.decision,
        "reason": rule.reason,
        "unless_approved": rule.unless_approved,
    }


def default_policy_data() -> dict[str, Any]:
    text = resources.files("autopack.gate").joinpath("policy.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if key not in base:
            raise PolicyError(f"unknown gate setting {key!r}; known: {sorted(base)}")
        if key == "rules":
            merged["rules"] = _merge_rules(base["rules"], value)
        else:
            merged[key] = value
    return merged


def _merge_rules(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    rules = {rule_id: dict(body) for rule_id, body in base.items()}
    for rule_id, body in overrides.items():
        if rule_id not in rules:
            raise PolicyError(f"unknown gate rule {rule_id!r}; known: {sorted(rules)}")
        rules[rule_id].update(body)
    return rules


def load_policy(overrides: Mapping[str, Any] | None = None) -> Policy:
    """The default policy with ``overrides`` (the ``[gate]`` table) applied; validated."""
    data = _merge(default_policy_data(), overrides or {})
    rules = tuple(
        Rule(rule_id, str(body["decision"]), str(body["reason"]), bool(body.get("unless_approved")))
        for rule_id, body in data["rules"].items()
    )
    precedence = tuple(data["precedence"])
    for decision in [*precedence, *(rule.decision for rule in rules)]:
        if decision not in DECISIONS:
            raise PolicyError(f"unknown decision {decision!r}; expected one of {DECISIONS}")
    if set(precedence) != set(DECISIONS):
        raise PolicyError(f"precedence must order all of {DECISIONS}")
    return Policy(
        rules=rules,
        precedence=precedence,
        risk_threshold=int(data["risk_threshold"]),
        protected_paths=tuple(data["protected_paths"]),
        sensitive_paths=tuple(data["sensitive_paths"]),
    )
