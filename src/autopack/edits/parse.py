"""Reading edit text in any supported format into an :class:`EditSet`.

Formats (see docs/edit-formats.md): ``search-replace`` (aider-style blocks),
``unified`` (diffs, line numbers and counts optional), ``whole`` (a path line and a
fenced block with the full content), ``replace`` (JSON ``{"path", "old", "new"}``).
Delete and rename directives work alongside search-replace and whole blocks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable

from autopack.edits.model import EditParseError, EditSet, FileEdit, Hunk
from autopack.edits.textfile import content, split_lines

FORMATS = ("auto", "search-replace", "unified", "whole", "replace")

_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})[\w+.-]*\s*$")
_DELETE = re.compile(r"^\*\*\* Delete File: (.+?)\s*$")
_RENAME = re.compile(r"^\*\*\* Rename File: (.+?) -> (.+?)\s*$")
# "I left lines out here": a bare "..." line in a diff (never valid diff syntax), and in
# SEARCH blocks a comment like "# ... existing code ..." (a bare "..." there is literal).
_DIFF_ELISION = re.compile(r"^\s*(?:#|//|/\*|<!--)?\s*(?:\.\.\.|\u2026)")
_BLOCK_ELISION = re.compile(
    r"^\s*(?:(?:#|//|/\*|<!--)\s*(?:\.\.\.|\u2026).*|(?:\.\.\.|\u2026)\s*\S.*(?:\.\.\.|\u2026)\s*)$"
)
_HUNK = re.compile(r"^@@ ?(?:-(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))?)? ?(?:@@|$)")


def parse_edits(text: str, fmt: str = "auto") -> EditSet:
    """Parse edit text; ``fmt`` is one of :data:`FORMATS`. Raise :class:`EditParseError`.

    A reply may mix formats (say SEARCH/REPLACE blocks and a whole-file block): every
    edit in it is read, so the reply is applied wholly or not at all, never in part.
    """
    if fmt not in FORMATS:
        raise EditParseError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    chosen = detect_format(text) if fmt == "auto" else fmt
    files = _parse_mixed(text, chosen) if "+" in chosen else _PARSERS[chosen](text)
    if not files:
        raise EditParseError(f"no edits found in the text (format {chosen})")
    return EditSet(tuple(files), chosen)


def detect_format(text: str) -> str:
    """Which format ``text`` is written in (``a+b`` when it mixes formats); raise
    :class:`EditParseError` if none fits."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return "replace"
    lines = [content(line) for line in split_lines(text)]
    blocks = _whole_blocks(lines)
    found = []
    if any(_SEARCH.match(line) for line in lines):
        found.append("search-replace")
    if _looks_unified(_masked(lines, blocks)):
        found.append("unified")
    if blocks:
        found.append("whole")
    if not found and any(_DELETE.match(line) or _RENAME.match(line) for line in lines):
        found.append("search-replace")
    if not found:
        raise EditParseError(
            "no edit found: expected SEARCH/REPLACE blocks, a unified diff, "
            "a path line followed by a fenced block, or JSON {path, old, new}"
        )
    return "+".join(found)


def _looks_unified(lines: list[str]) -> bool:
    return any(line.startswith(("@@", "diff --git ")) for line in lines) or any(
        a.startswith("--- ") and b.startswith("+++ ") for a, b in itertools.pairwise(lines)
    )


def _masked(lines: list[str], blocks: list[tuple[str, int, int]]) -> list[str]:
    """The lines with whole-file blocks and SEARCH/REPLACE blocks blanked out."""
    out = list(lines)
    for _, start, end in blocks:
        out[start : end + 1] = [""] * len(out[start : end + 1])
    inside = False
    for n, line in enumerate(out):
        if _SEARCH.match(line):
            inside = True
        if inside:
            out[n] = ""
        if _REPLACE.match(line):
            inside = False
    return out


def _parse_mixed(text: str, formats: str) -> list[FileEdit]:
    """Every edit of a reply that uses several formats, each read by its own parser."""
    raw = split_lines(text)
    lines = [content(line) for line in raw]
    blocks = _whole_blocks(lines)
    files: list[FileEdit] = []
    if "search-replace" in formats:
        files.extend(parse_search_replace(text))  # delete/rename directives included
    else:
        files.extend(d for line in lines if (d := _directive(line)) is not None)
    if "unified" in formats:
        masked = _masked(lines, blocks)
        kept = [line if masked[n] or not lines[n] else "\n" for n, line in enumerate(raw)]
        files.extend(parse_unified("".join(kept)))
    files.extend(_whole_edits(raw, blocks))
    return files


