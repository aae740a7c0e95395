"""Unified diffs as models write them: drifted numbers, bare headers, wrong counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from edits_helpers import Apply, snapshot

from autopack.edits import parse_edits, unified_diff

BEFORE = "".join(f"line {n}\n" for n in range(1, 41))
AFTER = BEFORE.replace("line 20\n", "line twenty\n")


@pytest.fixture
def target(root: Path) -> Path:
    path = root / "f.txt"
    path.write_text(BEFORE)
    return path


def diff(old: str = BEFORE, new: str = AFTER) -> str:
    return unified_diff(old, new, "f.txt")


def test_exact_diff(target: Path, apply: Apply) -> None:
    report = apply(diff())
    assert report.format == "unified" and report.hunks[0].line == 17
    assert target.read_text() == AFTER


@pytest.mark.parametrize("shift", [-12, -3, 5, 30])
def test_line_number_drift(target: Path, apply: Apply, shift: int) -> None:
    text = diff().replace("@@ -17,7 +17,7 @@", f"@@ -{17 + shift},7 +{17 + shift},7 @@")
    assert apply(text).applied
    assert target.read_text() == AFTER


def test_bare_hunk_header(target: Path, apply: Apply) -> None:
    assert apply(diff().replace("@@ -17,7 +17,7 @@", "@@ @@")).applied
    assert target.read_text() == AFTER


def test_wrong_counts_and_missing_context(target: Path, apply: Apply) -> None:
    lines = diff().splitlines(keepends=True)
    trimmed = [line for line in lines if line not in (" line 17\n", " line 23\n")]
    assert apply("".join(trimmed)).applied
    assert target.read_text() == AFTER


def test_extra_context_beyond_the_counts(target: Path, apply: Apply) -> None:
    text = diff().replace(" line 23\n", " line 23\n line 24\n line 25\n")
    assert apply(text).applied
    assert target.read_text() == AFTER


def test_extra_change_beyond_the_counts_is_not_dropped(target: Path, apply: Apply) -> None:
    text = diff().replace(" line 23\n", " line 23\n-line 24\n+line 24!\n")
    assert apply(text).applied
    assert target.read_text() == AFTER.replace("line 24\n", "line 24!\n")


def test_crlf_file_with_lf_diff(target: Path, apply: Apply) -> None:
    target.write_bytes(BEFORE.replace("\n", "\r\n").encode())
    assert apply(diff()).applied
    assert target.read_bytes() == AFTER.replace("\n", "\r\n").encode()


def test_already_applied_diff(target: Path, apply: Apply) -> None:
    target.write_text(AFTER)
    report = apply(diff())
    assert report.already_applied and report.hunks[0].status == "already_applied"
    assert target.read_text() == AFTER


def test_hint_picks_one_of_two_identical_places(target: Path, apply: Apply) -> None:
    doubled = BEFORE + BEFORE
    target.write_text(doubled)
    report = apply(unified_diff(doubled, BEFORE + AFTER, "f.txt"))
    assert report.hunks[0].rung == "near_hint"
    assert target.read_text() == BEFORE + AFTER


def test_two_identical_places_without_a_usable_hint_are_refused(target: Path, apply: Apply) -> None:
    doubled = BEFORE + BEFORE
    target.write_text(doubled)
    before = snapshot(target.parent)
    report = apply(diff().replace("@@ -17,7 +17,7 @@", "@@ @@"))
    assert report.hunks[0].reason == "ambiguous"
    assert [c["line"] for c in report.hunks[0].candidates] == [17, 57]
    assert snapshot(target.parent) == before


def test_context_not_in_the_file_is_refused(target: Path, apply: Apply) -> None:
    before = snapshot(target.parent)
    report = apply(diff().replace(" line 18\n", " line eighteen\n"))
    hunk = report.hunks[0]
    assert (hunk.status, hunk.reason) == ("refused", "no_match")
    assert hunk.candidates[0]["first_difference"] == {
        "line": 18,
        "expected": "line eighteen",
        "found": "line 18",
    }
    assert snapshot(target.parent) == before


def test_two_hunks_second_drifted_by_the_first(target: Path, apply: Apply) -> None:
    after = BEFORE.replace("line 5\n", "line 5\nnew a\nnew b\n").replace("line 35\n", "L35\n")
    assert apply(diff(BEFORE, after)).applied
    assert target.read_text() == after


def test_new_file_delete_and_rename(root: Path, apply: Apply) -> None:
    (root / "old.txt").write_text("gone\n")
    (root / "a.txt").write_text("alpha\nbeta\n")
    text = (
        "diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n"
        "@@ -0,0 +1,2 @@\n+hello\n+world\n"
        "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"
        "diff --git a/a.txt b/b.txt\nsimilarity index 60%\nrename from a.txt\nrename to b.txt\n"
        "--- a/a.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n alpha\n-beta\n+BETA\n"
    )
    report = apply(text)
    assert report.applied, report.to_text()
    assert sorted(report.changed_files) == ["a.txt", "b.txt", "new.txt", "old.txt"]
    assert (root / "new.txt").read_text() == "hello\nworld\n"
    assert not (root / "old.txt").exists() and not (root / "a.txt").exists()
    assert (root / "b.txt").read_text() == "alpha\nBETA\n"
    assert apply(text).already_applied


def test_delete_of_changed_content_is_refused(root: Path, apply: Apply) -> None:
    (root / "old.txt").write_text("someone changed me\n")
    report = apply("--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n")
    assert report.hunks[0].reason == "content_mismatch"
    assert (root / "old.txt").exists()


def test_hunks_without_file_names_are_a_parse_error(apply: Apply) -> None:
    report = apply("@@ -1 +1 @@\n-a\n+b\n")
    assert report.refusals[0]["reason"] == "parse"


def test_no_newline_markers_are_honoured() -> None:
    hunk = parse_edits(unified_diff("a\nb", "a\nc\n", "f")).files[0].hunks[0]
    assert hunk.search == ("a\n", "b") and hunk.replace == ("a\n", "c\n")


def test_replacement_seen_far_away_is_not_taken_for_already_applied(
    root: Path, apply: Apply
) -> None:
    text = "a\nb\ngone\nc\nd\n" + "".join(f"pad {n}\n" for n in range(40)) + "a\nb\nc\nd\n"
    (root / "f.txt").write_text(text)
    edit = "--- a/f.txt\n+++ b/f.txt\n@@ -1,5 +1,4 @@\n a\n b\n-gone, edited\n c\n d\n"
    report = apply(edit)
    assert (report.applied, report.hunks[0].reason) == (False, "no_match")
    assert (root / "f.txt").read_text() == text
