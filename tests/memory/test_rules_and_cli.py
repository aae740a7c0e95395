"""Learned rules from repeated fixes, and the memory/rules commands a person types."""

from __future__ import annotations

from pathlib import Path

import typer
from memory_helpers import fixed_run, write_runs
from typer.testing import CliRunner

from autopack.memory import RuleBook
from autopack.memory.cli import memory_cli, rules_cli

SWITCHES_ON = {"AUTOPACK_ENABLE_SOT_MEMORY_INDEXING": "1", "AUTOPACK_SOT_RETRIEVAL_ENABLED": "1"}


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(memory_cli, name="memory")
    app.add_typer(rules_cli, name="rules")
    return app


def test_a_failure_fixed_the_same_way_in_two_runs_becomes_a_candidate(tmp_path: Path) -> None:
    book = RuleBook.load(tmp_path)
    assert book.refresh([fixed_run("run-1", "2026-11-24T10:00:00Z")]) == []

    new = book.refresh(
        [fixed_run("run-1", "2026-11-24T10:00:00Z"), fixed_run("run-2", "2026-11-25T10:00:00Z")]
    )

    rule = book.rules[new[0]]
    assert new == ["RULE-001"]
    assert rule.status == "candidate" and rule.fix_kind == "config"
    assert rule.signature == "psycopg.OperationalError: connection timed out (pool exhausted)"
    assert rule.runs == ("run-1", "run-2")


def test_promoted_rules_are_injected_for_matching_scopes_with_evidence(tmp_path: Path) -> None:
    book = RuleBook.load(tmp_path)
    book.refresh(
        [fixed_run("run-1", "2026-11-24T10:00:00Z"), fixed_run("run-2", "2026-11-25T10:00:00Z")]
    )
    assert book.inject("p1", ["src/db/pool.py"]) == ("", [])  # a candidate is not injected

    book.set_status("RULE-001", "promoted")
    text, evidence = book.inject("p1", ["src/db/pool.py", "README.md"])
    unrelated = book.inject("p2", ["web/app.js"])

    assert "RULE-001" in text and "raise the connection pool size" in text
    assert [(e.rule_id, e.phase_id, e.matched_scope) for e in evidence] == [
        ("RULE-001", "p1", ("src/db/pool.py",))
    ]
    assert unrelated == ("", [])
    book.set_status("RULE-001", "retired")
    assert book.inject("p1", ["src/db/pool.py"]) == ("", [])


def test_rules_commands_list_promote_retire(tmp_path: Path) -> None:
    write_runs(
        tmp_path,
        [fixed_run("run-1", "2026-11-24T10:00:00Z"), fixed_run("run-2", "2026-11-25T10:00:00Z")],
    )
    runner = CliRunner()
    repo = ["--repo", str(tmp_path)]

    listed = runner.invoke(_cli(), ["rules", "list", *repo])
    promoted = runner.invoke(_cli(), ["rules", "promote", "RULE-001", *repo])
    unknown = runner.invoke(_cli(), ["rules", "retire", "RULE-009", *repo])

    assert listed.exit_code == 0 and "RULE-001 candidate (new)" in listed.output
    assert promoted.exit_code == 0 and "RULE-001 is promoted" in promoted.output
    assert RuleBook.load(tmp_path).rules["RULE-001"].status == "promoted"
    assert unknown.exit_code == 2


def test_memory_index_and_keyword_search_commands(tmp_path: Path) -> None:
    write_runs(tmp_path, [fixed_run("run-1", "2026-11-24T10:00:00Z")])
    runner = CliRunner()
    repo = ["--repo", str(tmp_path)]

    indexed = runner.invoke(_cli(), ["memory", "index", *repo], env=SWITCHES_ON)
    found = runner.invoke(
        _cli(),
        ["memory", "search", "OperationalError pool exhausted", "--mode", "keyword", *repo],
        env=SWITCHES_ON,
    )
    bad = runner.invoke(_cli(), ["memory", "search", "x", "--mode", "fuzzy", *repo])

    assert indexed.exit_code == 0, indexed.output
    assert "documents" in indexed.output
    assert "sot_entries: 2 new" in indexed.output  # BUILD-001 and DBG-001 mirrored
    assert found.exit_code == 0 and "1. " in found.output and "DBG-001" in found.output
    assert bad.exit_code == 2
