"""Helpers for the ledger tests: git, and runs that ended with failures and fixes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from autopack.ledger import AttemptSummary, DecisionRecord, PhaseSummary, RunSummary, TestDelta


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_run(run_id: str, ended_at: str, *, fail_last: bool = False) -> RunSummary:
    """A run whose phase 'api' passed on its second attempt after an import error."""
    api_attempts = (
        AttemptSummary(
            1,
            "retry",
            feedback="tests failed\nImportError: cannot import name 'Session' from 'db'",
        ),
        AttemptSummary(
            2,
            "pass",
            change_summary="export Session from db/__init__.py",
            root_cause="db package did not re-export Session",
            fix_kind="import",
        ),
    )
    cli_state = "FAILED" if fail_last else "COMPLETE"
    cli_attempts = (
        (AttemptSummary(1, "fail", feedback="audit: the CLI has no --help test"),)
        if fail_last
        else (AttemptSummary(1, "pass", change_summary="add the cli"),)
    )
    return RunSummary(
        run_id=run_id,
        goal=f"Build the demo service ({run_id})",
        status="FAILED" if fail_last else "SUCCEEDED",
        ended_at=ended_at,
        phases=(
            PhaseSummary("api", "Add the API", "COMPLETE", ("src/api/**",), api_attempts, "abc"),
            PhaseSummary("cli", "Add the CLI", cli_state, ("src/cli.py",), cli_attempts),
        ),
        decisions=(
            DecisionRecord(
                "SQLite by default",
                context="The service needs storage.",
                decision="Use SQLite unless a URL is given.",
                rationale="No server to install.",
                alternatives="PostgreSQL only.",
                phase_id="api",
            ),
        ),
        commits=("0123456789abcdef0123", "fedcba9876543210fedc"),
        tests=TestDelta(passed_before=10, passed_after=14),
    )
