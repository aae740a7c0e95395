"""The CLI's two consoles, which print text literally.

Messages carry user data: plan fields, model names, diffs with regular expressions, the
``[prices."..."]`` table an error tells the user to add. Rich's markup would delete
bracketed text and its emoji codes would turn ``:name:`` into pictures, so both are off:
style comes from :func:`labelled` and ``style=`` arguments, never from the message.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

console = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)
"""Errors stay one line each (soft wrap), greppable."""


def labelled(label: str, message: str, style: str = "red") -> Text:
    """``label`` in ``style``, then ``message`` exactly as it is."""
    return Text.assemble((label, style), " ", message)
