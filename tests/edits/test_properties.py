"""Properties that must hold for any input, checked with Hypothesis.

Idempotence is checked on texts whose lines are distinct. For repeated lines it cannot
hold together with the round trip: inserting one line into a run of identical lines
yields a file that the same diff also describes as "not yet applied", so no applier
can tell the two states apart.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autopack.edits import PathPolicy, apply_edit_text, unified_diff

# NUL makes a file binary, which the engine refuses to edit as text (tested elsewhere).
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
TEXT = st.text(CHARS, max_size=200) | st.lists(
    st.sampled_from(["a", "b", "", " a", "\ta", "x = 1", "a\r"]), max_size=12
).map("\n".join)
LINES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"))
DISTINCT = st.lists(LINES, unique=True, max_size=15)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _apply(root: Path, text: str) -> bool:
    return apply_edit_text(text, PathPolicy(root)).applied


@SETTINGS
@given(old=TEXT, new=TEXT)
def test_unified_diff_from_a_to_b_applied_to_a_gives_b(old: str, new: str) -> None:
    assume(old != new)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.txt"
        path.write_bytes(old.encode())
        report = apply_edit_text(unified_diff(old, new, "f.txt"), PathPolicy(Path(tmp)))
        assert report.applied, report.to_text()
        assert path.read_bytes() == new.encode()


@SETTINGS
@given(old=TEXT, new=TEXT, other=TEXT)
def test_a_refused_edit_never_changes_a_byte(old: str, new: str, other: str) -> None:
    assume(old != new)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.txt").write_bytes(other.encode())
        (root / "g.txt").write_bytes(b"keep\n")
        edit = unified_diff(old, new, "f.txt") + unified_diff("keep\n", "changed\n", "g.txt")
        report = apply_edit_text(edit, PathPolicy(root))
        if not report.applied:
            assert (root / "f.txt").read_bytes() == other.encode()
            assert (root / "g.txt").read_bytes() == b"keep\n"


@SETTINGS
@given(lines=DISTINCT, data=st.data())
def test_applying_the_same_edit_twice_equals_applying_it_once(
    lines: list[str], data: st.DataObject
) -> None:
    new_lines = data.draw(st.permutations(lines).map(list) | DISTINCT)
    old, new = "".join(f"{x}\n" for x in lines), "".join(f"{x}\n" for x in new_lines)
    assume(old != new)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.txt"
        path.write_text(old)
        edit = unified_diff(old, new, "f.txt")
        _apply(Path(tmp), edit)
        once = path.read_bytes()
        second = apply_edit_text(edit, PathPolicy(Path(tmp)))
        assert path.read_bytes() == once
        assert second.already_applied or not second.applied


@SETTINGS
@given(lines=DISTINCT, start=st.integers(0, 15), size=st.integers(1, 4), repl=DISTINCT)
def test_search_replace_twice_equals_once(
    lines: list[str], start: int, size: int, repl: list[str]
) -> None:
    assume(start < len(lines))
    search = "".join(f"{x}\n" for x in lines[start : start + size])
    replace = "".join(f"{x}\n" for x in repl)
    assume(search != replace)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.txt"
        path.write_text("".join(f"{x}\n" for x in lines))
        edit = f"f.txt\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"
        _apply(Path(tmp), edit)
        once = path.read_bytes()
        apply_edit_text(edit, PathPolicy(Path(tmp)))
        assert path.read_bytes() == once
