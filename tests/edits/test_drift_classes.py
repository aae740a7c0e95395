"""The remaining drift classes and refusal reasons, each with its own test."""

from __future__ import annotations

import json
from pathlib import Path

from edits_helpers import Apply, snapshot, sr

from autopack.edits import PathPolicy, apply_edits, parse_edits, unified_diff

CODE = "".join(
    f"def f{n}(x):\n    if x > {n}:\n        return x - {n}\n    return {n}\n\n\n" for n in range(8)
)


def test_elided_context_in_a_diff(root: Path, apply: Apply) -> None:
    (root / "m.py").write_text(CODE)
    after = CODE.replace("return x - 2\n", "return x - 20\n").replace("return 3\n", "return 30\n")
    lines = unified_diff(CODE, after, "m.py").splitlines(keepends=True)
    first_change = next(n for n, line in enumerate(lines) if line.startswith("-    "))
    last_change = max(n for n, line in enumerate(lines) if line.startswith("+    "))
    inner = [n for n in range(first_change, last_change) if lines[n].startswith(" ")]
    elided = [*lines[: inner[1]], "...\n", *lines[inner[-2] :]]
    report = apply("".join(elided))
    assert report.applied, report.to_text()
    assert (root / "m.py").read_text() == after


def test_elision_comment_in_a_search_block(root: Path, apply: Apply) -> None:
    (root / "m.py").write_text(CODE)
    search = "def f5(x):\n    # ... existing code ...\n    return 5\n"
    replace = "def f5(x):\n    # ... existing code ...\n    return 50\n"
    assert apply(sr("m.py", search, replace)).applied
    assert (root / "m.py").read_text() == CODE.replace("return 5\n", "return 50\n")


def test_bare_ellipsis_in_a_search_block_is_literal(root: Path, apply: Apply) -> None:
    (root / "p.py").write_text("class P:\n    def f(self) -> int:\n        ...\n")
    search = "    def f(self) -> int:\n        ...\n"
    replace = "    def f(self) -> str:\n        ...\n"
    assert apply(sr("p.py", search, replace)).applied
    assert (root / "p.py").read_text() == "class P:\n    def f(self) -> str:\n        ...\n"


def test_curly_quotes_in_one_hunk_straighten_the_others(root: Path, apply: Apply) -> None:
    text = 'a = "x"\n' + "pad\n" * 12 + "b = 1\n"
    (root / "q.py").write_text(text)
    after = 'a = "y"\n' + "pad\n" * 12 + 'b = "z"\n'
    curly = unified_diff(text, after, "q.py").replace('"', "\u201d")
    report = apply(curly)
    assert report.applied, report.to_text()
    assert (root / "q.py").read_text() == after


def test_tabs_written_for_a_spaces_file_are_converted(root: Path, apply: Apply) -> None:
    (root / "m.py").write_text(CODE)
    after = CODE.replace("        return x - 4\n", "        y = x - 4\n        return y\n")
    lines = unified_diff(CODE, after, "m.py").splitlines(keepends=True)
    tabbed = lines[:3] + [line[0] + line[1:].replace("    ", "\t") for line in lines[3:]]
    assert apply("".join(tabbed)).applied
    assert (root / "m.py").read_text() == after


def test_no_context_is_refused(root: Path, apply: Apply) -> None:
    (root / "a.txt").write_text("one\n")
    report = apply("--- a/a.txt\n+++ b/a.txt\n@@ -1,0 +2 @@\n+two\n")
    assert report.hunks[0].reason == "no_context"
    snippet = apply(json.dumps({"path": "a.txt", "old": "", "new": "x"}))
    assert snippet.hunks[0].reason == "no_context"
    assert (root / "a.txt").read_text() == "one\n"


def test_replacement_that_cannot_be_reindented_is_refused(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("if x:\n  y = 1\n")
    before = snapshot(root)
    report = apply(sr("a.py", "    y = 1\n", "    y = 2\nz = 3\n"))
    assert report.hunks[0].reason == "reindent"
    assert snapshot(root) == before


def test_change_the_encoding_cannot_hold_is_refused(root: Path, apply: Apply) -> None:
    (root / "l.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    report = apply(sr("l.txt", "caf\xe9\n", "caf\u00e9 \u2713\n"))
    assert [h.reason for h in report.hunks if h.status == "refused"] == ["encoding"]
    assert (root / "l.txt").read_bytes() == "caf\xe9\n".encode("latin-1")


def test_a_directory_is_not_a_file(root: Path, apply: Apply) -> None:
    (root / "pkg").mkdir()
    report = apply(sr("pkg", "x\n", "y\n"))
    assert report.hunks[0].reason == "not_a_file"


def test_dry_run_validates_without_writing(root: Path) -> None:
    (root / "a.py").write_text("x = 1\n")
    report = apply_edits(
        parse_edits(sr("a.py", "x = 1\n", "x = 2\n")), PathPolicy(root), dry_run=True
    )
    assert report.applied and report.changed_files == ["a.py"]
    assert report.hunks[0].status == "matched"
    assert (root / "a.py").read_text() == "x = 1\n"
