"""The Quality Gate: risk, the policy decision, and the chained phase proof."""

from autopack.gate.decide import GateDecision, GateEvidence, decide, facts
from autopack.gate.policy import Policy, PolicyError, Rule, load_policy, policy_for
from autopack.gate.proof import (
    NOTES_REF,
    approved_proof,
    build_proof,
    proof_hash,
    render_feedback,
    verify_proofs,
)
from autopack.gate.risk import RiskItem, RiskReport, score_risk
from autopack.gate.signing import TRAILER as SIGNATURE_TRAILER
from autopack.gate.signing import ProofKey, ProofKeyError, load_key

__all__ = [
    "NOTES_REF",
    "SIGNATURE_TRAILER",
    "GateDecision",
    "GateEvidence",
    "Policy",
    "PolicyError",
    "ProofKey",
    "ProofKeyError",
    "RiskItem",
    "RiskReport",
    "Rule",
    "approved_proof",
    "build_proof",
    "decide",
    "facts",
    "load_key",
    "load_policy",
    "policy_for",
    "proof_hash",
    "render_feedback",
    "score_risk",
    "verify_proofs",
]
