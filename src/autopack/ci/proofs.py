"""``autopack verify-proof``: every commit on a run branch matches its proof.

The gate owns what a valid proof is (:func:`autopack.gate.verify_proofs`); this module
chooses which branches to check against which base and says where each problem is, so
a CI log line alone tells a reader which branch, and the gate's text which commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autopack.gate.signing import ProofKey
from autopack.workspace import git

BRANCH_PREFIX = "autopack/"


class ProofCheckError(ValueError):
    """The check cannot start: no such run branch or base (bad input: exit 2)."""


@dataclass(frozen=True)
class BranchReport:
    """The outcome for one run branch; ``problems`` is empty when every proof holds."""

    branch: str
    problems: list[str]
    merged_into: str | None = None


def run_branches(repo: Path) -> list[str]:
    """Every local ``autopack/*`` branch, sorted by name."""
    out = git.git(repo, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}")
    return sorted(line for line in out.splitlines() if line)


def main_branch(repo: Path) -> str:
    """The branch run branches are compared with: local ``main``/``master`` first (what a
    developer has), then the remote's (what a CI checkout has)."""
    remote_head = git.git(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    candidates = ["main", "master", remote_head.removeprefix("refs/remotes/")]
    candidates += ["origin/main", "origin/master"]
    for name in candidates:
        if name and git.rev_parse(repo, name):
            return name
    raise ProofCheckError(f"{repo}: no main branch found; pass --base BRANCH")


def check_branch(
    repo: Path, branch: str, base: str | None, key: ProofKey | None = None
) -> BranchReport:
    """Check one branch with the gate; each problem is prefixed with the branch."""
    from autopack.gate import verify_proofs

    if git.rev_parse(repo, f"refs/heads/{branch}") is None:
        raise ProofCheckError(f"{repo}: no branch {branch}")
    if base is not None and git.rev_parse(repo, base) is None:
        raise ProofCheckError(f"{repo}: unknown base {base!r}")
    found = verify_proofs(repo, branch, base=base, key=key)
    problems = [f"{branch}: {problem}" for problem in found]
    return BranchReport(branch, problems)


def check_all(
    repo: Path, base: str | None = None, key: ProofKey | None = None
) -> list[BranchReport]:
    """Every ``autopack/*`` branch against ``base`` (default: the main branch)."""
    branches = run_branches(repo)
    if not branches:
        return []
    base = base or main_branch(repo)
    return [_check_unless_merged(repo, branch, base, key) for branch in branches]


def _check_unless_merged(repo: Path, branch: str, base: str, key: ProofKey | None) -> BranchReport:
    """A branch wholly contained in ``base`` has nothing left to check: its commits were
    checked before they were merged, and base's history is not a run's."""
    if git.rev_parse(repo, base) and not git.log_commits(repo, base, branch):
        return BranchReport(branch, [], merged_into=base)
    return check_branch(repo, branch, base, key)
