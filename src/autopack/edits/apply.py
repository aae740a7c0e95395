"""Apply an edit set wholly or not at all.

Every operation runs first against an in-memory copy of the files it touches; only
when every hunk of every file has landed (or was already there) are bytes written,
each file through a temporary file and a rename, with the earlier files restored if
a later write fails. Encoding, BOM, line endings, final newline and mode survive.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from autopack.edits.match import (
    Hints,
    Matcher,
    Outcome,
    indentation_evidence,
    locate,
    typographic_evidence,
)
from autopack.edits.model import EditParseError, EditSet, FileEdit, Hunk
from autopack.edits.parse import parse_edits
from autopack.edits.policy import PathPolicy, PathRefused, normalize_rel
from autopack.edits.report import EditReport, HunkReport
from autopack.edits.textfile import (
    TextFile,
    UnreadableFile,
    content,
    dominant_ending,
    split_lines,
)


@dataclass
class _State:
    """One file as it was on disk and as the edit set has changed it so far."""

    rel: str
    path: Path
    original: bytes | None
    current: TextFile | None
    mode: int | None
    wanted_mode: int | None = None
    """Permission bits the edit set asks for; None keeps the file's."""


class _Refused(Exception):
    """An operation that cannot be done; becomes a refused entry in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


@dataclass
class _Session:
    """One edit set being validated: the files it touches and what each step reported."""

    policy: PathPolicy
    states: dict[Path, _State] = field(default_factory=dict)
    hunks: list[HunkReport] = field(default_factory=list)
    refusals: list[dict[str, str]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def state(self, rel_path: str) -> _State:
        path = self.policy.resolve_write(rel_path)
        if path not in self.states:
            self.states[path] = _read_state(normalize_rel(rel_path), path)
        return self.states[path]

    def report(self, rel: str, operation: str, outcome: Outcome) -> None:
        self.counters[rel] = self.counters.get(rel, 0) + 1
        refused = outcome.status == "refused"
        self.hunks.append(
            HunkReport(
                file=rel,
                index=self.counters[rel],
                status="applied" if outcome.status == "apply" else outcome.status,
                rung=outcome.rung,
                line=None if refused else outcome.start + 1,
                candidates=outcome.candidates,
                reason=outcome.reason,
                detail=outcome.detail,
                operation=operation,
            )
        )


def _read_state(rel: str, path: Path) -> _State:
    if not path.exists():
        return _State(rel, path, None, None, None)
    if not path.is_file():
        raise _Refused("not_a_file", f"{rel} is a directory or special file")
    data = path.read_bytes()
    mode = path.stat().st_mode & 0o7777
    try:
        text = TextFile.from_bytes(data, mode)
    except UnreadableFile as exc:
        raise _Refused("binary", str(exc)) from exc
    return _State(rel, path, data, text, mode)


def apply_edit_text(text: str, policy: PathPolicy, fmt: str = "auto") -> EditReport:
    """Parse and apply; a parse error becomes a refused report (reason ``parse``)."""
    try:
        edits = parse_edits(text, fmt)
    except EditParseError as exc:
        refusal = {"path": "", "reason": "parse", "detail": str(exc)}
        return EditReport(False, False, [], [], [refusal], format=fmt)
    return apply_edits(edits, policy)


def apply_edits(edits: EditSet, policy: PathPolicy, *, dry_run: bool = False) -> EditReport:
    """Validate every operation in memory, then write all of it or nothing."""
    session = _Session(policy)
    for edit in edits.files:
        _run(session, edit)
    changes = [] if _refused(session) else _changes(session)
    if not _refused(session) and not dry_run:
        failure = _commit(changes)
        if failure is not None:
            session.refusals.append(failure)
            changes = []
    refused = _refused(session)
    if refused or dry_run:
        for hunk in session.hunks:
            hunk.status = "matched" if hunk.status == "applied" else hunk.status
    nothing_new = not changes and all(h.status == "already_applied" for h in session.hunks)
    return EditReport(
        applied=not refused,
        already_applied=not refused and nothing_new and bool(session.hunks),
        changed_files=[state.rel for state, _ in changes],
        hunks=session.hunks,
        refusals=session.refusals,
        format=edits.format,
        dry_run=dry_run,
    )


def _refused(session: _Session) -> bool:
    return bool(session.refusals) or any(h.status == "refused" for h in session.hunks)


def _run(session: _Session, edit: FileEdit) -> None:
    rel = normalize_rel(edit.path)
    try:
        state = session.state(edit.path)
        if edit.kind == "modify":
            _modify(session, state, edit.hunks)
        elif edit.kind == "rename":
            _rename(session, state, edit)
        else:
            outcome = _WHOLE_FILE[edit.kind](state, edit)
            session.report(state.rel, edit.kind, outcome)
        if edit.mode is not None:
            session.state(edit.new_path or edit.path).wanted_mode = edit.mode
    except PathRefused as exc:
        session.refusals.append({"path": exc.path, "reason": exc.reason, "detail": exc.detail})
    except _Refused as exc:
        session.report(rel, edit.kind, Outcome("refused", reason=exc.reason, detail=exc.detail))


def _modify(session: _Session, state: _State, hunks: tuple[Hunk, ...]) -> None:
    if state.current is None:
        raise _Refused("missing_file", f"{state.rel} does not exist; create it first")
    offset, end = 0, 0
    matcher = Matcher(state.current.lines)
    straighten = typographic_evidence(hunks, state.current.text())
    restyle = indentation_evidence(hunks, matcher)
    for hunk in hunks:
        expected = hunk.hint - 1 + offset if hunk.hint is not None else None
        hints = Hints(expected, end if hunk.follows else 0, straighten, restyle)
        outcome = locate(matcher, hunk, hints)
        if outcome.status == "apply":
            matcher.splice(outcome.start, outcome.end, outcome.new_lines)
            end = outcome.start + len(outcome.new_lines)
        elif outcome.status == "already_applied":
            end = outcome.end
        if outcome.status != "refused":
            offset += len(hunk.replace) - len(hunk.search)
        session.report(state.rel, "modify", outcome)


def _snippet(state: _State, edit: FileEdit) -> Outcome:
    """Exact-snippet replace: ``old`` must occur exactly once (whole lines may drift)."""
    if state.current is None:
        raise _Refused("missing_file", f"{state.rel} does not exist")
    if not edit.old:
        raise _Refused("no_context", "'old' is empty; quote the text to replace")
    text = state.current.text()
    # a model writes "\n"; in a CRLF file that means the file's "\r\n"
    newline = dominant_ending(state.current.lines)
    edit = replace(edit, old=_with_ending(edit.old, newline), new=_with_ending(edit.new, newline))
    olds = _occurrences(text, edit.old)
    news = _occurrences(text, edit.new) if edit.new else []
    free = [o for o in olds if not _covered(o, len(edit.old), news, len(edit.new))]
    if len(free) == 1:
        start = free[0]
        new_text = text[:start] + edit.new + text[start + len(edit.old) :]
        state.current = TextFile(split_lines(new_text), state.current.encoding, state.current.mode)
        return Outcome("apply", rung="exact", start=text.count("\n", 0, start))
    if len(free) > 1:
        lines = [text.count("\n", 0, o) + 1 for o in free]
        detail = f"'old' occurs {len(free)} times (lines {lines}); include more text"
        return Outcome("refused", reason="ambiguous", detail=detail)
    if news:
        return Outcome("already_applied", rung="exact", start=text.count("\n", 0, news[0]))
    hunk = Hunk(tuple(_terminated(edit.old)), tuple(_terminated(edit.new)))
    outcome = locate(Matcher(state.current.lines), hunk, Hints())
    if outcome.status == "apply":
        state.current.lines[outcome.start : outcome.end] = outcome.new_lines
    return outcome


def _with_ending(text: str, newline: str) -> str:
    if newline == "\n":
        return text
    return re.sub(r"(?<!\r)\n", newline, text)


def _covered(start: int, size: int, spans: list[int], span_size: int) -> bool:
    return any(s <= start and start + size <= s + span_size for s in spans)


def _terminated(text: str) -> list[str]:
    return [content(line) + "\n" for line in split_lines(text)]


def _occurrences(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start != -1:
        found.append(start)
        start = text.find(needle, start + 1)
    return found


def _write(state: _State, edit: FileEdit) -> Outcome:
    new = TextFile.from_text(edit.content or "", like=state.current)
    if state.current is not None and new.text() == state.current.text():
        return Outcome("already_applied", rung="whole")
    state.current = new
    return Outcome("apply", rung="whole")


def _create(state: _State, edit: FileEdit) -> Outcome:
    if state.current is None:
        state.current = TextFile.from_text(edit.content or "")
        return Outcome("apply", rung="create")
    if _same_lines(state.current, edit.content or ""):
        return Outcome("already_applied", rung="create")
    if not state.current.lines:
        return _write(state, edit)
    raise _Refused("exists", f"{state.rel} already exists with other content; edit it instead")


def _delete(state: _State, edit: FileEdit) -> Outcome:
    if state.current is None:
        return Outcome("already_applied", rung="delete")
    if edit.content is not None and not _same_lines(state.current, edit.content):
        raise _Refused("content_mismatch", f"{state.rel} differs from the content to delete")
    state.current = None
    return Outcome("apply", rung="delete")


def _same_lines(current: TextFile, text: str) -> bool:
    return [content(line) for line in current.lines] == [
        content(line) for line in split_lines(text)
    ]


_WHOLE_FILE = {"snippet": _snippet, "write": _write, "create": _create, "delete": _delete}


def _rename(session: _Session, source: _State, edit: FileEdit) -> None:
    target = session.state(edit.new_path or "")
    if source.current is None and target.current is None:
        raise _Refused("missing_file", f"neither {source.rel} nor {target.rel} exists")
    if source.current is not None and target.current is not None and source is not target:
        raise _Refused("exists", f"{target.rel} already exists; it would be overwritten")
    if source.current is None:
        session.report(source.rel, "rename", Outcome("already_applied", rung="rename"))
    else:
        target.current, source.current = source.current, None
        session.report(source.rel, "rename", Outcome("apply", rung="rename"))
    if edit.hunks:
        _modify(session, target, edit.hunks)


def _changes(session: _Session) -> list[tuple[_State, bytes | None]]:
    changes: list[tuple[_State, bytes | None]] = []
    for state in session.states.values():
        try:
            data = state.current.to_bytes() if state.current is not None else None
        except UnreadableFile as exc:
            refusal = Outcome("refused", reason="encoding", detail=str(exc))
            session.report(state.rel, "encode", refusal)
            continue
        mode_change = state.wanted_mode not in (None, state.mode) and data is not None
        if data != state.original or mode_change:
            changes.append((state, data))
    return changes


def _commit(changes: list[tuple[_State, bytes | None]]) -> dict[str, str] | None:
    """Write every change; if one fails, put back the files already written.

    Returns the failure as a path-level refusal (reason ``write_failed``), or None.
    """
    done: list[_State] = []
    for state, data in sorted(changes, key=lambda change: change[1] is None):
        try:
            if data is None:
                state.path.unlink()
            else:
                _atomic_write(state.path, data, state.wanted_mode or state.mode)
        except OSError as exc:
            _restore(done)
            return {"path": state.rel, "reason": "write_failed", "detail": str(exc)}
        done.append(state)
    return None


def _restore(written: list[_State]) -> None:
    for state in reversed(written):
        with contextlib.suppress(OSError):
            if state.original is None:
                state.path.unlink()
            else:
                _atomic_write(state.path, state.original, state.mode)


def _atomic_write(path: Path, data: bytes, mode: int | None) -> None:
    """Readers see the old file or the new one, never a mix (rename is atomic).

    No fsync: surviving power loss is the apply step's job (it is redone on resume,
    and a redone edit reports already_applied), and fsync would cost ~10 ms a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.autopack-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
