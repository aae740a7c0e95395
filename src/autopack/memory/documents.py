"""What the memory indexes: ledger entry chunks, phase summaries and failure -> fix pairs.

Every document id is stable: ``<project>/<entry id>#<chunk>`` for ledger chunks (entries
are append-only, so the chunks of an entry never move), ``<project>/fix:<DBG id>`` for
the failure signature -> fix pair of a debug entry, and
``<project>/run:<run id>/phase:<phase id>`` for a phase summary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from autopack.ledger import Entry, RunSummary, load_run_summaries, read_ledgers
from autopack.ledger.tidy import KINDS

CHUNK_WORDS = 90
"""Words per ledger chunk: about the 128 tokens MiniLM was trained on and is cut at."""


@dataclass(frozen=True)
class MemoryDoc:
    """One retrievable piece of text; ``source`` is ``ledger``, ``fix`` or ``phase``."""

    id: str
    title: str
    text: str
    source: str

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.title}\n{self.text}".encode()).hexdigest()


def repo_documents(repo: Path, project: str) -> list[MemoryDoc]:
    """Everything the memory knows about one repository."""
    ledgers = read_ledgers(repo)
    docs = [chunk for kind in KINDS for e in ledgers[kind].entries for chunk in chunks(project, e)]
    docs += [fix for e in ledgers["debug"].entries if (fix := fix_pair(project, e)) is not None]
    docs += [doc for run in load_run_summaries(repo) for doc in phase_docs(project, run)]
    return docs


def chunks(project: str, entry: Entry) -> list[MemoryDoc]:
    """The entry's fields as text, split into windows of :data:`CHUNK_WORDS` words."""
    body = "\n".join(f"{key}: {value}" for key, value in entry.fields().items())
    words = body.split()
    windows = [words[i : i + CHUNK_WORDS] for i in range(0, len(words), CHUNK_WORDS)] or [[]]
    title = f"{entry.id} {entry.title}"
    return [
        MemoryDoc(f"{project}/{entry.id}#{n}", title, " ".join(window), "ledger")
        for n, window in enumerate(windows)
    ]


def fix_pair(project: str, entry: Entry) -> MemoryDoc | None:
    """A debug entry's failure signature and the fix that worked; ``None`` if never fixed."""
    fields = entry.fields()
    fix = fields.get("Fix", "")
    if not fix or fix.startswith("none"):
        return None
    text = f"Failure: {fields.get('Signature', '')}\nFix: {fix}"
    if fields.get("Root cause"):
        text += f"\nRoot cause: {fields['Root cause']}"
    return MemoryDoc(f"{project}/fix:{entry.id}", f"{entry.id} {entry.title}", text, "fix")


def phase_docs(project: str, run: RunSummary) -> list[MemoryDoc]:
    """One summary per phase: goal, outcome, and what each attempt met and changed."""
    docs = []
    for phase in run.phases:
        lines = [
            f"Goal: {phase.goal}",
            f"Outcome: {phase.state}",
            f"Scope: {' '.join(phase.scope)}",
        ]
        for attempt in phase.attempts:
            met = attempt.failure_signature() if attempt.outcome != "pass" else "passed"
            lines.append(f"Attempt {attempt.attempt}: {met}. {attempt.change_summary}".strip())
        docs.append(
            MemoryDoc(
                f"{project}/run:{run.run_id}/phase:{phase.phase_id}",
                f"{run.run_id} {phase.phase_id}",
                "\n".join(lines),
                "phase",
            )
        )
    return docs