def _path_of(line: str) -> str | None:
    """The file path a line names, allowing decorations like ``**a.py**`` or `` `a.py`: ``."""
    candidate = line.strip().strip("*`'\"").rstrip(":").strip("*`'\"").strip()
    if candidate.lower().startswith(("file:", "path:")):
        candidate = candidate.split(":", 1)[1].strip()
    if not candidate or any(ch.isspace() for ch in candidate) or _FENCE.match(candidate):
        return None
    if candidate.startswith(("#", "//", "<<<<", "====", ">>>>")):
        return None
    return candidate


def _directive(line: str) -> FileEdit | None:
    deleted = _DELETE.match(line)
    if deleted:
        return FileEdit("delete", deleted.group(1))
    renamed = _RENAME.match(line)
    if renamed:
        return FileEdit("rename", renamed.group(1), new_path=renamed.group(2))
    return None


def parse_search_replace(text: str) -> list[FileEdit]:
    """Aider-style blocks: a path line, ``<<<<<<< SEARCH``, ``=======``, ``>>>>>>> REPLACE``."""
    lines = split_lines(text)
    files: list[FileEdit] = []
    path: str | None = None
    i = 0
    while i < len(lines):
        line = content(lines[i])
        directive = _directive(line)
        if directive is not None:
            files.append(directive)
        elif _SEARCH.match(line):
            path = _block_path(lines, i) or path
            if path is None:
                raise EditParseError(f"line {i + 1}: SEARCH block without a file path before it")
            hunk, i = _read_block(lines, i)
            if hunk.search:
                files.append(FileEdit("modify", path, _split_elisions(hunk)))
            else:
                files.append(FileEdit("create", path, content="".join(hunk.replace)))
        i += 1
    return files


def _block_path(lines: list[str], marker: int) -> str | None:
    for j in range(marker - 1, -1, -1):
        line = content(lines[j]).strip()
        if not line or _FENCE.match(line):
            continue
        if _REPLACE.match(line):
            return None
        return _path_of(line)
    return None


def _split_elisions(hunk: Hunk) -> tuple[Hunk, ...]:
    """Cut a block at elision comments present at the same places in SEARCH and REPLACE.

    Each piece then has to match on its own; pieces that change nothing are dropped.
    """
    search_cuts = [n for n, line in enumerate(hunk.search) if _BLOCK_ELISION.match(line)]
    replace_cuts = [n for n, line in enumerate(hunk.replace) if _BLOCK_ELISION.match(line)]
    if not search_cuts or len(search_cuts) != len(replace_cuts):
        return (hunk,)
    pieces = zip(_cut(hunk.search, search_cuts), _cut(hunk.replace, replace_cuts), strict=True)
    hunks = [Hunk(tuple(s), tuple(r)) for s, r in pieces if s != r]
    return tuple(dataclasses.replace(hunk, follows=n > 0) for n, hunk in enumerate(hunks))


def _cut(lines: tuple[str, ...], cuts: list[int]) -> list[list[str]]:
    bounds = [-1, *cuts, len(lines)]
    return [list(lines[a + 1 : b]) for a, b in itertools.pairwise(bounds)]


def _read_block(lines: list[str], marker: int) -> tuple[Hunk, int]:
    """The block starting at ``marker``, and the index of its REPLACE line."""
    body: list[str] = []
    for j in range(marker + 1, len(lines)):
        line = content(lines[j])
        if _REPLACE.match(line):
            search, replace = _divide(body, marker)
            return Hunk(tuple(search), tuple(replace)), j
        if _SEARCH.match(line):
            break
        body.append(lines[j] if lines[j].endswith("\n") else lines[j] + "\n")
    raise EditParseError(f"line {marker + 1}: SEARCH block is missing its >>>>>>> REPLACE line")


def _divide(body: list[str], marker: int) -> tuple[list[str], list[str]]:
    """Split a block at its ``=======`` line; refuse to guess between several.

    A line of ``=`` can be content (a reStructuredText underline), so a block with more
    than one is split only at the single line of exactly seven.
    """
    dividers = [n for n, line in enumerate(body) if _DIVIDER.match(content(line))]
    if len(dividers) > 1:
        dividers = [n for n in dividers if content(body[n]).strip() == "======="]
    if not dividers:
        raise EditParseError(f"line {marker + 1}: SEARCH block is missing its ======= line")
    if len(dividers) > 1:
        raise EditParseError(
            f"line {marker + 1}: SEARCH block has several ======= lines; "
            "use a unified diff or whole-file block for text that contains them"
        )
    cut = dividers[0]
    return body[:cut], body[cut + 1 :]


