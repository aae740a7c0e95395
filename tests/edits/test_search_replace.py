"""Search/replace blocks through the matching ladder: each drift lands exactly or is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from edits_helpers import Apply, snapshot, sr

SOURCE = """def greet(name):
    message = "Hello, " + name
    print(message)
    return message


def part(x):
    return x - 1
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_exact_block_applies_and_reports_rung_and_line(root: Path, apply: Apply) -> None:
    path = write(root, "src/g.py", SOURCE)
    report = apply(sr("src/g.py", "    print(message)\n", "    log(message)\n"))
    assert report.applied and report.changed_files == ["src/g.py"]
    assert (report.hunks[0].status, report.hunks[0].rung, report.hunks[0].line) == (
        "applied",
        "exact",
        3,
    )
    assert path.read_text() == SOURCE.replace("print(message)", "log(message)")


def test_trailing_whitespace_drift(root: Path, apply: Apply) -> None:
    path = write(root, "g.py", SOURCE)
    report = apply(
        sr("g.py", "def part(x):   \n    return x - 1 \n", "def part(x):\n    return x\n")
    )
    assert report.hunks[0].rung == "trailing_whitespace"
    assert path.read_text().endswith("def part(x):\n    return x\n")


def test_dedented_edit_is_reindented(root: Path, apply: Apply) -> None:
    path = write(root, "g.py", SOURCE)
    search = 'message = "Hello, " + name\nprint(message)\n'
    replace = 'message = "Hi, " + name\nif name:\n    print(message)\n'
    report = apply(sr("g.py", search, replace))
    assert report.hunks[0].rung == "indentation"
    expected = SOURCE.replace(
        '    message = "Hello, " + name\n    print(message)\n',
        '    message = "Hi, " + name\n    if name:\n        print(message)\n',
    )
    assert path.read_text() == expected


def test_spaces_edit_on_tab_file_keeps_tabs(root: Path, apply: Apply) -> None:
    path = write(root, "t.py", "def f():\n\tif x:\n\t\treturn 1\n")
    report = apply(sr("t.py", "    if x:\n        return 1\n", "    if x:\n        return 2\n"))
    assert report.applied
    assert path.read_text() == "def f():\n\tif x:\n\t\treturn 2\n"


def test_two_space_edit_on_four_space_file(root: Path, apply: Apply) -> None:
    path = write(root, "g.py", SOURCE)
    report = apply(
        sr("g.py", "def part(x):\n  return x - 1\n", "def part(x):\n  y = x\n  return y\n")
    )
    assert report.applied
    assert path.read_text().endswith("def part(x):\n    y = x\n    return y\n")


def test_typographic_quotes_are_straightened(root: Path, apply: Apply) -> None:
    path = write(root, "g.py", SOURCE)
    search = "    message = \u201cHello, \u201d + name\n"
    replace = "    message = \u201cHey, \u201d + name\n"
    report = apply(sr("g.py", search, replace))
    assert report.hunks[0].rung == "typographic"
    assert '    message = "Hey, " + name\n' in path.read_text()


def test_no_match_is_refused_with_closest_candidate(root: Path, apply: Apply) -> None:
    write(root, "g.py", SOURCE)
    before = snapshot(root)
    report = apply(sr("g.py", "def part(x):\n    return x + 1\n", "def part(x):\n    pass\n"))
    assert not report.applied and snapshot(root) == before
    hunk = report.hunks[0]
    assert (hunk.status, hunk.reason) == ("refused", "no_match")
    assert hunk.candidates[0]["line"] == 7
    assert hunk.candidates[0]["first_difference"]["found"] == "    return x - 1"
    assert "candidate at line 7" in report.to_text()


def test_ambiguous_match_is_refused_listing_every_place(root: Path, apply: Apply) -> None:
    write(root, "d.py", "a = 1\nb = 2\n\na = 1\nc = 3\n")
    before = snapshot(root)
    report = apply(sr("d.py", "a = 1\n", "a = 10\n"))
    assert not report.applied and snapshot(root) == before
    assert report.hunks[0].reason == "ambiguous"
    assert [c["line"] for c in report.hunks[0].candidates] == [1, 4]


def test_already_applied_is_reported_not_repeated(root: Path, apply: Apply) -> None:
    path = write(root, "i.py", "import os\n\nx = 1\n")
    block = sr("i.py", "import os\n", "import os\nimport sys\n")
    assert apply(block).applied
    after = path.read_bytes()
    second = apply(block)
    assert second.applied and second.already_applied
    assert second.hunks[0].status == "already_applied"
    assert second.changed_files == [] and path.read_bytes() == after


