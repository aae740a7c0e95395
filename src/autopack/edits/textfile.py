"""Files as lines that remember their bytes: encoding, BOM, line endings, final newline.

Edits are matched on line *contents*; the terminators and the encoding of every line
the edit does not change are written back exactly as they were read.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


class UnreadableFile(ValueError):
    """A file the engine will not edit as text (binary data, unencodable change)."""


def split_lines(text: str) -> list[str]:
    """Lines with their terminators; only ``\\n`` ends a line (``\\r`` stays with it)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts]
    lines[-1] = parts[-1]
    if not lines[-1]:
        lines.pop()
    return lines


def content(line: str) -> str:
    """A line without its terminator (``\\r\\n`` or ``\\n``)."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith("\n"):
        return line[:-1]
    return line


def ending(line: str) -> str:
    """The terminator of a line: ``\\r\\n``, ``\\n`` or ``""`` for an unterminated last line."""
    return line[len(content(line)) :]


def dominant_ending(lines: list[str]) -> str:
    """The terminator most lines use (``\\n`` for an empty file or a tie)."""
    crlf = sum(1 for line in lines if line.endswith("\r\n"))
    lf = sum(1 for line in lines if line.endswith("\n")) - crlf
    return "\r\n" if crlf > lf else "\n"


@dataclass
class TextFile:
    """A decoded text file: its lines with terminators, how to encode it, its mode."""

    lines: list[str]
    encoding: str = "utf-8"
    mode: int | None = None

    @classmethod
    def from_bytes(cls, data: bytes, mode: int | None = None) -> TextFile:
        """Decode keeping every byte recoverable; refuse binary data."""
        encoding = _sniff_encoding(data)
        if encoding is None:
            raise UnreadableFile("binary file (NUL bytes); edit it another way")
        return cls(split_lines(data.decode(encoding)), encoding, mode)

    @classmethod
    def from_text(cls, text: str, like: TextFile | None = None) -> TextFile:
        """New content for a file, taking encoding, mode and endings from ``like``."""
        if like is None:
            return cls(split_lines(text))
        newline = dominant_ending(like.lines)
        lines = [content(line) + (newline if ending(line) else "") for line in split_lines(text)]
        if lines and like.lines and not ending(like.lines[-1]):
            lines[-1] = content(lines[-1])
        return cls(lines, like.encoding, like.mode)

    def text(self) -> str:
        return "".join(self.lines)

    def to_bytes(self) -> bytes:
        try:
            return self.text().encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise UnreadableFile(f"the change cannot be encoded as {self.encoding}") from exc


def _sniff_encoding(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\0" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"  # decodes any byte and encodes it back unchanged
    return "utf-8"