def parse_whole(text: str) -> list[FileEdit]:
    """A path line, then a fenced block holding the file's entire new content."""
    raw = split_lines(text)
    lines = [content(line) for line in raw]
    files = [d for line in lines if (d := _directive(line)) is not None]
    return files + _whole_edits(raw, _whole_blocks(lines))


def _whole_blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(path, opening fence, closing fence) of each whole-file block: a path line, then a
    fenced block that holds neither SEARCH/REPLACE blocks nor a diff (those are edits
    of their own format, not a file's content)."""
    blocks = []
    i = 1
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        path = _path_of(lines[i - 1]) if fence else None
        if fence is None or path is None:
            i += 1
            continue
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].rstrip() == fence.group(1)),
            len(lines),
        )
        inner = lines[i + 1 : end]
        if not any(_SEARCH.match(line) for line in inner) and not _looks_unified(inner):
            blocks.append((path, i, end))
        i = end + 1
    return blocks


def _whole_edits(raw: list[str], blocks: list[tuple[str, int, int]]) -> list[FileEdit]:
    files = []
    for path, start, end in blocks:
        if end >= len(raw):
            raise EditParseError(f"line {start + 1}: fenced block is never closed")
        body = [line if line.endswith("\n") else line + "\n" for line in raw[start + 1 : end]]
        files.append(FileEdit("write", path, content="".join(body)))
    return files


