"""The phase proof: one JSON evidence bundle per attempt, chained by hash across the run.

Each phase commit on ``autopack/<run_id>`` carries ``Autopack-Phase``,
``Autopack-Proof`` and ``Autopack-Signature`` trailers, and a git note
(``refs/notes/autopack``) holding the proofs of every attempt of that phase, landing
proof last. Each proof names the hash of the previous one, so a clone with notes can
check the whole run from git alone: the chain, that each landing proof's base tree and
diff reproduce its commit's tree, and (with the key, see :mod:`autopack.gate.signing`)
that the landing proof was signed when it landed.

A phase a person approved lands with one more proof: the gated one with the approval
(who, when, note) and the decision the policy gives once approved, chained after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autopack.gate.decide import GateDecision, GateEvidence
from autopack.gate.signing import TRAILER, ProofKey
from autopack.workspace import git

NOTES_REF = "refs/notes/autopack"
PROOF_VERSION = 1
FEEDBACK_TAIL = 1500
CLEAN_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def proof_hash(proof: Mapping[str, Any]) -> str:
    """sha256 of the proof's canonical JSON."""
    return hashlib.sha256(canonical(proof).encode()).hexdigest()


def build_proof(
    *,
    run_id: str,
    phase_id: str,
    attempt: int,
    phase_spec: Mapping[str, Any],
    base_tree: str,
    result_tree: str,
    diff: str,
    evidence: GateEvidence,
    decision: GateDecision,
    prev_proof_hash: str | None,
    models: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
    durations: Mapping[str, float] | None = None,
    approval: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The evidence bundle of one attempt (hash it with :func:`proof_hash`)."""
    return {
        "version": PROOF_VERSION,
        "run_id": run_id,
        "phase_id": phase_id,
        "attempt": attempt,
        "phase_spec_hash": hashlib.sha256(canonical(phase_spec).encode()).hexdigest(),
        "base_tree": base_tree,
        "result_tree": result_tree,
        "apply_ok": evidence.apply_ok,
        "edits_report": evidence.edits_report,
        "diff": diff,
        "tests": evidence.verify.to_dict() if evidence.verify else None,
        "checks": [check.to_dict() for check in evidence.checks],
        "risk": evidence.risk.to_dict(),
        "audit": evidence.audit,
        "intention_violations": list(evidence.intention_violations),
        "decision": decision.to_dict(),
        "approval": dict(approval) if approval else None,
        "models": dict(models or {}),
        "usage": dict(usage or {}),
        "durations": dict(durations or {}),
        "prev_proof_hash": prev_proof_hash,
    }


def approved_proof(
    gated: Mapping[str, Any], approval: Mapping[str, Any], decision: GateDecision
) -> dict[str, Any]:
    """The landing proof of an approved attempt: the gated proof, the person's approval
    and the decision once approved, chained after the gated proof."""
    return {
        **gated,
        "approval": dict(approval),
        "gated_decision": gated["decision"],
        "decision": decision.to_dict(),
        "prev_proof_hash": proof_hash(gated),
    }


def _tests_feedback(tests: Mapping[str, Any] | None) -> list[str]:
    if not tests:
        return []
    delta, lines = tests["delta"], []
    for key, label in (
        ("newly_failing", "Now failing (passed before)"),
        ("fail_to_pass_failing", "Must pass but did not"),
        ("hidden_failing", "Acceptance tests you cannot see fail (make the change general)"),
        ("collection_errors", "Fail to collect"),
        ("run_errors", "Test run problems"),
    ):
        if delta.get(key):
            lines.append(f"{label}: " + ", ".join(delta[key][:10]))
    if delta.get("flaky"):
        lines.append("Flaky (not counted): " + ", ".join(delta["flaky"][:10]))
    run = tests.get("full_run") or tests.get("selected_run")
    if lines and run and run.get("output_tail"):
        lines.append("Test output (tail):\n" + run["output_tail"][-FEEDBACK_TAIL:])
    return lines


def render_feedback(proof: Mapping[str, Any]) -> str:
    """The compact retry feedback the Builder gets: why, and what to look at."""
    decision = proof["decision"]
    lines = [f"Attempt {proof['attempt']} of phase {proof['phase_id']}: {decision['decision']}"]
    lines += [f"- {reason}" for reason in decision["reasons"]]
    refusal = (proof.get("edits_report") or {}).get("refusal")
    if refusal:  # what was refused, and why: the Builder cannot fix what it is not told
        lines.append(str(refusal)[:FEEDBACK_TAIL])
    lines += _tests_feedback(proof.get("tests"))
    for check in proof.get("checks", []):
        if not check["passed"]:
            lines.append(f"Check {check['name']} failed: {check['detail'][:500]}")
    audit = proof.get("audit") or {}
    if audit.get("verdict") in ("reject", "request_changes"):
        lines.append(f"Auditor ({audit['verdict']}): {audit.get('summary', '')}")
        lines += [f"  - {issue}" for issue in audit.get("issues", [])[:10]]
    risky = [i for i in proof["risk"]["items"] if i["kind"] in ("test_edited", "test_deleted")]
    lines += [f"Risk: {i['detail']} in {i['path']}" for i in risky]
    return "\n".join(lines)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return git.run_git(repo, *args)


def _trailer(repo: Path, commit: str, key: str) -> str:
    shown = _git(repo, "log", "-1", f"--format=%(trailers:key={key},valueonly)", commit)
    return shown.stdout.strip()


def _commits(repo: Path, branch: str, base: str | None) -> list[str]:
    spec = f"{base}..{branch}" if base else branch
    listed = _git(repo, "rev-list", "--reverse", "--first-parent", spec)
    if listed.returncode != 0:
        raise ValueError(f"cannot list commits of {spec}: {listed.stderr.strip()}")
    commits = listed.stdout.split()
    if base is None:  # without a base, the run starts at its first phase commit
        while commits and not _trailer(repo, commits[0], "Autopack-Phase"):
            commits.pop(0)
    return commits


def reproduced_tree(repo: Path, base_tree: str, diff: str) -> tuple[str | None, str]:
    """The tree ``diff`` gives applied to ``base_tree``, or ``None`` and why not.

    It runs in a scratch repository that borrows the objects of ``repo`` and reads none
    of its config, attributes or hooks (nor the user's): what the repository says
    cannot change the outcome. New objects land in the scratch repository only.
    """
    objects = _git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if objects.returncode != 0:
        return None, objects.stderr.strip()
    with tempfile.TemporaryDirectory(prefix="autopack-proof-") as scratch:
        env = {
            **os.environ,
            **CLEAN_GIT_ENV,
            "GIT_DIR": scratch,
            "GIT_INDEX_FILE": os.path.join(scratch, "index"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(objects.stdout.strip(), "objects"),
        }
        env.pop("GIT_OBJECT_DIRECTORY", None)
        steps: list[tuple[list[str], str | None]] = [
            (["init", "--quiet", "--bare", scratch], None),
            (["read-tree", base_tree], None),
            (["apply", "--cached", "--binary", "--whitespace=nowarn", "-"], diff),
            (["write-tree"], None),
        ]
        if not diff.strip():
            del steps[2]
        for args, stdin in steps:
            done = subprocess.run(
                ["git", *args], cwd=scratch, input=stdin, env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                return None, f"git {args[0]}: {done.stderr.strip()}"
        return done.stdout.strip(), ""


def _check_commit(
    repo: Path, commit: str, prev: str | None, key: ProofKey | None
) -> tuple[list[str], str | None]:
    """Problems of one phase commit, and the hash its last proof ends the chain with."""
    short = commit[:12]
    phase, trailer = (
        _trailer(repo, commit, "Autopack-Phase"),
        _trailer(repo, commit, "Autopack-Proof"),
    )
    if not phase or not trailer:
        return [f"{short}: missing Autopack-Phase/Autopack-Proof trailers"], prev
    note = _git(repo, "notes", f"--ref={NOTES_REF}", "show", commit)
    if note.returncode != 0:
        return [f"{short}: no proof note under {NOTES_REF}"], prev
    try:
        proofs = json.loads(note.stdout)
    except json.JSONDecodeError:
        return [f"{short}: the proof note is not JSON"], prev
    if not isinstance(proofs, list) or not proofs:
        return [f"{short}: the proof note holds no proofs"], prev
    problems: list[str] = []
    for index, proof in enumerate(proofs):
        if proof.get("prev_proof_hash") != prev:
            problems.append(f"{short}: proof {index + 1} does not link to the previous proof")
        prev = proof_hash(proof)
    landing = proofs[-1]
    problems += _check_landing(repo, commit, phase, trailer, landing, prev)
    problems += _check_reproduced(repo, commit, landing)
    if key is not None and prev == trailer:
        problem = key.check(_trailer(repo, commit, TRAILER), trailer)
        problems += [f"{short}: {problem}"] if problem else []
    return problems, prev


def _check_landing(
    repo: Path,
    commit: str,
    phase: str,
    trailer: str,
    landing: Mapping[str, Any],
    digest: str | None,
) -> list[str]:
    short, problems = commit[:12], []
    if digest != trailer:
        problems.append(f"{short}: landing proof hash {digest} != trailer {trailer}")
    if landing.get("phase_id") != phase:
        problems.append(f"{short}: proof is for phase {landing.get('phase_id')}, not {phase}")
    tree = _git(repo, "rev-parse", f"{commit}^{{tree}}").stdout.strip()
    if landing.get("result_tree") != tree:
        problems.append(f"{short}: commit tree {tree} != proof result tree")
    decision = (landing.get("decision") or {}).get("decision")
    if decision != "PASS":
        gated = (landing.get("gated_decision") or {}).get("decision")
        how = f"approved from {gated}" if landing.get("approval") else "no recorded approval"
        problems.append(f"{short}: landed with decision {decision} ({how})")
    approval = landing.get("approval")
    if approval is not None and not (approval.get("by") and approval.get("at")):
        problems.append(f"{short}: the approval does not say who approved and when")
    return problems


def _check_reproduced(repo: Path, commit: str, landing: Mapping[str, Any]) -> list[str]:
    """The proof's base is the commit's parent, and its diff turns that into the commit."""
    short = commit[:12]
    parent = _git(repo, "rev-parse", f"{commit}^1^{{tree}}").stdout.strip()
    base_tree = str(landing.get("base_tree", ""))
    if base_tree != parent:
        return [f"{short}: proof base tree {base_tree[:12]} is not the parent's tree {parent[:12]}"]
    diff = str(landing.get("diff", ""))
    tree, why = reproduced_tree(repo, base_tree, diff if diff.endswith("\n") else diff + "\n")
    actual = _git(repo, "rev-parse", f"{commit}^{{tree}}").stdout.strip()
    if tree is None:
        return [f"{short}: the proof's diff does not apply to its base tree: {why}"]
    if tree != actual:
        return [f"{short}: the proof's diff gives tree {tree[:12]}, the commit has {actual[:12]}"]
    return []


def verify_proofs(
    repo: Path, branch: str, *, base: str | None = None, key: ProofKey | None = None
) -> list[str]:
    """Every problem with the run's proofs on ``branch`` after ``base``; ``[]`` means intact.
    Signatures are checked only with ``key``."""
    try:
        commits = _commits(repo, branch, base)
    except ValueError as error:
        return [str(error)]
    if not commits:
        return [f"no phase commits on {branch}"]
    problems: list[str] = []
    prev: str | None = None
    for commit in commits:
        found, prev = _check_commit(repo, commit, prev, key)
        problems += found
    return problems
