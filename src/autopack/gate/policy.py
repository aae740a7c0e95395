"""Policy as code: the package's default YAML, with ``autopack.toml`` ``[gate]`` overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import yaml

from autopack.config import ConfigError, Settings

DECISIONS = ("PASS", "RETRY", "NEEDS_APPROVAL", "BLOCK")


class PolicyError(ConfigError):
    """A policy (or an override) that names an unknown rule, decision or key: a config
    problem (exit 2), found before a run starts."""


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
        if "decision" in body and "unless_approved" not in body:
            rules[rule_id].pop("unless_approved", None)  # follows the new decision
        rules[rule_id].update(body)
    return rules


def _rule(rule_id: str, body: Mapping[str, Any]) -> Rule:
    """One rule, checked: approval lifts exactly the rules that ask for it."""
    decision = str(body["decision"])
    unless_approved = bool(body.get("unless_approved", decision == "NEEDS_APPROVAL"))
    if decision not in DECISIONS:
        raise PolicyError(f"unknown decision {decision!r}; expected one of {DECISIONS}")
    if unless_approved != (decision == "NEEDS_APPROVAL") and decision != "PASS":
        raise PolicyError(
            f"gate rule {rule_id!r}: unless_approved must be "
            f"{'true' if decision == 'NEEDS_APPROVAL' else 'false'} with decision {decision}: "
            "only a phase that waits for a person can be approved, and approving it must "
            "be able to land it"
        )
    return Rule(rule_id, decision, str(body["reason"]), unless_approved)


def load_policy(overrides: Mapping[str, Any] | None = None) -> Policy:
    """The default policy with ``overrides`` (the ``[gate]`` table) applied; validated."""
    data = _merge(default_policy_data(), overrides or {})
    rules = tuple(_rule(rule_id, body) for rule_id, body in data["rules"].items())
    precedence = tuple(data["precedence"])
    for decision in precedence:
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


def policy_for(settings: Settings) -> Policy:
    """The repository's policy: the defaults, its ``[gate]`` overrides, and its top-level
    ``protected_paths`` added to the protected list (adding never unprotects a path)."""
    policy = load_policy(settings.gate.policy_overrides())
    extra = tuple(p for p in settings.protected_paths if p not in policy.protected_paths)
    return replace(policy, protected_paths=policy.protected_paths + extra)
