"""The applier's answer: per hunk what happened and where, for machines and for the Builder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class HunkReport:
    """One hunk (or one file operation) of an edit set.

    ``status`` is ``applied``, ``already_applied``, ``refused``, or ``matched`` (it
    would apply, but nothing was written: a dry run, or another part was refused).
    """

    file: str
    index: int
    """1-based position of this hunk among the edit set's hunks for ``file``."""
    status: str
    rung: str | None = None
    line: int | None = None
    """1-based line where the hunk matched (or was found already applied)."""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""
    operation: str = "modify"


@dataclass
class EditReport:
    """Whether an edit set landed, and why not when it did not."""

    applied: bool
    """True when everything was written (or everything was already applied)."""
    already_applied: bool
    changed_files: list[str]
    hunks: list[HunkReport]
    refusals: list[dict[str, Any]]
    """Path-level refusals: ``{path, reason, detail}``."""
    format: str = ""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        """Compact feedback: what failed, where, and the closest candidates."""
        lines = [self._headline()]
        for refusal in self.refusals:
            path = refusal["path"] or "<edit>"
            lines.append(f"- {path}: {refusal['reason']}: {refusal['detail']}")
        for hunk in self.hunks:
            lines.extend(_hunk_lines(hunk))
        return "\n".join(lines)

    def _headline(self) -> str:
        if not self.applied:
            problems = len(self.refusals) + sum(h.status == "refused" for h in self.hunks)
            return f"REFUSED: nothing was written ({problems} problem(s))."
        if self.already_applied:
            return "ALREADY APPLIED: the files already contain this change; nothing written."
        verb = "would change" if self.dry_run else "changed"
        files = ", ".join(self.changed_files) or "no files"
        return f"APPLIED: {verb} {files}."


def _hunk_lines(hunk: HunkReport) -> list[str]:
    where = f"- {hunk.file} {hunk.operation} #{hunk.index}"
    at = f" at line {hunk.line}" if hunk.line else ""
    rung = f" ({hunk.rung})" if hunk.rung else ""
    if hunk.status == "refused":
        lines = [f"{where}: refused: {hunk.reason}: {hunk.detail}"]
        for candidate in hunk.candidates:
            lines.append("  " + _candidate_text(candidate))
        return lines
    if hunk.status == "matched":
        return [f"{where}: matched{at}{rung}, not written"]
    return [f"{where}: {hunk.status.replace('_', ' ')}{at}{rung}"]


def _candidate_text(candidate: dict[str, Any]) -> str:
    text = f"candidate at line {candidate['line']}"
    if "similarity" in candidate:
        text += f" ({round(candidate['similarity'] * 100)}% similar)"
    differences = candidate.get("differences") or [candidate.get("first_difference")]
    shown = [
        f"line {d['line']} expected {d['expected']!r}, found {d['found']!r}"
        for d in differences
        if d
    ]
    return text + (": " + "; ".join(shown) if shown else "")
