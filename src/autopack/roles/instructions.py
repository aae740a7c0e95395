"""The repository's own instructions for coding agents, given to every role.

``AGENTS.md`` (read by Codex, Claude Code, Cline and OpenHands), ``CLAUDE.md`` and
``CONVENTIONS.md`` (Aider's) at the repository root and in the folders on a phase's
scope paths, shallow first, each under a heading naming its source, together within a
token budget. The Builder and the Auditor read them from the phase's base commit (what
the Builder writes cannot instruct its own Auditor); the Planner from the repository.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from autopack.roles.tokens import clip, estimate_tokens

NAMES = ("AGENTS.md", "CLAUDE.md", "CONVENTIONS.md")
INSTRUCTIONS_TOKENS = 1_500
"""All instruction files of one prompt together; the rest is cut, marked so."""
_GLOB = frozenset("*?[")


def folders_on(scope: Iterable[str]) -> list[str]:
    """The repository root, then every folder a scope path goes through, shallow first."""
    found = [""]
    for pattern in scope:
        parts = pattern.strip("/").split("/")
        literal = []
        for part in parts:
            if _GLOB & set(part):
                break
            literal.append(part)
        else:
            literal = literal[:-1]  # a path without a glob names a file: its folders count
        for depth in range(1, len(literal) + 1):
            folder = "/".join(literal[:depth])
            if folder not in found:
                found.append(folder)
    return sorted(found, key=lambda f: (f.count("/") + bool(f), f))


def gather(
    read: Callable[[str], str | None],
    scope: Iterable[str] = (),
    budget: int = INSTRUCTIONS_TOKENS,
) -> str:
    """The instruction files ``read`` finds (it returns ``None`` for no such file), each
    under ``## <path>``, within ``budget`` tokens; ``(none)`` when there are none.

    The budget is shared fairly: a short file is given whole, and what it leaves is
    shared by the longer ones, so one long file cannot crowd out the others.
    """
    found: list[tuple[str, str]] = []
    for folder in folders_on(scope):
        for name in NAMES:
            rel = f"{folder}/{name}" if folder else name
            text = read(rel)
            if text is not None and text.strip():
                found.append((rel, f"## {rel}\n{text.strip()}"))
    if not found:
        return "(none)"
    allowed: dict[str, int] = {}
    left = budget - estimate_tokens("\n\n" * len(found))  # the separators count too
    by_size = sorted(found, key=lambda item: len(item[1]))
    for i, (rel, text) in enumerate(by_size):
        allowed[rel] = min(estimate_tokens(text), left // (len(by_size) - i))
        left -= allowed[rel]
    return "\n\n".join(
        clip(text, allowed[rel], note=f"[... the rest of {rel} was cut ...]") for rel, text in found
    )


def from_checkout(root: Path) -> Callable[[str], str | None]:
    """A reader of files in a checkout; symbolic links and anything outside it are skipped."""
    base = root.resolve()

    def read(rel: str) -> str | None:
        path = root / rel
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(base):
            return None
        return path.read_text(encoding="utf-8", errors="replace")

    return read
