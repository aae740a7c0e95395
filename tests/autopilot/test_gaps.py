"""``autopack gaps`` on a real project with one gap of each kind: every gap is found,
typed, located and ranked; nothing else is; the scan reads HEAD and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from autopilot_helpers import autopack, by_kind, commit_all, gappy_project, gaps_json, git, write


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gappy_project(tmp_path_factory.mktemp("gaps") / "calc")


@pytest.fixture(scope="module")
def found(project: Path) -> dict[str, Any]:
    # Uncommitted work is not HEAD: neither this TODO nor the fix of divide() counts.
    write(project, {"scratch.py": "# TODO: uncommitted\n"})
    (project / "calc.py").write_text(
        (project / "calc.py").read_text().replace("a // b", "a / b"), encoding="utf-8"
    )
    before = git(project, "status", "--porcelain", "--ignored")
    data = gaps_json(project)
    assert git(project, "status", "--porcelain", "--ignored") == before  # wrote nothing
    git(project, "checkout", "calc.py")
    (project / "scratch.py").unlink()
    return data


def _where(gaps: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(g["path"], g["line"]) for g in gaps]


def test_failing_erroring_skipped_and_xfailed_tests_are_found_where_they_are(
    found: dict[str, Any],
) -> None:
    kinds = by_kind(found)
    assert _where(kinds["test-fail"]) == [("tests/test_calc.py", 10)]
    assert kinds["test-fail"][0]["ref"] == "tests/test_calc.py::test_divide"
    assert "assert 0 == 0.5" in kinds["test-fail"][0]["message"]
    assert [g["ref"] for g in kinds["test-error"]] == ["tests/test_calc.py::test_uses_broken"]
    assert "fixture broke" in kinds["test-error"][0]["message"]
    assert kinds["skipped"][0]["ref"] == "tests/test_calc.py::test_parser"
    assert "waits for the parser" in kinds["skipped"][0]["message"]
    assert kinds["xfailed"][0]["ref"] == "tests/test_calc.py::test_rounding"
    assert "rounding is wrong" in kinds["xfailed"][0]["message"]


def test_unmet_success_criteria_come_first(found: dict[str, Any]) -> None:
    criteria = by_kind(found)["criterion"]
    assert {g["ref"] for g in criteria} == {
        "file:docs/usage.md",
        "test:tests/test_feature.py::test_power",
        "command:python -c 'import calc; calc.power'",
    }
    assert [g["kind"] for g in found["gaps"][:3]] == ["criterion"] * 3
    assert [g["rank"] for g in found["gaps"]] == list(range(1, len(found["gaps"]) + 1))


def test_lint_and_type_errors_are_found_when_the_project_configures_the_tools(
    found: dict[str, Any],
) -> None:
    kinds = by_kind(found)
    assert [(g["path"], g["line"], g["ref"]) for g in kinds["lint"]] == [("calc.py", 3, "F401")]
    assert _where(kinds["type"]) == [("calc.py", 20)]
    assert kinds["type"][0]["message"].startswith("return-value: Incompatible return value")


def test_todos_unfixed_debug_entries_and_untested_functions(found: dict[str, Any]) -> None:
    kinds = by_kind(found)
    # vendor/ is out of scope, the PNG is binary, scratch.py is not committed
    # "TODO" as a word in prose is not a note
    assert [(g["path"], g["line"], g["message"]) for g in kinds["todo"]] == [
        ("calc.py", 15, "TODO: support floats"),
        ("docs/plan.md", 3, "TODO: write the guide"),
    ]
    assert [(g["ref"], g["line"]) for g in kinds["debug"]] == [("DBG-001", 6)]
    assert sorted(g["ref"] for g in kinds["untested"]) == ["scale", "typed"]


def test_nothing_else_is_reported(found: dict[str, Any]) -> None:
    assert found["counts"] == {
        "criterion": 3,
        "test-error": 1,
        "test-fail": 1,
        "readme": 1,
        "type": 1,
        "lint": 1,
        "skipped": 1,
        "xfailed": 1,
        "debug": 1,
        "todo": 2,
        "untested": 2,
    }
    assert found["head"] and found["files"] == 8


def test_readme_commands_that_fail_are_gaps_at_their_line(found: dict[str, Any]) -> None:
    """`python -m calc.cli`: no such module, exit 1. The print and the `cd docs` + `cat plan.md`
    pair pass; `pip install` is skipped and said so; the python block is not shell."""
    (gap,) = by_kind(found)["readme"]
    assert (gap["path"], gap["line"]) == ("README.md", 9)
    assert gap["ref"] == "python -m calc.cli --version"
    assert gap["message"].startswith("`python -m calc.cli --version` exits 1:")
    assert (
        "README.md: 1 command(s) skipped at lines 6 (installs or needs the network)"
        in (found["notes"])
    )
    assert "readme" in found["timings"]


def test_the_table_fits_80_columns_and_ranks(project: Path) -> None:
    result = autopack("gaps", "-C", str(project), "--no-run", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].split()[:3] == ["1", "criterion", "docs/usage.md"]
    assert lines[2].split()[:2] == ["2", "debug"]
    assert lines[3] == "... 2 more (--limit, or --json for all)"
    assert "4 gaps at" in result.stdout


def test_no_run_reads_text_only(project: Path) -> None:
    kinds = by_kind(gaps_json(project, "--no-run"))
    assert set(kinds) == {"criterion", "debug", "todo"}  # no tests, README commands, tools
    assert [g["ref"] for g in kinds["criterion"]] == ["file:docs/usage.md"]


def test_closing_gaps_removes_them_from_the_next_scan(tmp_path: Path) -> None:
    repo = gappy_project(tmp_path / "calc")
    calc = (repo / "calc.py").read_text()
    fixed = calc.replace("a // b", "a / b").replace("    # TODO: support floats\n", "")
    (repo / "docs/plan.md").unlink()
    write(
        repo,
        {
            "calc.py": fixed.replace("import os\n\n\n", "")
            + "\n\ndef power(a, b):\n    return a**b\n",
            "docs/usage.md": "Use it.\n",
            "README.md": "# calc\n\n```console\n$ python -c 'import calc'\n```\n",
            "tests/test_feature.py": "from calc import power\n\n\ndef test_power():\n"
            "    assert power(2, 3) == 8\n",
        },
    )
    commit_all(repo, "close gaps")
    kinds = by_kind(gaps_json(repo))
    assert "criterion" not in kinds and "test-fail" not in kinds and "todo" not in kinds
    assert "lint" not in kinds and "readme" not in kinds
    assert set(kinds) == {"test-error", "type", "skipped", "xfailed", "debug", "untested"}


def test_not_a_repository_exits_2(tmp_path: Path) -> None:
    result = autopack("gaps", "-C", str(tmp_path))
    assert result.exit_code == 2
    assert "is not a git repository" in result.stderr


def test_a_named_intention_file_that_is_missing_exits_2(project: Path, tmp_path: Path) -> None:
    result = autopack("gaps", "-C", str(project), "--intention", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2
    assert "none.yaml" in result.stderr


def test_a_repository_without_a_commit_exits_2(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    result = autopack("gaps", "-C", str(tmp_path))
    assert result.exit_code == 2
    assert "has no commit yet" in result.stderr


def test_untested_functions_are_found_when_the_project_collects_coverage_in_parallel(
    tmp_path: Path,
) -> None:
    """A project's ``[tool.coverage.run] parallel = true`` renames coverage's data file;
    the per-test map must not be lost to it (attrs configures this)."""
    repo = gappy_project(tmp_path / "calc")
    pyproject = (repo / "pyproject.toml").read_text()
    write(repo, {"pyproject.toml": pyproject + "\n[tool.coverage.run]\nparallel = true\n"})
    commit_all(repo, "coverage in parallel")
    untested = by_kind(gaps_json(repo))["untested"]
    assert sorted(g["ref"] for g in untested) == ["scale", "typed"]


def test_an_rst_readme_and_the_folder_of_a_cd(tmp_path: Path) -> None:
    repo = tmp_path / "tool"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    readme = (
        "Tool\n====\n\n.. code-block:: console\n\n   $ cd sub\n   $ test -f here.txt\n"
        "   $ test -f missing.txt\n\n.. code-block:: bash\n\n   exit 3\n"
        "   mytool <file> \\\n      --verbose\n"
    )
    write(repo, {"README.rst": readme, "sub/here.txt": "x\n"})
    commit_all(repo, "start")
    data = gaps_json(repo)
    assert [(g["line"], g["ref"]) for g in data["gaps"]] == [
        (8, "test -f missing.txt"),
        (12, "exit 3"),
    ]
    assert "README.rst: 1 command(s) skipped at lines 13 (has a placeholder)" in data["notes"]
    assert git(repo, "status", "--porcelain") == ""  # the commands ran in an export
