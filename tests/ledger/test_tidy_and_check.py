"""Tidy writes the ledgers once; --check catches every way an old entry can be rewritten."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from ledger_helpers import git, make_run
from typer.testing import CliRunner

from autopack.ledger import check_ledgers, load_run_summaries, tidy
from autopack.ledger.cli import ledger_cli

RUNS = [make_run("run-1", "2026-11-24T10:00:00Z", fail_last=True)]


def _tidied(repo: Path) -> Path:
    tidy(repo, RUNS, commit=True)
    return repo


def test_tidy_twice_changes_nothing_the_second_time(repo: Path) -> None:
    first = tidy(repo, RUNS, commit=True)
    head = git(repo, "rev-parse", "HEAD")
    second = tidy(repo, RUNS, commit=True)

    assert first.new_entries == ["BUILD-001", "DBG-001", "DBG-002", "DEC-001"]
    assert first.commit == head
    assert not second.changed and second.new_entries == [] and second.commit is None
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""


def test_tidy_commits_docs_as_their_own_commit(repo: Path) -> None:
    (repo / "unrelated.txt").write_text("work in progress\n")
    result = tidy(repo, RUNS, commit=True)

    files = git(repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == sorted(result.changed_files)
    assert "unrelated.txt" not in files
    assert "BUILD-001" in git(repo, "log", "-1", "--format=%s")


def test_readme_block_is_refreshed_and_nothing_outside_it_changes(repo: Path) -> None:
    readme = repo / "README.md"
    readme.write_text(
        "# Demo\n\nBefore.\n\n"
        "<!-- SOT_SUMMARY_START -->\nstale\n<!-- SOT_SUMMARY_END -->\n\nAfter.\n"
    )
    tidy(repo, RUNS)
    tidy(repo, [*RUNS, make_run("run-2", "2026-11-26T09:00:00Z")])
    text = readme.read_text()

    before, rest = text.split("<!-- SOT_SUMMARY_START -->")
    block, after = rest.split("<!-- SOT_SUMMARY_END -->")
    assert before == "# Demo\n\nBefore.\n\n"
    assert after == "\n\nAfter.\n"
    assert "- Builds: 2\n" in block
    assert "- Latest build: BUILD-002 (2026-11-26) Build the demo service (run-2): SUCCEEDED" in (
        block
    )
    assert "- Decisions: 2\n" in block and "- Debug entries: 3\n" in block
    assert "- Last updated: 2026-11-26\n" in block


def test_readme_without_markers_gets_the_block_appended(repo: Path) -> None:
    original = (repo / "README.md").read_text()
    tidy(repo, RUNS)
    text = (repo / "README.md").read_text()

    assert text.startswith(original)
    assert "<!-- SOT_SUMMARY_START -->" in text[len(original) :]


def test_dry_run_writes_nothing(repo: Path) -> None:
    result = tidy(repo, RUNS, dry_run=True, commit=True)

    assert "docs/BUILD_HISTORY.md" in result.changed_files
    assert not (repo / "docs").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_index_doc_links_the_ledgers_and_keeps_hand_written_lines(repo: Path) -> None:
    (repo / "docs").mkdir()
    (repo / "docs" / "INDEX.md").write_text("# Documentation index\n\n- [Guide](guide.md)\n")
    tidy(repo, RUNS)
    index = (repo / "docs" / "INDEX.md").read_text()

    assert index.startswith("# Documentation index\n\n- [Guide](guide.md)\n")
    assert "[Build history](BUILD_HISTORY.md): 1 entries, newest BUILD-001" in index
    assert "[Debug log](DEBUG_LOG.md)" in index
    assert "[Architecture decisions](ARCHITECTURE_DECISIONS.md)" in index


def test_check_passes_on_pure_appends(repo: Path) -> None:
    _tidied(repo)
    tidy(repo, [*RUNS, make_run("run-2", "2026-11-25T10:00:00Z")], commit=True)

    assert check_ledgers(repo, against="HEAD~1") == []
    assert check_ledgers(repo) == []


def test_check_catches_an_edited_old_entry(repo: Path) -> None:
    path = _tidied(repo) / "docs" / "DEBUG_LOG.md"
    path.write_text(path.read_text().replace("export Session from", "re-export Session from"))

    problems = check_ledgers(repo, against="HEAD")

    assert problems == ["docs/DEBUG_LOG.md: DBG-001 changed since HEAD; entries are append-only"]


def test_check_catches_a_deleted_entry(repo: Path) -> None:
    path = _tidied(repo) / "docs" / "DEBUG_LOG.md"
    text = path.read_text()
    path.write_text(text[: text.index("## DBG-002")].replace("| DBG-002 |", "| DBG-00X |"))

    problems = check_ledgers(repo, against="HEAD")

    assert "docs/DEBUG_LOG.md: DBG-002 vanished (it exists at HEAD)" in problems


def test_check_catches_a_deleted_file(repo: Path) -> None:
    (_tidied(repo) / "docs" / "ARCHITECTURE_DECISIONS.md").unlink()

    assert check_ledgers(repo, against="HEAD") == [
        "docs/ARCHITECTURE_DECISIONS.md: the file was deleted; it had 1 entries at HEAD",
        "README.md: the summary block is stale or missing; "
        "run `autopack tidy --no-commit` and commit it",
        "docs/INDEX.md: the ledger block is stale or missing; "
        "run `autopack tidy --no-commit` and commit it",
    ]


def test_check_catches_a_duplicate_id(repo: Path) -> None:
    path = _tidied(repo) / "docs" / "DEBUG_LOG.md"
    path.write_text(path.read_text().replace("## DBG-002 |", "## DBG-001 |"))

    problems = check_ledgers(repo)

    assert "docs/DEBUG_LOG.md: DBG-001 appears 2 times; ids must be unique" in problems


def test_check_catches_a_gap_in_ids(repo: Path) -> None:
    path = _tidied(repo) / "docs" / "DEBUG_LOG.md"
    path.write_text(path.read_text().replace("DBG-002", "DBG-003"))

    assert check_ledgers(repo) == [
        "docs/DEBUG_LOG.md: DBG-003 is entry 2; ids must be contiguous (DBG-002)",
        "docs/INDEX.md: the ledger block is stale or missing; "
        "run `autopack tidy --no-commit` and commit it",
    ]


def test_check_catches_an_orphan_index_row(repo: Path) -> None:
    path = _tidied(repo) / "docs" / "BUILD_HISTORY.md"
    text = path.read_text()
    row = "| BUILD-007 | 2026-01-01 | Ghost | SUCCEEDED |\n"
    path.write_text(text.replace("| BUILD-001 |", row + "| BUILD-001 |", 1))

    assert check_ledgers(repo) == ["docs/BUILD_HISTORY.md: index row BUILD-007 has no entry"]


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(ledger_cli)

    @app.callback()
    def main() -> None:
        """The mounted CLI, as the main ``autopack`` command has it."""

    return app


def test_cli_tidy_reads_summaries_and_check_exits_1_on_an_edit(repo: Path) -> None:
    run_dir = repo / ".autopack" / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(RUNS[0].to_json())
    assert load_run_summaries(repo) == RUNS
    runner = CliRunner()

    head = git(repo, "rev-parse", "HEAD")
    written = runner.invoke(_cli(), ["tidy", "--repo", str(repo)])
    assert written.exit_code == 0, written.output
    assert git(repo, "rev-parse", "HEAD") == head, "by default tidy commits nothing"
    assert "BUILD-001" in (repo / "docs" / "BUILD_HISTORY.md").read_text()
    git(repo, "checkout", "--", ".")
    git(repo, "clean", "-fdq", "docs")
    done = runner.invoke(_cli(), ["tidy", "--repo", str(repo), "--commit"])
    assert done.exit_code == 0, done.output
    assert git(repo, "rev-parse", "HEAD") != head
    ok = runner.invoke(_cli(), ["tidy", "--check", "--against", "HEAD", "--repo", str(repo)])
    assert ok.exit_code == 0 and "ledgers ok" in ok.output

    path = repo / "docs" / "BUILD_HISTORY.md"
    path.write_text(path.read_text().replace("- Status: FAILED", "- Status: SUCCEEDED"))
    bad = runner.invoke(_cli(), ["tidy", "--check", "--against", "HEAD", "--repo", str(repo)])
    assert bad.exit_code == 1
    assert "BUILD-001 changed since HEAD" in bad.output


def test_summary_json_shape_is_plain_data() -> None:
    data = json.loads(RUNS[0].to_json())

    assert data == json.loads(json.dumps(asdict(RUNS[0])))
    assert data["phases"][0]["attempts"][1]["fix_kind"] == "import"


def test_this_projects_own_ledgers_pass_the_check() -> None:
    root = Path(__file__).resolve().parents[2]

    assert check_ledgers(root) == []


def test_check_catches_stale_summary_and_index_blocks(repo: Path) -> None:
    """A ledger entry appended by hand without `autopack tidy` leaves both blocks stale."""
    _tidied(repo)
    assert check_ledgers(repo) == []
    path = repo / "docs" / "BUILD_HISTORY.md"
    path.write_text(path.read_text() + "\n## BUILD-002 | 2026-11-26 | By hand\n- Status: done\n")

    problems = check_ledgers(repo)

    assert "README.md: the summary block is stale or missing; " in "".join(problems)
    assert "docs/INDEX.md: the ledger block is stale or missing; " in "".join(problems)
    tidy(repo, RUNS, commit=False)
    assert check_ledgers(repo) == []
