"""Where a hunk lands: the matching ladder, and the exact lines that replace the match.

The ladder tries, in a fixed order, ever looser ways to compare lines: exact, then
ignoring trailing whitespace, then ignoring leading indentation (the replacement is
re-indented the same way), then normalising typographic quotes and dashes. It stops at
the first rung where the hunk is found. A hunk found in several places is resolved by
its line hint only when the hint singles one out (rung ``near_hint``); otherwise the
hunk is refused as ambiguous. A rung never continues past an ambiguity, because a
looser rung only finds more places.

Lines the edit keeps (context) are copied from the file, not from the edit, so drift
in the edit's whitespace or quotes never leaks into lines the change did not touch.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any

from autopack.edits.model import Hunk
from autopack.edits.textfile import content, dominant_ending, ending

HINT_WINDOW = 25
"""How far (in lines) a drifted hint may be from the one place it singles out."""
SHOWN_DIFFERENCES = 3
"""Differing lines a refusal report quotes for each candidate."""

_TYPOGRAPHIC = {
    "single": ("\u2018\u2019\u201a\u201b\u2032", "'"),
    "double": ("\u201c\u201d\u201e\u201f\u2033", '"'),
    "dash": ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    "ellipsis": ("\u2026", "..."),
    "space": ("\u00a0\u2007\u202f", " "),
}
_TYPO_TABLE = {ord(ch): plain for chars, plain in _TYPOGRAPHIC.values() for ch in chars}

Reindent = Callable[[str], str | None]


@dataclass(frozen=True)
class Rung:
    """One way of comparing lines; ``reindent`` rungs re-indent the replacement."""

    name: str
    key: Callable[[str], str]
    reindent: bool = False
    typographic: bool = False


def _typo_key(line: str) -> str:
    return line.translate(_TYPO_TABLE).strip()


LADDER = (
    Rung("exact", lambda line: line),
    Rung("trailing_whitespace", str.rstrip),
    Rung("indentation", str.strip, reindent=True),
    Rung("typographic", _typo_key, reindent=True, typographic=True),
)


@dataclass(frozen=True)
class Hints:
    """What the edit says about where a hunk goes, besides its lines."""

    expected: int | None = None
    """0-based line the hunk's line number points at, adjusted for earlier hunks."""
    min_start: int = 0
    """The hunk follows an earlier piece of the same hunk (cut at an elision) that ends here."""
    straighten: bool = False
    """The edit's search lines prove the model typed curly quotes: straighten new lines."""
    restyle: bool = False
    """The edit's search lines prove the model indented in the other style (tabs/spaces)."""


@dataclass
class Outcome:
    """What the ladder decided for one hunk against the current file lines."""

    status: str  # "apply" | "already_applied" | "refused"
    rung: str | None = None
    start: int = 0
    """0-based index of the first matched line."""
    end: int = 0
    new_lines: list[str] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Found:
    start: int
    reindent: Reindent


class Matcher:
    """Finds hunks in one file state; caches each rung's line keys for that state."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.contents = contents_of(lines)
        self._keys: dict[Rung, list[str]] = {}

    def splice(self, start: int, end: int, new_lines: list[str]) -> None:
        """Replace ``lines[start:end]`` (in place) and keep every cache in step."""
        self.lines[start:end] = new_lines
        new_contents = contents_of(new_lines)
        self.contents[start:end] = new_contents
        for rung, keys in self._keys.items():
            keys[start:end] = [rung.key(text) for text in new_contents]
        self.__dict__.pop("dominant", None)
        self.__dict__.pop("indent_style", None)

    @cached_property
    def dominant(self) -> str:
        """The file's usual line ending, for new lines with no neighbour to copy."""
        return dominant_ending(self.lines)

    @cached_property
    def indent_style(self) -> tuple[str, int] | None:
        """("spaces", unit) or ("tabs", 1) when every indented line agrees; else None."""
        return _indent_style(self.contents)

    def keys(self, rung: Rung) -> list[str]:
        if rung is LADDER[0]:
            return self.contents
        if rung not in self._keys:
            if rung.typographic and self.contents:  # one translate beats one per line
                joined = "\n".join(self.contents).translate(_TYPO_TABLE)
                self._keys[rung] = [line.strip() for line in joined.split("\n")]
            else:
                self._keys[rung] = [rung.key(text) for text in self.contents]
        return self._keys[rung]

    def find(self, needle: Sequence[str], rung: Rung) -> list[_Found]:
        """Every place the needle (line contents) matches at this rung."""
        if not needle:
            return []
        keys = self.keys(rung)
        wanted = [rung.key(text) for text in needle]
        first, size = wanted[0], len(wanted)
        found: list[_Found] = []
        start, limit = -1, len(keys) - size + 1
        while True:
            try:
                start = keys.index(first, start + 1, max(limit, 0))
            except ValueError:
                return found
            if keys[start : start + size] != wanted:
                continue
            if not rung.reindent:
                found.append(_Found(start, _same))
                continue
            mapping = reindenter(self.contents[start : start + size], needle)
            if mapping is not None:
                found.append(_Found(start, mapping))


