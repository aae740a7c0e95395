"""Prompt templates: package data, one per role, readable and editable as text.

Each template is a ``string.Template`` in ``prompts/<role>.md``. A leading HTML comment
documents its placeholders; it is stripped so it never costs prompt tokens.
"""

from __future__ import annotations

import re
from importlib import resources
from string import Template

_LEADING_COMMENT = re.compile(r"\A\s*<!--.*?-->\s*", re.DOTALL)


def template_text(role: str) -> str:
    """The raw template of a role, header comment included (for people and docs)."""
    return resources.files("autopack.roles").joinpath("prompts", f"{role}.md").read_text("utf-8")


def render(role: str, **values: str) -> str:
    """Fill a role's template; a missing placeholder raises ``KeyError`` rather than leaking."""
    body = _LEADING_COMMENT.sub("", template_text(role), count=1)
    return Template(body).substitute(values)


def bullets(items: list[str] | tuple[str, ...], empty: str = "(none)") -> str:
    """Render items as ``- `` lines, or ``empty`` when there are none."""
    return "\n".join(f"- {item}" for item in items) if items else empty
