"""`autopack edits apply`: the exit-code contract and its two outputs."""

from __future__ import annotations

import json
from pathlib import Path

from edits_helpers import sr
from typer.testing import CliRunner

from autopack.edits.cli import edits_app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(edits_app, ["apply", *args])
    return result.exit_code, result.output


def edit_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edit.txt"
    path.write_text(text)
    return str(path)


def test_applied_exits_0_and_prints_text(root: Path, tmp_path: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    code, out = run(edit_file(tmp_path, sr("a.py", "x = 1\n", "x = 2\n")), "--root", str(root))
    assert code == 0 and out.startswith("APPLIED")
    assert (root / "a.py").read_text() == "x = 2\n"


def test_refused_exits_1_with_json_report(root: Path, tmp_path: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    edit = edit_file(tmp_path, sr("a.py", "x = 5\n", "x = 2\n"))
    code, out = run(edit, "--root", str(root), "--json")
    report = json.loads(out)
    assert code == 1 and report["applied"] is False
    assert report["hunks"][0]["reason"] == "no_match"
    assert (root / "a.py").read_text() == "x = 1\n"


def test_scope_option_refuses_outside_writes(root: Path, tmp_path: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    edit = edit_file(tmp_path, sr("a.py", "x = 1\n", "x = 2\n"))
    code, out = run(edit, "--root", str(root), "--scope", "src/**", "--scope", "docs")
    assert code == 1 and "out_of_scope" in out


def test_protected_paths_come_from_settings(root: Path, tmp_path: Path) -> None:
    (root / "autopack.toml").write_text('protected_paths = ["*.lock"]\n')
    (root / "deps.lock").write_text("a\n")
    code, out = run(edit_file(tmp_path, sr("deps.lock", "a\n", "b\n")), "--root", str(root))
    assert code == 1 and "protected" in out


def test_bad_input_exits_2(root: Path, tmp_path: Path) -> None:
    assert run(edit_file(tmp_path, "no edit here"), "--root", str(root))[0] == 2
    assert run(str(tmp_path / "missing.txt"), "--root", str(root))[0] == 2
    assert run(edit_file(tmp_path, sr("a", "x\n", "y\n")), "--root", str(tmp_path / "no"))[0] == 2
    edit = edit_file(tmp_path, sr("a", "x\n", "y\n"))
    assert run(edit, "--root", str(root), "--format", "yaml")[0] == 2
    assert run(edit, "--root", str(root), "--format", "unified")[0] == 2


def test_format_option_forces_a_parser(root: Path, tmp_path: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    edit = edit_file(tmp_path, "--- a/a.py\n+++ b/a.py\n@@ @@\n-x = 1\n+x = 2\n")
    code, _ = run(edit, "--root", str(root), "--format", "unified")
    assert code == 0 and (root / "a.py").read_text() == "x = 2\n"
