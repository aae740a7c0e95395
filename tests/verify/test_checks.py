"""Checks besides tests: what a reviewer would catch at a glance."""

from __future__ import annotations

from pathlib import Path

from autopack.verify import run_checks


def by_name(results: list) -> dict:
    return {r.name: r for r in results}


def test_checks_catch_syntax_errors_missing_deliverables_and_scope(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("def broken(:\n")
    (tmp_path / "empty.md").write_text("")
    report = {"files": [{"path": "../etc/passwd", "status": "refused", "reason": "outside"}]}
    results = by_name(
        run_checks(
            tmp_path,
            changed_files=["good.py", "bad.py"],
            deliverables=["good.py", "empty.md", "missing.md"],
            edits_report=report,
            ruff=False,
        )
    )
    assert not results["compile"].passed and "bad.py" in results["compile"].detail
    assert "good.py" not in results["compile"].detail
    assert not results["deliverables"].passed
    assert "missing: missing.md" in results["deliverables"].detail
    assert "empty: empty.md" in results["deliverables"].detail
    assert not results["scope"].passed and "../etc/passwd" in results["scope"].detail


def test_ruff_runs_only_when_the_project_configures_it(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("import os\n")
    common = dict(changed_files=["mod.py"], deliverables=[], edits_report={}, ruff=True)
    assert "ruff" not in by_name(run_checks(tmp_path, **common))
    (tmp_path / "ruff.toml").write_text("")
    result = by_name(run_checks(tmp_path, **common))["ruff"]
    assert not result.passed
    assert "F401" in result.detail