def test_one_bad_hunk_refuses_the_whole_set(root: Path, apply: Apply) -> None:
    write(root, "a.py", "x = 1\n")
    write(root, "b.py", "y = 1\n")
    before = snapshot(root)
    report = apply(sr("a.py", "x = 1\n", "x = 2\n") + sr("b.py", "nope\n", "y = 2\n"))
    assert not report.applied and snapshot(root) == before
    assert [h.status for h in report.hunks] == ["matched", "refused"]
    assert "not written" in report.to_text()


def test_two_blocks_on_one_file_apply_in_order(root: Path, apply: Apply) -> None:
    path = write(root, "g.py", SOURCE)
    text = sr("g.py", "    print(message)\n", "    log(message)\n")
    text += sr("g.py", "    return x - 1\n", "    return x - 2\n")
    report = apply(text)
    assert [h.index for h in report.hunks] == [1, 2]
    assert "log(message)" in path.read_text() and "x - 2" in path.read_text()


def test_crlf_bom_and_missing_final_newline_are_kept(root: Path, apply: Apply) -> None:
    path = root / "w.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\nthree")
    assert apply(sr("w.txt", "two\n", "TWO\nand more\n")).applied
    assert path.read_bytes() == b"\xef\xbb\xbfone\r\nTWO\r\nand more\r\nthree"


def test_latin1_file_keeps_its_bytes(root: Path, apply: Apply) -> None:
    path = root / "l.txt"
    path.write_bytes("caf\xe9\nx = 1\n".encode("latin-1"))
    assert apply(sr("l.txt", "x = 1\n", "x = 2\n")).applied
    assert path.read_bytes() == "caf\xe9\nx = 2\n".encode("latin-1")


def test_file_mode_is_kept(root: Path, apply: Apply) -> None:
    path = write(root, "run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(path, 0o755)
    assert apply(sr("run.sh", "echo hi\n", "echo bye\n")).applied
    assert path.stat().st_mode & 0o777 == 0o755


def test_empty_search_creates_a_missing_file(root: Path, apply: Apply) -> None:
    report = apply(sr("src/pkg/new.py", "", "VALUE = 1\n"))
    assert report.applied and report.changed_files == ["src/pkg/new.py"]
    assert (root / "src/pkg/new.py").read_text() == "VALUE = 1\n"
    assert apply(sr("src/pkg/new.py", "", "VALUE = 1\n")).already_applied


def test_empty_search_on_existing_file_is_refused(root: Path, apply: Apply) -> None:
    write(root, "a.py", "x = 1\n")
    report = apply(sr("a.py", "", "y = 2\n"))
    assert report.hunks[0].reason == "exists"
    assert (root / "a.py").read_text() == "x = 1\n"


def test_missing_file_is_refused(apply: Apply) -> None:
    report = apply(sr("ghost.py", "x\n", "y\n"))
    assert report.hunks[0].reason == "missing_file"


def test_unparseable_text_is_a_refused_report(apply: Apply) -> None:
    report = apply("just some prose, no edit here")
    assert not report.applied
    assert report.refusals[0]["reason"] == "parse"


def test_binary_file_is_refused(root: Path, apply: Apply) -> None:
    (root / "b.bin").write_bytes(b"\x00\x01x = 1\n")
    report = apply(sr("b.bin", "x = 1\n", "x = 2\n"))
    assert report.hunks[0].reason == "binary"


def test_fenced_blocks_and_decorated_paths_parse(root: Path, apply: Apply) -> None:
    path = write(root, "a.py", "x = 1\n")
    text = "Here is the change:\n\n`a.py`\n```python\n" + sr("", "x = 1\n", "x = 2\n")[1:] + "```\n"
    assert apply(text).applied
    assert path.read_text() == "x = 2\n"


def test_a_failed_write_puts_back_the_files_already_written(
    root: Path, apply: Apply, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(root, "a.py", "x = 1\n")
    write(root, "b.py", "y = 1\n")
    before = snapshot(root)
    real_replace = os.replace
    calls = []

    def disk_full_on_second(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("autopack.edits.apply.os.replace", disk_full_on_second)
    report = apply(sr("a.py", "x = 1\n", "x = 2\n") + sr("b.py", "y = 1\n", "y = 2\n"))
    monkeypatch.undo()
    assert not report.applied and report.changed_files == []
    assert report.refusals[0]["reason"] == "write_failed"
    assert snapshot(root) == before
