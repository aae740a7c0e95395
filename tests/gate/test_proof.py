"""Phase proofs on a run branch, checked from git alone; tampering is caught."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from autopack.gate import (
    NOTES_REF,
    SIGNATURE_TRAILER,
    GateDecision,
    GateEvidence,
    build_proof,
    load_key,
    proof_hash,
    render_feedback,
    score_risk,
    verify_proofs,
)
from autopack.gate.signing import ProofKeyError
from autopack.verify import CheckResult


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def attach(repo: Path, commit: str, proofs: list[dict]) -> None:
    notes = ["notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", commit]
    git(repo, *notes, stdin=json.dumps(proofs))


def proof(
    phase: str,
    attempt: int,
    tree: str,
    prev: str | None,
    decision: str,
    *,
    base_tree: str = "0" * 40,
    diff: str = "",
) -> dict:
    evidence = GateEvidence(
        apply_ok=True,
        edits_report={},
        verify=None,
        checks=[CheckResult("compile", decision == "PASS", "" if decision == "PASS" else "bad")],
        risk=score_risk("", ["a.txt"]),
    )
    return build_proof(
        run_id="r1",
        phase_id=phase,
        attempt=attempt,
        phase_spec={"id": phase},
        base_tree=base_tree,
        result_tree=tree,
        diff=diff,
        evidence=evidence,
        decision=GateDecision(decision, [f"{decision}: because"], []),
        prev_proof_hash=prev,
        usage={"tokens": 10, "cost_usd": 0.01},
    )


def commit_phase(repo: Path, phase: str, prev: str | None, attempts: int = 1) -> str:
    """Commit a change the way the engine does: trailers plus a note with every proof."""
    base_tree = git(repo, "rev-parse", "HEAD^{tree}")
    (repo / f"{phase}.txt").write_text(phase)
    git(repo, "add", "-A")
    tree = git(repo, "write-tree")
    diff = git(repo, "diff", "--cached", "--binary") + "\n"
    proofs = []
    for attempt in range(1, attempts + 1):
        decision = "PASS" if attempt == attempts else "RETRY"
        proofs.append(proof(phase, attempt, tree, prev, decision, base_tree=base_tree, diff=diff))
        prev = proof_hash(proofs[-1])
    message = f"{phase}\n\nAutopack-Phase: {phase}\nAutopack-Proof: {prev}\n"
    key = load_key(repo, create=True)
    assert key is not None and prev is not None
    message += f"{SIGNATURE_TRAILER}: {key.sign(prev)}\n"
    git(repo, "commit", "-q", "-m", message)
    git(
        repo,
        "notes",
        f"--ref={NOTES_REF}",
        "add",
        "-f",
        "-F",
        "-",
        "HEAD",
        stdin=json.dumps(proofs),
    )
    assert prev is not None
    return prev


@pytest.fixture
def run_branch(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    (repo / "README").write_text("base")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "autopack/r1")
    last = commit_phase(repo, "p1", None, attempts=2)
    commit_phase(repo, "p2", last)
    return repo, base


def test_an_intact_run_verifies(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    assert verify_proofs(repo, "autopack/r1", base=base) == []
    assert verify_proofs(repo, "autopack/r1") == []


def test_a_tampered_proof_is_caught(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    first = git(repo, "rev-parse", "HEAD~1")
    proofs = json.loads(git(repo, "notes", f"--ref={NOTES_REF}", "show", first))
    proofs[0]["decision"]["decision"] = "PASS"  # rewrite history: attempt 1 "passed"
    git(
        repo, "notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", first, stdin=json.dumps(proofs)
    )
    problems = verify_proofs(repo, "autopack/r1", base=base)
    assert any("does not link" in p for p in problems)


def test_a_tampered_commit_is_caught(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    (repo / "p2.txt").write_text("sneaked in")
    git(repo, "commit", "-q", "-a", "--amend", "--no-edit")  # same trailers, other tree
    problems = verify_proofs(repo, "autopack/r1", base=base)
    assert any("no proof note" in p or "result tree" in p for p in problems)


def test_a_commit_without_a_proof_is_caught(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    (repo / "extra.txt").write_text("x")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "manual change")
    problems = verify_proofs(repo, "autopack/r1", base=base)
    assert any("missing Autopack-Phase" in p for p in problems)


def test_a_landing_without_pass_or_approval_is_caught(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    (repo / "a.txt").write_text("a")
    git(repo, "add", "-A")
    tree = git(repo, "write-tree")
    blocked = proof("p3", 1, tree, None, "BLOCK")
    digest = proof_hash(blocked)
    git(repo, "commit", "-q", "-m", f"p3\n\nAutopack-Phase: p3\nAutopack-Proof: {digest}\n")
    git(repo, "notes", f"--ref={NOTES_REF}", "add", "-F", "-", "HEAD", stdin=json.dumps([blocked]))
    problems = verify_proofs(repo, "autopack/r1", base=base)
    assert any("landed with decision BLOCK (no recorded approval)" in p for p in problems)


def forge(repo: Path, *, rewrite_diff: bool) -> str:
    """Replace the last phase commit with another tree, rewriting its proof's result tree
    (and, if asked, its diff), its hash and the trailer together: what someone who can
    write the repository, but has no key, can do. Returns the forged commit."""
    head = git(repo, "rev-parse", "HEAD")
    proofs = json.loads(git(repo, "notes", f"--ref={NOTES_REF}", "show", head))
    git(repo, "reset", "-q", "--soft", "HEAD~1")
    (repo / "backdoor.txt").write_text("not what was gated")
    git(repo, "add", "-A")
    landing = proofs[-1]
    landing["result_tree"] = git(repo, "write-tree")
    if rewrite_diff:
        landing["diff"] = git(repo, "diff", "--cached", "--binary", "HEAD") + "\n"
    digest = proof_hash(landing)
    message = git(repo, "log", "-1", "--format=%B", head)
    old = message.split("Autopack-Proof: ")[1].split()[0]
    git(repo, "commit", "-q", "-F", "-", stdin=message.replace(old, digest))
    forged = git(repo, "rev-parse", "HEAD")
    git(repo, "notes", f"--ref={NOTES_REF}", "add", "-F", "-", forged, stdin=json.dumps(proofs))
    return forged


def test_a_rewritten_tree_is_caught_by_replaying_the_diff(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    gated_tree = git(repo, "rev-parse", "HEAD^{tree}")
    forged = forge(repo, rewrite_diff=False)
    forged_tree = git(repo, "rev-parse", "HEAD^{tree}")
    assert verify_proofs(repo, "autopack/r1", base=base) == [
        f"{forged[:12]}: the proof's diff gives tree {gated_tree[:12]}, "
        f"the commit has {forged_tree[:12]}"
    ]


def test_a_rewritten_diff_is_caught_by_the_signature(run_branch: tuple[Path, str]) -> None:
    repo, base = run_branch
    forged = forge(repo, rewrite_diff=True)
    assert verify_proofs(repo, "autopack/r1", base=base) == []  # consistent in the repo
    key = load_key(repo, create=False)
    problems = verify_proofs(repo, "autopack/r1", base=base, key=key)
    assert problems == [
        f"{forged[:12]}: the signature does not match the proof: the proof was forged or altered"
    ]


def test_the_key_stays_outside_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    assert load_key(repo, create=False, environ=env) is None
    key = load_key(repo, create=True, environ=env)
    path = tmp_path / "config" / "autopack" / "proof.key"
    assert key is not None and key.source == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert key.secret.decode() not in repr(key)
    path.chmod(0o644)
    with pytest.raises(ProofKeyError, match="readable by others"):
        load_key(repo, create=False, environ=env)
    with pytest.raises(ProofKeyError, match="inside the repository"):
        load_key(repo, create=True, environ={"XDG_CONFIG_HOME": str(repo / ".autopack")})
    from_env = load_key(repo, create=False, environ={"AUTOPACK_PROOF_KEY": "s3cret"})
    assert from_env is not None and from_env.source == "$AUTOPACK_PROOF_KEY"
    signed = from_env.sign("abc")
    assert from_env.check(signed, "abc") is None
    assert "another key" in str(key.check(signed, "abc"))


def test_feedback_is_a_compact_rendering_of_the_proof() -> None:
    failed = proof("p1", 1, "t" * 40, None, "RETRY")
    text = render_feedback(failed)
    assert text.splitlines()[0] == "Attempt 1 of phase p1: RETRY"
    assert "Check compile failed: bad" in text
    assert len(text) < 2000