_TAB_INDENT = re.compile(r"^\t", re.MULTILINE)
_SPACE_INDENT = re.compile(r"^( +)\S", re.MULTILINE)


def _indent_style(contents: list[str]) -> tuple[str, int] | None:
    text = "\n".join(contents)
    tabs = _TAB_INDENT.search(text) is not None
    spaces = _SPACE_INDENT.search(text) is not None
    if tabs == spaces:
        return None
    if tabs:
        return ("tabs", 1)
    return ("spaces", max(min(len(run) for run in _SPACE_INDENT.findall(text)), 2))


def contents_of(lines: list[str]) -> list[str]:
    """Every line's content (:func:`content` for a whole file, in one fast pass)."""
    text = "".join(lines)
    parts = text.split("\n")
    if parts and not parts[-1]:
        parts.pop()  # the text ended with a line break
    if "\r" not in text:
        return parts
    last = len(parts) - 1
    terminated_last = bool(lines) and lines[-1].endswith("\n")
    return [
        part[:-1] if part.endswith("\r") and (n < last or terminated_last) else part
        for n, part in enumerate(parts)
    ]


def _same(text: str) -> str | None:
    return text


def locate(matcher: Matcher, hunk: Hunk, hints: Hints) -> Outcome:
    """Run the ladder for ``hunk`` against the file state in ``matcher``."""
    search = [content(line) for line in hunk.search]
    replace = [content(line) for line in hunk.replace]
    if not search:
        return _empty_search(matcher, hunk)
    already: Outcome | None = None
    for rung in LADDER:
        outcome, replaced = _decide(matcher, hunk, rung, search, replace, hints)
        if outcome is not None:
            return outcome
        place = _replacement_place(replaced, hints.expected)
        if already is None and place is not None:
            already = _already(rung, place.start, len(replace))
    if already is not None:
        return already
    return Outcome(
        "refused",
        reason="no_match",
        detail="the lines to change are not in the file at any rung of the ladder",
        candidates=closest(matcher, search, hints.expected),
    )


def _replacement_place(found: list[_Found], expected: int | None) -> _Found | None:
    """Where the replacement already stands, when the search lines are nowhere.

    Weaker evidence than finding the search lines, so it must be unique, or singled
    out by the line hint, and never far from the hint.
    """
    if not found:
        return None
    if expected is None:
        return found[0] if len(found) == 1 else None
    return _near_hint(found, expected)


def _empty_search(matcher: Matcher, hunk: Hunk) -> Outcome:
    if not matcher.lines:
        return _build(matcher, hunk, LADDER[0], _Found(0, _same), 0, "exact", Hints())
    if [content(line) for line in hunk.replace] == matcher.contents:
        return Outcome("already_applied", rung="exact", start=0, end=len(matcher.lines))
    return Outcome(
        "refused",
        reason="no_context",
        detail="the hunk has no lines to find; quote the lines around the change",
    )


def _decide(
    matcher: Matcher,
    hunk: Hunk,
    rung: Rung,
    search: list[str],
    replace: list[str],
    hints: Hints,
) -> tuple[Outcome | None, list[_Found]]:
    """Decide at one rung; no outcome means the search lines are not here at all (the
    caller then treats a replacement found here as already applied, if nothing looser
    finds the search lines)."""
    if rung is not LADDER[0] and not any(line.strip() for line in search):
        return None, []  # whitespace alone is no evidence once whitespace is ignored
    s_all = [f for f in matcher.find(search, rung) if f.start >= hints.min_start]
    endings_only = search == replace and hunk.search != hunk.replace
    r_all = matcher.find(replace, rung) if replace and not endings_only else []
    r_all = [f for f in r_all if f.start >= hints.min_start]
    at_hint = _at_hint(matcher, hunk, rung, s_all, r_all, hints)
    if at_hint is not None:
        return at_hint, r_all
    expected = hints.expected
    free = [s for s in s_all if not _inside(s.start, len(search), r_all, len(replace))]
    if not free and s_all:
        return _already(rung, r_all[0].start, len(replace)), r_all
    if not free:
        return None, r_all
    if len(free) == 1:
        return _build(matcher, hunk, rung, free[0], len(search), rung.name, hints), r_all
    near = _near_hint(free, expected if expected is not None else _floor(hunk, hints))
    if near is not None:
        return _build(matcher, hunk, rung, near, len(search), "near_hint", hints), r_all
    refusal = Outcome(
        "refused",
        reason="ambiguous",
        detail=f"the lines to change occur {len(free)} times (rung {rung.name}); "
        "add context lines that occur only once",
        candidates=[_candidate(matcher, search, f.start) for f in free[:5]],
    )
    return refusal, r_all


