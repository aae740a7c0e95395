"""Does the CI contract's proof check catch each way a run branch can be tampered with,
and what does it cost as runs grow?

For runs of N phase commits (made with plain git, as the engine lands them: trailers and
a proof note), each case tampers with the branch once, then runs the check the generated
workflow runs (``autopack verify-proof --all``, in-process). The table says whether the
tampering was caught, how many problems were reported and how long the check took.

    python bench/ci_contract.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autopack.ci.proofs import check_all
from autopack.gate import NOTES_REF, proof_hash

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
BRANCH = "autopack/bench"


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, env=ENV, check=True
    )
    return done.stdout.strip()


def land_phase(repo: Path, number: int, prev: str | None, decision: str = "PASS") -> str:
    """One phase commit on the checked-out run branch with its proof note; its proof hash."""
    (repo / f"phase_{number}.py").write_text(f"N = {number}\n")
    git(repo, "add", "-A")
    proof = {
        "phase_id": f"p{number}",
        "result_tree": git(repo, "write-tree"),
        "decision": {"decision": decision, "reasons": []},
        "approval": None,
        "prev_proof_hash": prev,
    }
    digest = proof_hash(proof)
    message = f"p{number}\n\nAutopack-Phase: p{number}\nAutopack-Proof: {digest}\n"
    git(repo, "commit", "-q", "-F", "-", stdin=message)
    git(repo, "notes", f"--ref={NOTES_REF}", "add", "-F", "-", "HEAD", stdin=json.dumps([proof]))
    return digest


def make_run(repo: Path, phases: int) -> str | None:
    git(repo, "init", "-q", "--initial-branch=main")
    (repo / "README.md").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", BRANCH)
    prev = None
    for number in range(1, phases + 1):
        prev = land_phase(repo, number, prev)
    return prev


def edit_note(repo: Path, _prev: str | None) -> None:
    note = json.loads(git(repo, "notes", f"--ref={NOTES_REF}", "show", "HEAD~1"))
    note[-1]["decision"]["reasons"] = ["rewritten afterwards"]
    git(
        repo,
        "notes",
        f"--ref={NOTES_REF}",
        "add",
        "-f",
        "-F",
        "-",
        "HEAD~1",
        stdin=json.dumps(note),
    )


def amend_commit(repo: Path, _prev: str | None) -> None:
    old = git(repo, "rev-parse", "HEAD")
    (repo / "sneaked.py").write_text("X = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--amend", "--no-edit")
    git(repo, "notes", f"--ref={NOTES_REF}", "copy", old, "HEAD")


def commit_without_proof(repo: Path, _prev: str | None) -> None:
    (repo / "hotfix.py").write_text("FIX = True\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hotfix")


def remove_note(repo: Path, _prev: str | None) -> None:
    git(repo, "notes", f"--ref={NOTES_REF}", "remove", "HEAD")


def land_blocked(repo: Path, prev: str | None) -> None:
    land_phase(repo, 10_000, prev, decision="BLOCK")


CASES: dict[str, Callable[[Path, str | None], None] | None] = {
    "intact": None,
    "proof note edited": edit_note,
    "phase commit amended": amend_commit,
    "commit without proof": commit_without_proof,
    "proof note removed": remove_note,
    "BLOCK landed, no approval": land_blocked,
}


def measure(phases: int, case: str, work: Path) -> tuple[bool, int, float]:
    repo = Path(tempfile.mkdtemp(dir=work))
    prev = make_run(repo, phases)
    tamper = CASES[case]
    if tamper is not None:
        tamper(repo, prev)
    git(repo, "checkout", "-q", "main")
    start = time.perf_counter()
    reports = check_all(repo)
    seconds = time.perf_counter() - start
    problems = sum(len(report.problems) for report in reports)
    return problems > 0, problems, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3-phase runs only")
    args = parser.parse_args()
    sizes = (3,) if args.quick else (10, 50, 200)
    print(f"{'case':<28} {'phases':>6} {'caught':>7} {'problems':>8} {'check s':>8}")
    with tempfile.TemporaryDirectory(prefix="autopack-bench-ci-") as scratch:
        for phases in sizes:
            for case in CASES:
                caught, problems, seconds = measure(phases, case, Path(scratch))
                shown = "-" if case == "intact" else ("yes" if caught else "NO")
                if case == "intact" and caught:
                    shown = "FALSE+"
                print(f"{case:<28} {phases:>6} {shown:>7} {problems:>8} {seconds:>8.3f}")


if __name__ == "__main__":
    main()
