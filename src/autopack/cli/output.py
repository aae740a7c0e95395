"""The CLI's two consoles, which print text literally.

Messages carry user data: plan fields, model names, diffs with regular expressions, the
``[prices."..."]`` table an error tells the user to add. Rich's markup would delete
bracketed text and its emoji codes would turn ``:name:`` into pictures, so both are off:
style comes from :func:`labelled` and ``style=`` arguments, never from the message.

``console`` and ``err`` are made on first use (Rich is not imported until something
is printed), so a command that prints through ``typer.echo`` starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    console: Console
    err: Console
    """Errors stay one line each (soft wrap), greppable."""


def __getattr__(name: str) -> Console:
    if name not in ("console", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    made = {
        "console": Console(markup=False, emoji=False, highlight=False),
        "err": Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False),
    }
    globals().update(made)
    return made[name]


def labelled(label: str, message: str, style: str = "red") -> Text:
    """``label`` in ``style``, then ``message`` exactly as it is."""
    from rich.text import Text

    return Text.assemble((label, style), " ", message)