def _at_hint(
    matcher: Matcher,
    hunk: Hunk,
    rung: Rung,
    s_all: list[_Found],
    r_all: list[_Found],
    hints: Hints,
) -> Outcome | None:
    """Decide by the line hint when the search or the replacement stands exactly there."""
    expected = hints.expected
    if expected is None:
        return None
    size, new_size = len(hunk.search), len(hunk.replace)
    s_at = next((f for f in s_all if f.start == expected), None)
    r_at = any(f.start == expected for f in r_all)
    if s_at is not None and r_at:
        # both fit at the hinted line: the longer one is the stronger evidence
        s_at, r_at = (s_at if size > new_size else None), new_size > size
    if s_at is not None and not r_at:
        name = rung.name if len(s_all) == 1 else "near_hint"
        return _build(matcher, hunk, rung, s_at, size, name, hints)
    if r_at and s_at is None:
        return _already(rung, expected, new_size)
    return None


def _floor(hunk: Hunk, hints: Hints) -> int | None:
    """A piece after an elision is expected soon after the piece before it."""
    return hints.min_start if hunk.follows else None


def _already(rung: Rung, start: int, size: int) -> Outcome:
    return Outcome("already_applied", rung=rung.name, start=start, end=start + size)


def _inside(start: int, size: int, spans: list[_Found], span_size: int) -> bool:
    return any(s.start <= start and start + size <= s.start + span_size for s in spans)


def _near_hint(found: list[_Found], expected: int | None) -> _Found | None:
    """The candidate the hint singles out: the nearest, if every other is clearly farther.

    "Clearly" means more than twice as far plus four lines, so a hint that drifted by a
    line or two picks its place, while two places at similar distances stay ambiguous.
    """
    if expected is None:
        return None
    ranked = sorted(found, key=lambda f: abs(f.start - expected))
    best = abs(ranked[0].start - expected)
    runner_up = abs(ranked[1].start - expected) if len(ranked) > 1 else None
    if best > HINT_WINDOW or (runner_up is not None and runner_up <= 2 * best + 4):
        return None
    return ranked[0]


def _build(
    matcher: Matcher, hunk: Hunk, rung: Rung, found: _Found, size: int, name: str, hints: Hints
) -> Outcome:
    """The lines that replace ``lines[start:start+size]``, or a refusal if they cannot be made."""
    start = found.start
    region = matcher.lines[start : start + size]
    search = [content(line) for line in hunk.search]
    replace = [content(line) for line in hunk.replace]
    fix_typo = _typographic_fixer(region) if rung.typographic or hints.straighten else None
    restyle = _restyler(matcher.indent_style if hints.restyle else None, replace)
    literal = _mixed_endings(hunk) or not any(ending(line) for line in matcher.lines)
    new_lines: list[tuple[str, str]] = []  # (text, terminator)
    for tag, i1, i2, j1, j2 in _opcodes(search, replace):
        if tag == "equal":
            for line, wanted in zip(region[i1:i2], hunk.replace[j1:j2], strict=True):
                kept = ending(wanted) if literal else ending(line)
                # a kept last line that gains lines after it needs a terminator
                new_lines.append((content(line), kept or ending(line) or ending(wanted)))
            continue
        neighbour = region[i1 - 1] if i1 > 0 else (region[0] if region else "")
        newline = ending(neighbour) or matcher.dominant
        for j in range(j1, j2):
            text = found.reindent(replace[j])
            if text is None:
                return Outcome(
                    "refused",
                    reason="reindent",
                    detail=f"replacement line {j + 1} cannot be re-indented to the file's "
                    "indentation (it would go left of column 0)",
                    start=start,
                )
            if fix_typo is not None:
                text = fix_typo(text)
            text = restyle(text)
            new_lines.append((text, ending(hunk.replace[j]) if literal else newline))
    if start + size == len(matcher.lines) and new_lines:
        text, terminator = new_lines[-1]
        new_lines[-1] = (text, _final_terminator(terminator, hunk, region, matcher.dominant))
    lines = [text + terminator for text, terminator in new_lines]
    return Outcome("apply", rung=name, start=start, end=start + size, new_lines=lines)


