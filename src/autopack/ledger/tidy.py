"""Tidy: turn ended runs into ledger entries and refresh the README block and INDEX.md.

Tidy is idempotent by construction: a run whose id already appears in a build entry's
``Run`` field is skipped, every generated text is a function of the ledgers alone (the
"last updated" date is the newest entry's date, not the clock), and a file whose text
would not change is not written, so a second tidy finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autopack.ledger.entries import (
    FILE_NAME,
    TITLE,
    Entry,
    Kind,
    Ledger,
    parse_ledger,
    render_ledger,
)
from autopack.ledger.summary import AttemptSummary, PhaseSummary, RunSummary
from autopack.workspace import git

DOCS = Path("docs")
README = Path("README.md")
INDEX = DOCS / "INDEX.md"
SUMMARY_START = "<!-- SOT_SUMMARY_START -->"
SUMMARY_END = "<!-- SOT_SUMMARY_END -->"
INDEX_START = "<!-- LEDGER_INDEX_START -->"
INDEX_END = "<!-- LEDGER_INDEX_END -->"
KINDS: tuple[Kind, ...] = ("build", "debug", "decision")


class TidyError(RuntimeError):
    """Tidy could not commit (git failed, or the repository is on another branch)."""


@dataclass(frozen=True)
class TidyResult:
    """What tidy did (or, with ``dry_run``, would do)."""

    new_entries: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    commit: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changed_files)


def ledger_path(repo: Path, kind: Kind) -> Path:
    return repo / DOCS / FILE_NAME[kind]


def read_ledgers(repo: Path) -> dict[Kind, Ledger]:
    """The three ledgers of ``repo``; a missing file reads as an empty ledger."""
    ledgers: dict[Kind, Ledger] = {}
    for kind in KINDS:
        path = ledger_path(repo, kind)
        exists = path.is_file()
        ledgers[kind] = (
            parse_ledger(path.read_text(encoding="utf-8"), kind) if exists else Ledger.empty(kind)
        )
    return ledgers


def tidy(
    repo: Path,
    runs: Sequence[RunSummary],
    *,
    dry_run: bool = False,
    commit: bool = False,
    branch: str | None = None,
) -> TidyResult:
    """Record ``runs`` not yet in the ledgers, refresh README block and INDEX, maybe commit.

    With ``commit`` the changed docs become one commit of their own in ``repo``'s
    checkout; ``branch`` (the run branch) must then be the checked-out branch.
    """
    ledgers = read_ledgers(repo)
    recorded = {entry.field("Run") for entry in ledgers["build"].entries}
    new_entries: list[str] = []
    for run in sorted(runs, key=lambda r: (r.ended_at, r.run_id)):
        if run.run_id not in recorded:
            new_entries += record_run(ledgers, run)
            recorded.add(run.run_id)
    texts = render_docs(repo, ledgers)
    changed = [path for path, text in texts.items() if _read(path) != text]
    names = [str(path.relative_to(repo)) for path in changed]
    if dry_run or not changed:
        return TidyResult(new_entries, names)
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts[path], encoding="utf-8")
    sha = _commit(repo, names, new_entries, branch) if commit else None
    return TidyResult(new_entries, names, sha)


def render_docs(repo: Path, ledgers: dict[Kind, Ledger]) -> dict[Path, str]:
    """The text every tidied file should have: ledgers, INDEX.md and the README if any."""
    texts = {ledger_path(repo, kind): render_ledger(ledgers[kind]) for kind in KINDS}
    index = _read(repo / INDEX) or "# Index\n"
    texts[repo / INDEX] = replace_block(index, INDEX_START, INDEX_END, render_index_block(ledgers))
    readme = _read(repo / README)
    if readme is not None:
        summary = render_summary_block(ledgers)
        texts[repo / README] = replace_block(readme, SUMMARY_START, SUMMARY_END, summary)
    return texts


def record_run(ledgers: dict[Kind, Ledger], run: RunSummary) -> list[str]:
    """Append the run's build entry, its debug entries and its decisions; return their ids."""
    debug_ids = [entry.id for entry in _debug_entries(ledgers["debug"], run)]
    decision_ids = [
        ledgers["decision"]
        .append(
            run.date,
            record.title,
            {
                "Run": run.run_id,
                "Source": f"{record.source} {record.phase_id}".strip(),
                "Context": record.context,
                "Decision": record.decision,
                "Rationale": record.rationale,
                "Alternatives": record.alternatives,
            },
        )
        .id
        for record in run.decisions
    ]
    build = ledgers["build"].append(run.date, run.goal, _build_fields(run, debug_ids))
    return [build.id, *debug_ids, *decision_ids]


def _build_fields(run: RunSummary, debug_ids: list[str]) -> dict[str, str]:
    complete = [p for p in run.phases if p.state == "COMPLETE"]
    phases = "; ".join(_phase_line(p) for p in run.phases)
    changed = "\n".join(
        f"{p.phase_id}: {p.attempts[-1].change_summary if p.attempts else p.goal}" for p in complete
    )
    commits = ", ".join(commit[:12] for commit in run.commits) or "none"
    fields = {
        "Run": run.run_id,
        "Status": run.status,
        "Phases": phases or "none",
        "Changed": changed or "nothing landed",
        "Verified": f"{run.tests.describe()}; commits {commits}",
    }
    if debug_ids:
        fields["Debug"] = ", ".join(debug_ids)
    return fields


