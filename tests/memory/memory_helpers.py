"""Helpers for the memory tests: a repository with ledgers written by tidy from runs."""

from __future__ import annotations

from pathlib import Path

from autopack.ledger import AttemptSummary, PhaseSummary, RunSummary, tidy


def fixed_run(run_id: str, ended_at: str, scope: str = "src/db/**") -> RunSummary:
    """A run whose 'storage' phase failed on a pool timeout, then passed with a bigger pool."""
    attempts = (
        AttemptSummary(
            1,
            "retry",
            feedback="tests failed\n"
            "psycopg.OperationalError: connection timed out (pool exhausted)",
        ),
        AttemptSummary(
            2,
            "pass",
            change_summary="raise the connection pool size to match the worker count",
            root_cause="the pool was smaller than the number of workers",
            fix_kind="config",
        ),
    )
    return RunSummary(
        run_id=run_id,
        goal="Store orders in PostgreSQL",
        status="SUCCEEDED",
        ended_at=ended_at,
        phases=(PhaseSummary("storage", "Persist orders", "COMPLETE", (scope,), attempts),),
    )


def write_runs(repo: Path, runs: list[RunSummary]) -> None:
    """Summaries where the engine leaves them, and the ledgers tidy makes of them."""
    for run in runs:
        run_dir = repo / ".autopack" / "runs" / run.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "summary.json").write_text(run.to_json())
    tidy(repo, runs)
