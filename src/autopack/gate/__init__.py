"""The Quality Gate: risk, the policy decision, and the chained phase proof."""

from autopack.gate.decide import GateDecision, GateEvidence, decide, facts
from autopack.gate.policy import Policy, PolicyError, Rule, load_policy
from autopack.gate.proof import (
    NOTES_REF,
    build_proof,
    proof_hash,
    render_feedback,
    verify_proofs,
)
from autopack.gate.risk import RiskItem, RiskReport, score_risk

__all__ = [
    "NOTES_REF",
    "GateDecision",
    "GateEvidence",
    "Policy",
    "PolicyError",
    "RiskItem",
    "RiskReport",
    "Rule",
    "build_proof",
    "decide",
    "facts",
    "load_policy",
    "proof_hash",
    "render_feedback",
    "score_risk",
    "verify_proofs",
]
