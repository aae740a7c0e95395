"""Ledgers: parse/render entries, check append-only, tidy runs into docs, sync to the DB."""

from autopack.ledger.check import check_ledgers
from autopack.ledger.entries import Entry, Ledger, LedgerParseError, parse_ledger, render_ledger
from autopack.ledger.summary import (
    AttemptSummary,
    DecisionRecord,
    PhaseSummary,
    RunSummary,
    SummaryError,
    TestDelta,
    failure_signature,
    load_run_summaries,
)
from autopack.ledger.tidy import TidyError, TidyResult, read_ledgers, tidy

__all__ = [
    "AttemptSummary",
    "DecisionRecord",
    "Entry",
    "Ledger",
    "LedgerParseError",
    "PhaseSummary",
    "RunSummary",
    "SummaryError",
    "TestDelta",
    "TidyError",
    "TidyResult",
    "check_ledgers",
    "failure_signature",
    "load_run_summaries",
    "parse_ledger",
    "read_ledgers",
    "render_ledger",
    "tidy",
]
