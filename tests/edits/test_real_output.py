"""What real model output does that perturbed release diffs did not: each case from a
minimal reproduction of a patch a language-model system wrote (issue #16)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edits_helpers import Apply

from autopack.edits import parse_edits

MODULE = "import os\n\n\ndef size(path):\n    return os.path.getsize(path)\n"
CHANGE = (
    "--- a/tool.py\n+++ b/tool.py\n@@ -4,2 +4,3 @@\n def size(path):\n"
    "+    path = os.fspath(path)\n     return os.path.getsize(path)\n"
)
CHANGED = MODULE.replace("(path):\n", "(path):\n    path = os.fspath(path)\n")


def _git_apply(root: Path, diff: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "apply", "-"], cwd=root, input=diff.encode(), capture_output=True, check=False
    )


def test_whitespace_only_lines_after_the_last_hunk_are_ignored_like_git(
    root: Path, apply: Apply
) -> None:
    tail = CHANGE + " \n\n  \n"
    (root / "tool.py").write_text(MODULE)
    assert _git_apply(root, tail).returncode == 0
    by_git = (root / "tool.py").read_bytes()
    (root / "tool.py").write_text(MODULE)
    report = apply(tail)
    assert report.applied, report.to_text()
    assert (root / "tool.py").read_bytes() == by_git == CHANGED.encode()


def test_a_diff_cut_before_its_final_newline_keeps_the_files_final_newline(
    root: Path, apply: Apply
) -> None:
    (root / "tool.py").write_text(MODULE)
    report = apply(CHANGE.rstrip("\n"))  # ends on the unchanged last line of the file
    assert report.applied, report.to_text()
    assert (root / "tool.py").read_text() == CHANGED  # what the clean patch gives


def test_the_no_newline_marker_still_drops_the_final_newline(root: Path, apply: Apply) -> None:
    (root / "tool.py").write_text(MODULE.rstrip("\n"))
    marked = CHANGE + "\\ No newline at end of file"  # and the text is cut after it
    report = apply(marked)
    assert report.applied, report.to_text()
    assert (root / "tool.py").read_text() == CHANGED.rstrip("\n")


def test_a_created_file_keeps_the_crlf_its_patch_lines_have(root: Path, apply: Apply) -> None:
    diff = "--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1,2 @@\n+first\r\n+second\r\n"
    assert apply(diff).applied
    assert (root / "notes.txt").read_bytes() == b"first\r\nsecond\r\n"


def test_new_file_mode_100755_makes_an_executable_file(root: Path, apply: Apply) -> None:
    diff = (
        "diff --git a/run.sh b/run.sh\nnew file mode 100755\n--- /dev/null\n+++ b/run.sh\n"
        "@@ -0,0 +1,2 @@\n+#!/bin/sh\n+echo ok\n"
    )
    assert apply(diff).applied
    assert (root / "run.sh").stat().st_mode & 0o777 == 0o755


def test_a_mode_change_alone_is_applied(root: Path, apply: Apply) -> None:
    (root / "run.sh").write_text("echo ok\n")
    (root / "run.sh").chmod(0o644)
    diff = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
    assert apply(diff).applied
    assert (root / "run.sh").stat().st_mode & 0o777 == 0o755


DUPLICATED = "def a():\n    x = 1\n    return x\n\n\ndef b():\n    x = 1\n    return x\n"


def test_context_on_one_side_does_not_pick_a_copy_at_the_file_edge(
    root: Path, apply: Apply
) -> None:
    (root / "dup.py").write_text(DUPLICATED)
    for diff in (
        "--- a/dup.py\n+++ b/dup.py\n@@ @@\n     x = 1\n-    return x\n+    return x + 1\n",
        "--- a/dup.py\n+++ b/dup.py\n@@ @@\n-    x = 1\n+    x = 2\n     return x\n",
    ):
        report = apply(diff)
        assert not report.applied
        assert report.hunks[0].reason == "ambiguous"
        assert [c["line"] for c in report.hunks[0].candidates] == [2, 7]
    assert (root / "dup.py").read_text() == DUPLICATED


def test_a_reply_mixing_formats_applies_every_edit(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("A = 0\n")
    reply = (
        "First the constant:\n\na.py\n```python\n<<<<<<< SEARCH\nA = 0\n=======\nA = 1\n"
        ">>>>>>> REPLACE\n```\n\nand a new module:\n\nb.py\n```python\nB = 2\n```\n"
    )
    assert parse_edits(reply).format == "search-replace+whole"
    report = apply(reply)
    assert report.applied, report.to_text()
    assert (root / "a.py").read_text() == "A = 1\n"
    assert (root / "b.py").read_text() == "B = 2\n"


def test_a_reply_mixing_a_diff_and_a_whole_file_applies_both(root: Path, apply: Apply) -> None:
    (root / "tool.py").write_text(MODULE)
    reply = f"```diff\n{CHANGE}```\n\nnotes.md\n```\n- one\n+ two\n```\n"
    report = apply(reply)
    assert report.applied, report.to_text()
    assert (root / "tool.py").read_text() == CHANGED
    assert (root / "notes.md").read_text() == "- one\n+ two\n"


def test_a_mixed_reply_with_one_bad_edit_writes_nothing(root: Path, apply: Apply) -> None:
    (root / "a.py").write_text("A = 0\n")
    reply = (
        "a.py\n<<<<<<< SEARCH\nA = 9\n=======\nA = 1\n>>>>>>> REPLACE\n\n"
        "b.py\n```python\nB = 2\n```\n"
    )
    report = apply(reply)
    assert not report.applied
    assert (root / "a.py").read_text() == "A = 0\n"
    assert not (root / "b.py").exists()
