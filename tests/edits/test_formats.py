"""Whole-file blocks, JSON snippet replace, directives, and format detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edits_helpers import Apply, sr

from autopack.edits import EditParseError, detect_format, parse_edits


def test_whole_file_replaces_and_creates(root: Path, apply: Apply) -> None:
    (root / "a.py").write_bytes(b"x = 1\r\ny = 2\r\n")
    text = (
        "Updated:\n\na.py\n```python\nx = 10\ny = 2\n```\n\nsrc/b.md\n````\n```\ncode\n```\n````\n"
    )
    report = apply(text)
    assert report.format == "whole" and report.applied
    assert (root / "a.py").read_bytes() == b"x = 10\r\ny = 2\r\n"
    assert (root / "src/b.md").read_text() == "```\ncode\n```\n"
    assert apply(text).already_applied


def test_snippet_replace_exact_text(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("total = price * qty  # euros\n")
    edit = json.dumps({"path": "a.py", "old": "price * qty", "new": "price * qty * 1.2"})
    report = apply(edit)
    assert report.format == "replace" and report.applied
    assert (root / "a.py").read_text() == "total = price * qty * 1.2  # euros\n"
    assert apply(edit).already_applied


def test_snippet_replace_ambiguous_and_missing(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("x = 1\nx = 1\n")
    ambiguous = apply(json.dumps({"path": "a.py", "old": "x = 1", "new": "x = 2"}))
    assert ambiguous.hunks[0].reason == "ambiguous"
    missing = apply(json.dumps([{"path": "a.py", "old": "y = 1", "new": "y = 2"}]))
    assert missing.hunks[0].reason == "no_match"
    assert (root / "a.py").read_text() == "x = 1\nx = 1\n"


def test_snippet_of_whole_lines_uses_the_ladder(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("def f():\n    return 1\n")
    edit = json.dumps({"path": "a.py", "old": "return 1\n", "new": "return 2\n"})
    assert apply(edit).applied
    assert (root / "a.py").read_text() == "def f():\n    return 2\n"


def test_delete_and_rename_directives(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("A = 1\n")
    (root / "b.py").write_text("B = 1\n")
    text = "*** Delete File: a.py\n*** Rename File: b.py -> pkg/c.py\n"
    text += sr("pkg/c.py", "B = 1\n", "C = 1\n")
    report = apply(text)
    assert report.applied, report.to_text()
    assert not (root / "a.py").exists() and not (root / "b.py").exists()
    assert (root / "pkg/c.py").read_text() == "C = 1\n"
    assert apply(text).already_applied


def test_rename_onto_existing_file_is_refused(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("A\n")
    (root / "b.py").write_text("B\n")
    report = apply("*** Rename File: a.py -> b.py\n")
    assert report.hunks[0].reason == "exists"
    assert (root / "a.py").read_text() == "A\n" and (root / "b.py").read_text() == "B\n"


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (sr("a.py", "x\n", "y\n"), "search-replace"),
        ("--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n", "unified"),
        ("a.py\n```\ny\n```\n", "whole"),
        ('{"path": "a.py", "old": "x", "new": "y"}', "replace"),
        ("*** Delete File: a.py\n", "search-replace"),
    ],
)
def test_format_detection(text: str, fmt: str) -> None:
    assert detect_format(text) == fmt


@pytest.mark.parametrize(
    "text",
    [
        "no edits at all",
        "a.py\n<<<<<<< SEARCH\nx\n=======\ny\n",
        "<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n",
        '{"path": "a.py", "old": "x"}',
        "a.py\n```\nnever closed\n",
    ],
)
def test_malformed_text_is_a_parse_error(text: str) -> None:
    with pytest.raises(EditParseError):
        parse_edits(text)


def test_explicit_format_is_respected() -> None:
    with pytest.raises(EditParseError):
        parse_edits(sr("a.py", "x\n", "y\n"), "replace")
    with pytest.raises(EditParseError):
        parse_edits("x", "yaml")


def test_rst_underline_inside_a_block_is_content(root: Path, apply: Apply) -> None:
    (root / "doc.rst").write_text("Title\n=====\n\nBody.\n")
    report = apply(sr("doc.rst", "Title\n=====\n", "New title\n=========\n"))
    assert report.applied, report.to_text()
    assert (root / "doc.rst").read_text() == "New title\n=========\n\nBody.\n"


def test_several_seven_equals_lines_are_a_parse_error() -> None:
    with pytest.raises(EditParseError):
        parse_edits(sr("doc.rst", "Title\n=======\n", "Other\n=======\n"))
