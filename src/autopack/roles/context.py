"""Context selection: what the Builder sees of the repository in its first prompt.

The budget (``context_tokens``) is split between the repo map and selected files.
The map already carries the symbols of every file in scope (they are its focus), so
the file section only holds whole files: first those the phase names (deliverables,
explicit scope paths, files its goal mentions), then the rest of the write scope,
then the read-only files that are named or referred to, smaller files first within
each group. Everything else the Builder reads with its tools. The first prompt is
resent on every step of the tool loop, which is why the budget is a cap, not a target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from autopack.plan import Phase
from autopack.roles.repomap import (
    list_files,
    mentioned_words,
    module_key,
    repo_map,
    scope_matcher,
)
from autopack.roles.tokens import clip, estimate_tokens

LISTING_SHARE = 0.15
"""Part of the file budget the scope listing may take."""
SEPARATOR = "\n\n"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Selection:
    """The rendered context sections and what went into them (the bench reports these)."""

    repo_map: str
    scope_listing: str
    context: str
    whole: tuple[str, ...] = ()
    omitted: tuple[str, ...] = ()
    tokens: int = field(default=0)


def scope_files(files: list[str], patterns: list[str]) -> list[str]:
    """The files among ``files`` that any of ``patterns`` covers."""
    covers = scope_matcher(patterns)
    return [f for f in files if covers(f)]


def select_context(
    phase: Phase, worktree: Path, *, token_budget: int, map_share: float
) -> Selection:
    """Repo map, scope listing and whole files for ``phase`` within ``token_budget``."""
    files = list_files(worktree)
    focus = [*phase.scope.paths, *phase.scope.read_only, *phase.deliverables]
    map_text = repo_map(worktree, token_budget=int(token_budget * map_share), focus=focus)
    remaining = token_budget - estimate_tokens(map_text)
    writable = scope_files(files, phase.scope.paths)
    listing = clip(_listing(writable, phase.deliverables), int(remaining * LISTING_SHARE))
    remaining -= estimate_tokens(listing)
    taken = set(writable)
    readable = [f for f in scope_files(files, phase.scope.read_only) if f not in taken]
    ordered, left_to_map = _candidates(worktree, writable, readable, phase)
    context, whole, omitted = _fill(worktree, ordered, remaining, len(left_to_map))
    omitted += tuple(left_to_map)
    total = estimate_tokens(map_text) + estimate_tokens(listing) + estimate_tokens(context)
    return Selection(map_text, listing, context, whole, omitted, total)


def _listing(writable: list[str], deliverables: list[str]) -> str:
    missing = [d for d in deliverables if d not in set(writable)]
    lines = [*writable, *(f"{d}  (deliverable, does not exist yet)" for d in missing)]
    return "\n".join(lines) if lines else "(no files yet)"


def _candidates(
    root: Path, writable: list[str], readable: list[str], phase: Phase
) -> tuple[list[str], list[str]]:
    """Files worth showing whole, in order, and the read-only files left to the map.

    Every writable file is a candidate (a text-protocol Builder must see what it edits).
    A read-only file is one only when the plan names it, the phase's text mentions it,
    or a writable file refers to it; the rest of a read-only glob is in the map and one
    ``read_file`` away.
    """
    named = set(phase.deliverables) | set(phase.scope.paths) | set(phase.scope.read_only)
    text = " ".join([phase.goal, phase.description, *phase.acceptance_criteria])
    goal_words = set(_WORD.findall(text))
    used_by_writable = mentioned_words(root, writable)

    def mentioned(rel: str) -> bool:
        path = Path(rel)
        return rel in named or path.stem in goal_words or path.name in goal_words

    def key(rel: str) -> tuple[int, int, str]:
        try:
            size = (root / rel).stat().st_size
        except OSError:
            size = 0
        return (0 if mentioned(rel) else 1, size, rel)

    relevant = [f for f in readable if mentioned(f) or used_by_writable.get(module_key(f))]
    rest = [f for f in readable if f not in set(relevant)]
    return sorted(writable, key=key) + sorted(relevant, key=key), rest


def _fill(
    root: Path, ordered: list[str], budget: int, not_candidates: int
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Show files whole while the budget lasts; name how many were left to the tools."""
    parts: list[str] = []
    whole: list[str] = []
    omitted: list[str] = []
    for rel in ordered:
        text = _read(root / rel)
        block = _whole_block(rel, text) if text is not None else ""
        cost = estimate_tokens(block + SEPARATOR)
        if block and cost <= budget:
            parts.append(block)
            whole.append(rel)
            budget -= cost
        else:
            omitted.append(rel)
    if omitted or not_candidates:
        count = len(omitted) + not_candidates
        note = f"{count} more files in scope are not shown: see the repo map; read them."
        if estimate_tokens(note) <= budget:
            parts.append(note)
    return SEPARATOR.join(parts) or "(no files)", tuple(whole), tuple(omitted)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _whole_block(rel: str, text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"## {rel}\n{fence}\n{text}\n{fence}"
