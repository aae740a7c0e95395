"""The edits engine: every change the Builder makes lands exactly, or not at all.

See README.md in this folder and docs/edit-formats.md for the formats.
"""

from autopack.edits.apply import apply_edit_text, apply_edits
from autopack.edits.diff import unified_diff
from autopack.edits.model import EditParseError, EditSet, FileEdit, Hunk
from autopack.edits.parse import FORMATS, detect_format, parse_edits
from autopack.edits.policy import REASONS, PathPolicy, PathRefused
from autopack.edits.report import EditReport, HunkReport

__all__ = [
    "FORMATS",
    "REASONS",
    "EditParseError",
    "EditReport",
    "EditSet",
    "FileEdit",
    "Hunk",
    "HunkReport",
    "PathPolicy",
    "PathRefused",
    "apply_edit_text",
    "apply_edits",
    "detect_format",
    "parse_edits",
    "unified_diff",
]
