"""Cheap checks besides the tests: syntax, lint, deliverables and the scope of the edits."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DETAIL_CHARS = 2000


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what it found."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_compiles(worktree: Path, changed_files: Sequence[str]) -> CheckResult:
    """Every changed Python file that still exists parses."""
    problems = []
    for rel in changed_files:
        path = worktree / rel
        if rel.endswith(".py") and path.is_file():
            try:
                compile(path.read_bytes(), rel, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as error:
                problems.append(f"{rel}: {error}")
    return CheckResult("compile", not problems, "\n".join(problems)[:DETAIL_CHARS])


def ruff_configured(worktree: Path) -> bool:
    if (worktree / "ruff.toml").exists() or (worktree / ".ruff.toml").exists():
        return True
    pyproject = worktree / "pyproject.toml"
    return pyproject.is_file() and "[tool.ruff" in pyproject.read_text(errors="replace")


def check_ruff(worktree: Path, changed_files: Sequence[str]) -> CheckResult:
    """``ruff check`` on the changed Python files, with the project's own configuration."""
    targets = [f for f in changed_files if f.endswith(".py") and (worktree / f).is_file()]
    ruff = shutil.which("ruff")
    if ruff is None or not targets:
        reason = "ruff not installed" if ruff is None else "no Python files changed"
        return CheckResult("ruff", True, reason, skipped=True)
    done = subprocess.run(
        [ruff, "check", "--no-cache", "--quiet", *targets],
        cwd=worktree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CheckResult("ruff", done.returncode == 0, (done.stdout + done.stderr)[:DETAIL_CHARS])


def check_deliverables(worktree: Path, deliverables: Sequence[str]) -> CheckResult:
    """Every deliverable exists and is not empty."""
    missing = [d for d in deliverables if not (worktree / d).is_file()]
    empty = [d for d in deliverables if d not in missing and (worktree / d).stat().st_size == 0]
    detail = "; ".join([*(f"missing: {d}" for d in missing), *(f"empty: {d}" for d in empty)])
    return CheckResult("deliverables", not (missing or empty), detail)


def check_scope(edits_report: Mapping[str, Any]) -> CheckResult:
    """The edits report shows no write refused or made outside the phase's scope.

    The applier reports refusals as ``out_of_scope`` (paths) or as per-file entries
    whose ``status`` is ``refused``; either one fails the check.
    """
    outside = list(edits_report.get("out_of_scope", []))
    for entry in edits_report.get("files", []):
        if isinstance(entry, Mapping) and entry.get("status") == "refused":
            outside.append(f"{entry.get('path', '?')}: {entry.get('reason', 'refused')}")
    return CheckResult("scope", not outside, "; ".join(map(str, outside))[:DETAIL_CHARS])


def run_checks(
    worktree: Path,
    *,
    changed_files: Sequence[str],
    deliverables: Sequence[str],
    edits_report: Mapping[str, Any],
    ruff: bool,
) -> list[CheckResult]:
    """All checks for one attempt; ruff only when asked and configured in the project."""
    results = [
        check_compiles(worktree, changed_files),
        check_deliverables(worktree, deliverables),
        check_scope(edits_report),
    ]
    if ruff and ruff_configured(worktree):
        results.append(check_ruff(worktree, changed_files))
    return results
