"""Token estimates for budgeting prompts before they are sent.

The same characters-per-token rule as the door's estimate, so a context budget here
means the same thing as a reservation there.
"""

from __future__ import annotations

from autopack.llm.tokens import CHARS_PER_TOKEN


def estimate_tokens(text: str) -> int:
    """Approximate prompt tokens of ``text``."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def clip(text: str, max_tokens: int, note: str = "[... truncated ...]") -> str:
    """Cut ``text`` to about ``max_tokens``, marking the cut so the reader knows."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(note) - 1)
    return text[:keep] + "\n" + note
