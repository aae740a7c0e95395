"""Ledger files survive render -> parse -> render byte for byte, and parse hand-written text."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import make_run

from autopack.ledger import parse_ledger, read_ledgers, render_ledger
from autopack.ledger.tidy import ledger_path, record_run


@pytest.mark.parametrize("kind", ["build", "debug", "decision"])
def test_round_trip_is_byte_identical(tmp_path: Path, kind: str) -> None:
    ledgers = read_ledgers(tmp_path)
    record_run(ledgers, make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True))
    record_run(ledgers, make_run("run-2", "2026-11-25T10:00:00Z"))
    text = render_ledger(ledgers[kind])  # type: ignore[index]

    again = render_ledger(parse_ledger(text, kind))

    assert again == text
    assert len(parse_ledger(text, kind).entries) >= 2


def test_index_lists_newest_first_and_fields_parse_back(tmp_path: Path) -> None:
    ledgers = read_ledgers(tmp_path)
    record_run(ledgers, make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True))
    record_run(ledgers, make_run("run-2", "2026-11-25T10:00:00Z"))
    text = render_ledger(ledgers["build"])
    parsed = parse_ledger(text, "build")

    assert [row.id for row in parsed.index] == ["BUILD-002", "BUILD-001"]
    first = parsed.entries[0]
    assert first.heading == "## BUILD-001 | 2026-11-24 | Build the demo service (run-1)"
    assert first.field("Status") == "FAILED"
    assert first.field("Changed") == "api: export Session from db/__init__.py"
    assert "tests passing 10 -> 14 (+4)" in first.field("Verified")


def test_debug_entries_record_fixed_and_phase_ending_failures(tmp_path: Path) -> None:
    ledgers = read_ledgers(tmp_path)
    record_run(ledgers, make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True))
    entries = ledgers["debug"].entries

    assert [e.title for e in entries] == ["api attempt 1 failed", "cli attempt 1 failed"]
    fixed, ended = entries
    assert fixed.field("Signature") == "ImportError: cannot import name 'Session' from 'db'"
    assert fixed.field("Fix") == "export Session from db/__init__.py"
    assert fixed.field("Root cause") == "db package did not re-export Session"
    assert fixed.field("Symptom") == (
        "tests failed\nImportError: cannot import name 'Session' from 'db'"
    )
    assert ended.field("Fix") == "none: the phase ended FAILED"


def test_hand_written_entry_with_continuation_lines_parses_and_round_trips() -> None:
    text = (
        "# Debug log\n\nFailures and fixes.\n\n"
        "| ID | Date | Title |\n|---|---|---|\n| DBG-001 | 2026-11-24 | Flaky clock |\n\n"
        "## DBG-001 | 2026-11-24 | Flaky clock\n"
        "- Symptom: test_timeout failed once\n"
        "    in CI only, never locally\n"
        "- Signature: AssertionError: N != N\n"
        "- Root cause: wall-clock assert\n"
        "- Fix: assert on events instead\n"
        "- Verified: 50 reruns green\n"
    )
    ledger = parse_ledger(text, "debug")

    assert render_ledger(ledger) == text
    symptom = ledger.entries[0].field("Symptom")
    assert symptom == "test_timeout failed once\nin CI only, never locally"


def test_ledger_files_written_by_tidy_use_docs_names(tmp_path: Path) -> None:
    assert ledger_path(tmp_path, "decision").name == "ARCHITECTURE_DECISIONS.md"