def _opcodes(search: list[str], replace: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Which lines the hunk keeps and which it changes (shared edges first, cheaply)."""
    head = 0
    limit = min(len(search), len(replace))
    while head < limit and search[head] == replace[head]:
        head += 1
    tail = 0
    while tail < limit - head and search[-1 - tail] == replace[-1 - tail]:
        tail += 1
    middle = difflib.SequenceMatcher(
        None, search[head : len(search) - tail], replace[head : len(replace) - tail], False
    ).get_opcodes()
    ops = [("equal", 0, head, 0, head)] if head else []
    ops += [(tag, a + head, b + head, c + head, d + head) for tag, a, b, c, d in middle]
    if tail:
        ops.append(("equal", len(search) - tail, len(search), len(replace) - tail, len(replace)))
    return ops


def _final_terminator(terminator: str, hunk: Hunk, region: list[str], fallback: str) -> str:
    """Keep the file's final-newline state unless the edit says to change it."""
    if hunk.replace and not ending(hunk.replace[-1]):
        return ""
    if hunk.search and not ending(hunk.search[-1]):
        return terminator or fallback
    if region and not ending(region[-1]):
        return ""
    return terminator or fallback


def _mixed_endings(hunk: Hunk) -> bool:
    """An edit whose own lines mix CRLF and LF means those endings on purpose.

    (So does any edit to a file without a line break yet: there is nothing to follow.)
    """
    endings = {ending(line) for line in (*hunk.search, *hunk.replace)} - {""}
    return len(endings) > 1


def _typographic_fixer(region: list[str]) -> Callable[[str], str]:
    """Straighten, in new lines, the typographic characters the matched file lines never use.

    Only this rung calls it: the match itself proved the model typed curly quotes or
    dashes where the author wrote plain ones, so its new lines are straightened too,
    except for a family (say curly double quotes) the file really uses right there.
    """
    file_text = "".join(region)
    table: dict[int, str] = {}
    for chars, plain in _TYPOGRAPHIC.values():
        if not any(ch in file_text for ch in chars):
            table.update({ord(ch): plain for ch in chars})
    return lambda text: text.translate(table)


def typographic_evidence(hunks: Sequence[Hunk], file_text: str) -> bool:
    """Whether the edit's search lines use typographic characters the file never uses."""
    search_text = "".join(line for hunk in hunks for line in hunk.search)
    if search_text.isascii():
        return False
    return any(
        any(ch in search_text for ch in chars) and not any(ch in file_text for ch in chars)
        for chars, _ in _TYPOGRAPHIC.values()
    )


def indentation_evidence(hunks: Sequence[Hunk], matcher: Matcher) -> bool:
    """Whether the edit's search lines indent with tabs in a spaces-only file, or the reverse."""
    starts = {line[:1] for hunk in hunks for line in hunk.search if line.strip()}
    if not ("\t" in starts or " " in starts):
        return False
    text = "\n".join(matcher.contents)
    if "\t" in starts and _TAB_INDENT.search(text) is None:
        return _SPACE_INDENT.search(text) is not None
    if " " in starts and _SPACE_INDENT.search(text) is None:
        return _TAB_INDENT.search(text) is not None
    return False


def _restyler(style: tuple[str, int] | None, new_lines: list[str]) -> Callable[[str], str]:
    """Write new lines' indentation in the file's style when the file has only one.

    A model that indents with tabs in a spaces-only file (or the reverse) cannot mean it.
    """
    if style is None:
        return lambda text: text
    kind, unit = style
    if kind == "spaces":
        return lambda text: _retab(text, " " * unit, "\t")
    widths = [len(_indent_of(line)) for line in new_lines if line.startswith(" ")]
    edit_unit = min(max(min(widths, default=4), 2), 8)
    return lambda text: _retab(text, "\t", " " * edit_unit)


def _retab(text: str, new: str, old: str) -> str:
    indent = _indent_of(text)
    if old not in indent or indent.replace(old, "").strip(" \t") != "":
        return text
    rest = indent.replace(old, "")
    if old == " " * len(old) and rest.strip("\t"):
        return text  # spaces that are not whole units are alignment: leave them
    return indent.replace(old, new) + text[len(indent) :]


def _indent_of(text: str) -> str:
    return text[: len(text) - len(text.lstrip(" \t"))]


def _width(indent: str, tab: int) -> int:
    return sum(tab if ch == "\t" else 1 for ch in indent)


def reindenter(file_lines: Sequence[str], edit_lines: Sequence[str]) -> Reindent | None:
    """How to turn the edit's indentation into the file's, if one consistent rule does it.

    The rule maps indentation widths linearly, ``file = scale * edit + shift`` (tabs
    counted as 4, 8 or 2 columns): a shifted block, or 2-space indentation written for
    a 4-space file. New lines are rendered in the file's style: tabs when the matched
    file lines indent with tabs, else spaces.
    """
    both = zip(file_lines, edit_lines, strict=True)
    pairs = [(_indent_of(f), _indent_of(e)) for f, e in both if e.strip()]
    if all(f == e for f, e in pairs):
        return _same
    use_tabs = any(f.startswith("\t") for f, _ in pairs)
    for tab in (4, 8, 2):
        widths = {(_width(e, tab), _width(f, tab)) for f, e in pairs}
        rule = _linear_rule(widths)
        if rule is not None:
            return _shifter(rule, tab, use_tabs)
    return None


def _linear_rule(widths: set[tuple[int, int]]) -> tuple[Fraction, Fraction] | None:
    """The (scale, shift) taking every edit width to its file width, if there is one."""
    by_edit = dict(widths)
    if len(by_edit) != len(widths):
        return None  # one edit width would need two file widths
    points = sorted(by_edit.items())
    if len(points) == 1:
        return Fraction(1), Fraction(points[0][1] - points[0][0])
    (x0, y0), (x1, y1) = points[0], points[-1]
    scale = Fraction(y1 - y0, x1 - x0)
    shift = y0 - scale * x0
    if scale <= 0 or any(scale * x + shift != y for x, y in points):
        return None
    return scale, shift


def _shifter(rule: tuple[Fraction, Fraction], tab: int, use_tabs: bool) -> Reindent:
    scale, shift = rule

    def reindent(text: str) -> str | None:
        if not text.strip():
            return ""
        indent = _indent_of(text)
        width = scale * _width(indent, tab) + shift
        if width < 0 or width.denominator != 1:
            return None
        columns = int(width)
        new = "\t" * (columns // tab) + " " * (columns % tab) if use_tabs else " " * columns
        return new + text[len(indent) :]

    return reindent


def closest(matcher: Matcher, search: list[str], expected: int | None) -> list[dict[str, Any]]:
    """Up to three places most like the search lines, for the refusal report."""
    keys = matcher.keys(LADDER[2])
    where: defaultdict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        if key:
            where[key].append(index)
    votes: Counter[int] = Counter()
    wanted = [line.strip() for line in search]
    for offset, key in enumerate(wanted):
        for index in where.get(key, ()):
            votes[max(0, index - offset)] += 1
    if not votes:
        first = next((key for key in wanted if key), "")
        for guess in difflib.get_close_matches(first, list(where), n=3, cutoff=0.5):
            for index in where[guess][:3]:
                votes[max(0, index - wanted.index(first))] += 1
    ranked = sorted(votes, key=lambda s: (-votes[s], abs(s - expected) if expected else 0, s))
    return [_candidate(matcher, search, start) for start in ranked[:3]]


def _candidate(matcher: Matcher, search: list[str], start: int) -> dict[str, Any]:
    """Where a near match is and which of its lines differ (the first, and up to
    :data:`SHOWN_DIFFERENCES` in all), so the next attempt can quote the file exactly."""
    window = matcher.contents[start : start + len(search)]
    stripped = [line.strip() for line in window]
    wanted = [line.strip() for line in search]
    ratio = difflib.SequenceMatcher(None, wanted, stripped, autojunk=False).ratio()
    candidate: dict[str, Any] = {"line": start + 1, "similarity": round(ratio, 2)}
    differences = [
        {"line": start + offset + 1, "expected": want, "found": have}
        for offset, (want, have) in enumerate(zip(search, window, strict=False))
        if want != have
    ]
    if len(window) < len(search):
        missing = {"line": start + len(window) + 1, "expected": search[len(window)]}
        differences.append({**missing, "found": "<end of file>"})
    if differences:
        candidate["first_difference"] = differences[0]
        candidate["differences"] = differences[:SHOWN_DIFFERENCES]
    return candidate