def _phase_line(phase: PhaseSummary) -> str:
    """``id STATE (N attempts)``, and why, for a phase whose last attempt failed it."""
    line = f"{phase.phase_id} {phase.state} ({len(phase.attempts)} attempts)"
    last = phase.attempts[-1] if phase.attempts else None
    if last is not None and last.outcome == "fail" and last.feedback:
        line += f": {last.feedback.strip().splitlines()[0][:300]}"
    return line


def _debug_entries(ledger: Ledger, run: RunSummary) -> list[Entry]:
    """One entry per failed attempt that a later attempt fixed or that ended its phase."""
    made = []
    for phase in run.phases:
        for index, attempt in enumerate(phase.attempts):
            if attempt.outcome == "pass":
                continue
            later = phase.attempts[index + 1 :]
            fixed_by = next((a for a in later if a.outcome == "pass"), None)
            if fixed_by is None and later:
                continue
            title = f"{phase.phase_id} attempt {attempt.attempt} failed"
            fields = _debug_fields(run, phase, attempt, fixed_by)
            made.append(ledger.append(run.date, title, fields))
    return made


def _debug_fields(
    run: RunSummary, phase: PhaseSummary, failed: AttemptSummary, fixed_by: AttemptSummary | None
) -> dict[str, str]:
    if fixed_by is None:
        fix, verified = f"none: the phase ended {phase.state}", "not fixed in this run"
    else:
        fix = fixed_by.change_summary or f"attempt {fixed_by.attempt} passed"
        verified = f"attempt {fixed_by.attempt} passed the gate"
    cause = fixed_by.root_cause if fixed_by else failed.root_cause
    return {
        "Run": run.run_id,
        "Phase": phase.phase_id,
        "Symptom": failed.feedback or f"attempt ended with {failed.outcome}",
        "Signature": failed.failure_signature() or "unknown",
        "Root cause": cause or "not diagnosed",
        "Fix": fix,
        "Fix kind": (fixed_by.fix_kind if fixed_by else "") or "none",
        "Verified": verified,
    }


def render_summary_block(ledgers: dict[Kind, Ledger]) -> str:
    """What goes between the README's SOT markers."""
    builds = ledgers["build"].entries
    latest = (
        f"{builds[-1].id} ({builds[-1].date}) {builds[-1].title}: {builds[-1].field('Status')}"
        if builds
        else "none"
    )
    dates = [entry.date for kind in KINDS for entry in ledgers[kind].entries]
    return (
        f"- Builds: {len(builds)}\n"
        f"- Latest build: {latest}\n"
        f"- Decisions: {len(ledgers['decision'].entries)}\n"
        f"- Debug entries: {len(ledgers['debug'].entries)}\n"
        f"- Last updated: {max(dates, default='never')}\n"
    )


def render_index_block(ledgers: dict[Kind, Ledger]) -> str:
    """What goes between the INDEX.md markers: each ledger with its size and newest entry."""
    lines = []
    for kind in KINDS:
        ledger = ledgers[kind]
        newest = ledger.entries[-1].id if ledger.entries else "none yet"
        lines.append(
            f"- [{TITLE[kind]}]({FILE_NAME[kind]}): {len(ledger.entries)} entries, "
            f"newest {newest}\n"
        )
    return "".join(lines)


def replace_block(text: str, start: str, end: str, content: str) -> str:
    """Replace what is between the markers; append a marked block when there is none.

    Everything outside the markers is the author's and stays byte for byte.
    """
    block = f"{start}\n{content}{end}"
    first, last = text.find(start), text.find(end)
    if first == -1 or last < first:
        separator = "\n" if text and not text.endswith("\n") else ""
        return f"{text}{separator}\n{block}\n"
    return text[:first] + block + text[last + len(end) :]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _commit(repo: Path, names: list[str], new_entries: list[str], branch: str | None) -> str:
    if branch is not None:
        current = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
        if current != branch:
            raise TidyError(f"{repo} is on {current!r}, not on the run branch {branch!r}")
    _git(repo, "add", "--", *names)
    _git(repo, "commit", "--quiet", "-m", commit_message(new_entries), "--", *names)
    return _git(repo, "rev-parse", "HEAD")


def commit_message(new_entries: Sequence[str]) -> str:
    """The subject of a tidy commit: which entries it adds."""
    listed = ", ".join(new_entries) if new_entries else "summary refresh"
    return f"docs: tidy ledgers ({listed})"


def _git(repo: Path, *args: str) -> str:
    try:
        done = git.run_git(repo, *args)
    except FileNotFoundError as exc:
        raise TidyError("git is not installed") from exc
    if done.returncode != 0:
        raise TidyError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()
