"""``tidy --check``: the ledgers are append-only, and this is where that is enforced.

Compared with a reference commit, every entry that existed there must still exist with
the same heading and text (trailing blank lines aside, so appending is free). On its
own, each ledger must have unique, contiguous ids from 1 in file order, and every
index row must name an entry (and every entry have a row). The generated blocks (the
README's summary, docs/INDEX.md's ledger list) must be what ``autopack tidy`` would
write from the ledgers as they are: a stale block is a problem, not a cosmetic.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from autopack.ledger.entries import FILE_NAME, Ledger, parse_ledger
from autopack.ledger.tidy import (
    DOCS,
    INDEX,
    KINDS,
    README,
    TidyError,
    ledger_path,
    read_ledgers,
    render_docs,
)
from autopack.workspace import git


def check_ledgers(repo: Path, against: str | None = None) -> list[str]:
    """Every problem found in ``repo``'s ledgers, as readable lines; ``[]`` means ok."""
    problems: list[str] = []
    for kind in KINDS:
        name = f"{DOCS / FILE_NAME[kind]}"
        path = ledger_path(repo, kind)
        current = parse_ledger(path.read_text(encoding="utf-8"), kind) if path.is_file() else None
        if current is not None:
            problems += [f"{name}: {p}" for p in structure_problems(current)]
        if against is not None:
            old_text = _show(repo, against, name)
            if old_text is not None:
                old = parse_ledger(old_text, kind)
                problems += [f"{name}: {p}" for p in append_only_problems(old, current, against)]
    return problems + stale_blocks(repo)


def stale_blocks(repo: Path) -> list[str]:
    """The README summary and INDEX.md ledger blocks that differ from the ledgers' own.

    Checked only where the repository has ledgers: a project without any has no blocks
    to keep."""
    if not any(ledger_path(repo, kind).is_file() for kind in KINDS):
        return []
    expected = render_docs(repo, read_ledgers(repo))
    problems = []
    for path, block in ((repo / README, "summary"), (repo / INDEX, "ledger")):
        if path in expected and _text(path) != expected[path]:
            problems.append(
                f"{path.relative_to(repo)}: the {block} block is stale or missing; "
                "run `autopack tidy --no-commit` and commit it"
            )
    return problems


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def structure_problems(ledger: Ledger) -> list[str]:
    """Duplicate or non-contiguous ids, wrong prefixes, index rows without entries."""
    problems = []
    ids = [entry.id for entry in ledger.entries]
    for entry_id, count in Counter(ids).items():
        if count > 1:
            problems.append(f"{entry_id} appears {count} times; ids must be unique")
    for position, entry in enumerate(ledger.entries, start=1):
        if not entry.id.startswith(f"{ledger.prefix}-"):
            problems.append(f"{entry.id} does not belong in this ledger ({ledger.prefix}-NNN)")
        elif entry.number != position:
            expected = f"{ledger.prefix}-{position:03d}"
            problems.append(f"{entry.id} is entry {position}; ids must be contiguous ({expected})")
            break
    indexed = {row.id for row in ledger.index}
    problems += [f"index row {row.id} has no entry" for row in ledger.index if row.id not in ids]
    problems += [f"{each} is missing from the index" for each in ids if each not in indexed]
    return problems


def append_only_problems(old: Ledger, new: Ledger | None, ref: str) -> list[str]:
    """Entries of ``old`` (at ``ref``) that vanished from or changed in ``new``."""
    if new is None:
        return [f"the file was deleted; it had {len(old.entries)} entries at {ref}"]
    now = {entry.id: entry for entry in new.entries}
    problems = []
    for entry in old.entries:
        if entry.id not in now:
            problems.append(f"{entry.id} vanished (it exists at {ref})")
        elif now[entry.id].text() != entry.text():
            problems.append(f"{entry.id} changed since {ref}; entries are append-only")
    return problems


def _show(repo: Path, ref: str, name: str) -> str | None:
    """The file's text at ``ref``; ``None`` when it did not exist there."""
    try:
        found = git.run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except FileNotFoundError as exc:
        raise TidyError("git is not installed") from exc
    if found.returncode != 0:
        raise ValueError(f"unknown reference {ref!r} in {repo}")
    done = git.run_git(repo, "show", "--no-textconv", f"{ref}:./{name}")
    return done.stdout if done.returncode == 0 else None