def parse_replace(text: str) -> list[FileEdit]:
    """JSON: one object ``{"path", "old", "new"}`` or a list of them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EditParseError(f"replace format is JSON and this is not: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    files = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"path", "old", "new"}:
            raise EditParseError(f"item {n}: expected exactly the keys path, old, new")
        if not all(isinstance(item[key], str) for key in ("path", "old", "new")):
            raise EditParseError(f"item {n}: path, old and new must be strings")
        files.append(FileEdit("snippet", item["path"], old=item["old"], new=item["new"]))
    return files


def parse_unified(text: str) -> list[FileEdit]:
    """Unified diffs (git's or plain), tolerant of wrong line numbers and counts."""
    return _UnifiedReader(split_lines(text)).read()


class _UnifiedReader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0
        self.files: list[FileEdit] = []
        self._reset()

    def _reset(self) -> None:
        self.old: str | None = None
        self.new: str | None = None
        self.git_old: str | None = None
        self.git_new: str | None = None
        self.hunks: list[Hunk] = []
        self.new_file = False
        self.new_mode: int | None = None
        self.deleted_file = False
        self.open = False

    def read(self) -> list[FileEdit]:
        while self.i < len(self.lines):
            line = content(self.lines[self.i])
            if line.startswith("diff --git "):
                self._finish()
                self._git_header(line)
            elif self._file_header_at(self.i):
                if self.old is not None or self.hunks:
                    self._finish()
                self.open = True
                self.old = _diff_path(line[4:], "a/")
                self.new = _diff_path(content(self.lines[self.i + 1])[4:], "b/")
                self.i += 1
            elif _HUNK.match(line):
                self.hunks.extend(self._hunk(line))
                continue
            elif self.hunks and line[:1] in ("+", "-"):
                raise EditParseError(
                    f"line {self.i + 1}: a '{line[:1]}' line outside any hunk "
                    "(a missing @@ header, or prose after the diff)"
                )
            elif self.open:
                self._extended_header(line)
            self.i += 1
        self._finish()
        return self.files

    def _file_header_at(self, i: int) -> bool:
        return (
            i + 1 < len(self.lines)
            and self.lines[i].startswith("--- ")
            and self.lines[i + 1].startswith("+++ ")
        )

    def _git_header(self, line: str) -> None:
        self.open = True
        match = re.match(r"^diff --git (\"?a/.+?\"?) (\"?b/.+\"?)$", line)
        if match:
            self.git_old = _diff_path(match.group(1), "a/")
            self.git_new = _diff_path(match.group(2), "b/")

    def _extended_header(self, line: str) -> None:
        if line.startswith("new file mode"):
            self.new_file = True
            self.new_mode = _mode(line)
        elif line.startswith("new mode "):
            self.new_mode = _mode(line)
        elif line.startswith("deleted file mode"):
            self.deleted_file = True
        elif line.startswith("rename from "):
            self.git_old = line[len("rename from ") :].strip()
        elif line.startswith("rename to "):
            self.git_new = line[len("rename to ") :].strip()
        elif line.startswith(("Binary files ", "GIT binary patch")):
            raise EditParseError(f"line {self.i + 1}: binary patches are not supported")

    def _hunk(self, header: str) -> list[Hunk]:
        match = _HUNK.match(header)
        assert match is not None
        old_start = int(match.group(1)) if match.group(1) else None
        counts = match.group(1) is not None
        old_left = int(match.group(2) or 1) if counts else 0
        new_left = int(match.group(4) or 1) if counts else 0
        body: list[tuple[str, str]] = []
        bare_tail = 0  # trailing whitespace-only lines beyond the header's counts
        self.i += 1
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            line = content(raw)
            if line.startswith(("@@", "diff --git ")):
                break
            if self._file_header_at(self.i) and not (old_left > 0 and new_left > 0):
                break
            if line.startswith("\\"):
                if body and body[-1][1].endswith("\n"):
                    body[-1] = (body[-1][0], body[-1][1][:-1])  # only the "\n" was added
                self.i += 1
                continue
            kind = line[:1] if line else " "
            if kind not in " +-" and _DIFF_ELISION.match(line):
                kind = "."
            elif kind not in " +-":
                break
            covered = counts and (old_left > 0 or new_left > 0)
            bare_tail = bare_tail + 1 if not line.strip() and not covered else 0
            if not raw.endswith("\n"):
                raw += "\n"  # the diff text was cut after this line, not the file
            body.append((kind, raw[1:] if line else raw))
            old_left -= kind in " -"
            new_left -= kind in " +"
            self.i += 1
        if bare_tail:
            del body[-bare_tail:]
        old_count = int(match.group(2) or 1) if counts else None
        return _elided_hunks(body, old_start, old_count)

    def _finish(self) -> None:
        if not self.open and not self.hunks:
            return
        old = self.old if self.old is not None else self.git_old
        new = self.new if self.new is not None else self.git_new
        if old is None and new is None:
            raise EditParseError(f"line {self.i + 1}: diff hunks without ---/+++ file names")
        edit = _file_edit(old, new, tuple(self.hunks), self.new_file, self.deleted_file)
        self.files.append(dataclasses.replace(edit, mode=self.new_mode))
        self._reset()


def _mode(line: str) -> int | None:
    """The permission bits of a git ``new file mode 100755`` / ``new mode`` line."""
    match = re.search(r"\b100([0-7]{3})\s*$", line)
    return int(match.group(1), 8) if match else None


def _elided_hunks(
    body: list[tuple[str, str]], old_start: int | None, old_count: int | None
) -> list[Hunk]:
    """One hunk, or one per piece between elision lines (each must match on its own).

    The first piece starts where the header says the hunk starts; the last one ends
    where its counts say the hunk ends (line numbers are evidence, where a missing
    side of context is not).
    """
    cuts = [n for n, (kind, _) in enumerate(body) if kind == "."]
    if not cuts:
        return [_make_hunk(body, old_start)]
    bounds = [-1, *cuts, len(body)]
    pieces = [body[a + 1 : b] for a, b in itertools.pairwise(bounds)]
    hunks: list[Hunk] = []
    for n, piece in enumerate(pieces):
        hint = old_start if n == 0 else None
        if n == len(pieces) - 1 and n and old_start and old_count is not None:
            hint = old_start + old_count - sum(kind != "+" for kind, _ in piece)
        hunk = _make_hunk(piece, hint)
        if hunk.search != hunk.replace:
            hunks.append(dataclasses.replace(hunk, follows=n > 0 and bool(hunks)))
    return hunks


def _make_hunk(body: list[tuple[str, str]], old_start: int | None) -> Hunk:
    """One hunk; context on one side only says nothing about the file's edge.

    (Models drop trailing context often, so a hunk that occurs twice is refused as
    ambiguous rather than placed at the start or end of the file.)
    """
    search = tuple(line for kind, line in body if kind != "+")
    replace = tuple(line for kind, line in body if kind != "-")
    return Hunk(search, replace, hint=old_start if old_start and old_start > 0 else None)


def _diff_path(raw: str, prefix: str) -> str | None:
    path = raw.split("\t")[0].strip()
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if path == "/dev/null":
        return None
    return path[len(prefix) :] if path.startswith(prefix) else path


def _file_edit(
    old: str | None, new: str | None, hunks: tuple[Hunk, ...], new_file: bool, deleted: bool
) -> FileEdit:
    if old is None or (new_file and new is not None):
        text = "".join(line for hunk in hunks for line in hunk.replace)
        return FileEdit("create", new or "", content=text)
    if new is None or deleted:
        text = "".join(line for hunk in hunks for line in hunk.search)
        return FileEdit("delete", old, content=text)
    if old != new:
        return FileEdit("rename", old, hunks, new_path=new)
    return FileEdit("modify", old, hunks)


_PARSERS: dict[str, Callable[[str], list[FileEdit]]] = {
    "search-replace": parse_search_replace,
    "unified": parse_unified,
    "whole": parse_whole,
    "replace": parse_replace,
}
