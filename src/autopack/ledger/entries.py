"""Ledger entries and files: parse and render, byte for byte.

A ledger file is a title and intro (kept verbatim), an index table that lists the
entries newest first (always regenerated from the entries, so it cannot drift), and
the entries, oldest first. An entry keeps the exact text under its heading: that text
is what ``tidy --check`` compares, so an entry written by hand survives a round trip
untouched while new entries are rendered from ``- Key: value`` fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["build", "debug", "decision"]

PREFIX: dict[str, str] = {"build": "BUILD", "debug": "DBG", "decision": "DEC"}
FILE_NAME: dict[str, str] = {
    "build": "BUILD_HISTORY.md",
    "debug": "DEBUG_LOG.md",
    "decision": "ARCHITECTURE_DECISIONS.md",
}
TITLE: dict[str, str] = {
    "build": "Build history",
    "debug": "Debug log",
    "decision": "Architecture decisions",
}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "build": ("Status", "Changed", "Verified"),
    "debug": ("Symptom", "Signature", "Root cause", "Fix", "Verified"),
    "decision": ("Context", "Decision", "Rationale", "Alternatives"),
}
INTRO: dict[str, str] = {
    "build": "One entry per Autopack run: what it changed and how that was verified.",
    "debug": "One entry per failure that a later attempt fixed or that ended a phase.",
    "decision": "Decisions taken while building: context, decision, rationale, alternatives.",
}

_HEADING = re.compile(r"^## (?P<id>(?:BUILD|DBG|DEC)-\d+) \| (?P<date>[^|]*?) \| (?P<title>.*)$")
_FIELD = re.compile(r"^- (?P<key>[A-Z][A-Za-z ]*?): ?(?P<value>.*)$")
_INDEX_ROW = re.compile(r"^\|\s*\[?(?P<id>(?:BUILD|DBG|DEC)-\d+)\]?")


class LedgerParseError(ValueError):
    """A ledger file whose kind is unknown."""


@dataclass(frozen=True)
class Entry:
    """One ledger entry; ``body`` is the exact text under the heading, up to the next one."""

    id: str
    date: str
    title: str
    body: str

    @classmethod
    def from_fields(cls, entry_id: str, date: str, title: str, fields: dict[str, str]) -> Entry:
        """A new entry; multi-line values continue on lines indented by two spaces."""
        lines = [f"- {key}: {_indent(value)}\n" for key, value in fields.items()]
        return cls(entry_id, date, _one_line(title), "".join(lines) + "\n")

    @property
    def number(self) -> int:
        return int(self.id.rsplit("-", 1)[1])

    @property
    def heading(self) -> str:
        return f"## {self.id} | {self.date} | {self.title}"

    def text(self) -> str:
        """Heading and body without trailing blank lines: what must never change."""
        return f"{self.heading}\n{self.body}".rstrip()

    def fields(self) -> dict[str, str]:
        """``- Key: value`` lines; indented lines continue the value before them."""
        found: dict[str, str] = {}
        key: str | None = None
        for line in self.body.splitlines():
            match = _FIELD.match(line)
            if match:
                key = match["key"]
                found[key] = match["value"].strip()
            elif key is not None and line[:1] in (" ", "\t") and line.strip():
                found[key] = f"{found[key]}\n{line.strip()}".strip()
        return found

    def field(self, key: str) -> str:
        return self.fields().get(key, "")


@dataclass(frozen=True)
class IndexRow:
    """A row of the index table, as found in the file (only its id matters to the check)."""

    id: str
    line: str


@dataclass
class Ledger:
    """One ledger file: ``head`` and ``gap`` are kept verbatim around the index table."""

    kind: Kind
    head: str
    entries: list[Entry] = field(default_factory=list)
    index: list[IndexRow] = field(default_factory=list)
    gap: str = "\n"

    @classmethod
    def empty(cls, kind: Kind) -> Ledger:
        return cls(kind, f"# {TITLE[kind]}\n\n{INTRO[kind]}\n\n")

    @property
    def prefix(self) -> str:
        return PREFIX[self.kind]

    def next_id(self) -> str:
        number = max((entry.number for entry in self.entries), default=0) + 1
        return f"{self.prefix}-{number:03d}"

    def append(self, date: str, title: str, fields: dict[str, str]) -> Entry:
        entry = Entry.from_fields(self.next_id(), date, title, fields)
        self.entries.append(entry)
        return entry


def parse_ledger(text: str, kind: str) -> Ledger:
    """Read a ledger file of ``kind`` ("build", "debug" or "decision")."""
    if kind not in PREFIX:
        raise LedgerParseError(f"unknown ledger kind {kind!r}; use build, debug or decision")
    lines = text.splitlines(keepends=True)
    first_entry = next((i for i, line in enumerate(lines) if _is_heading(line)), len(lines))
    head_lines = lines[:first_entry]
    table_start, table_end = _table_span(head_lines)
    ledger = Ledger(
        kind,  # type: ignore[arg-type]
        head="".join(head_lines[:table_start]),
        index=[_row(line) for line in head_lines[table_start:table_end] if _INDEX_ROW.match(line)],
        gap="".join(head_lines[table_end:]) if table_end > table_start else "",
    )
    ledger.entries = _entries(lines[first_entry:])
    return ledger


def render_ledger(ledger: Ledger) -> str:
    """The file text: head, a fresh index (newest first), gap, entries in file order."""
    table = render_index(ledger)
    entries = "".join(f"{entry.heading}\n{entry.body}" for entry in ledger.entries)
    return f"{ledger.head}{table}{ledger.gap or chr(10)}{entries}"


def render_index(ledger: Ledger) -> str:
    build = ledger.kind == "build"
    header = (
        "| ID | Date | Title | Status |\n|---|---|---|---|\n"
        if build
        else ("| ID | Date | Title |\n|---|---|---|\n")
    )
    rows = []
    for entry in reversed(ledger.entries):
        cells = [entry.id, entry.date, _cell(entry.title)]
        if build:
            cells.append(_cell(entry.field("Status")))
        rows.append("| " + " | ".join(cells) + " |\n")
    return header + "".join(rows)


def _is_heading(line: str) -> bool:
    return _HEADING.match(line.rstrip("\r\n")) is not None


def _table_span(lines: list[str]) -> tuple[int, int]:
    """First and past-the-end line of the first Markdown table; (n, n) when there is none."""
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def _row(line: str) -> IndexRow:
    match = _INDEX_ROW.match(line)
    assert match is not None
    return IndexRow(match["id"], line.rstrip("\r\n"))


def _entries(lines: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    for line in lines:
        match = _HEADING.match(line.rstrip("\r\n"))
        if match:
            entries.append(Entry(match["id"], match["date"], match["title"], ""))
        else:
            last = entries[-1]
            entries[-1] = Entry(last.id, last.date, last.title, last.body + line)
    return entries


def _indent(value: str) -> str:
    lines = [line.strip() for line in value.strip().splitlines() if line.strip()] or [""]
    return "\n".join([lines[0], *(f"  {line}" for line in lines[1:])])


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")


def _cell(text: str) -> str:
    return _one_line(text.splitlines()[0] if text else "")
