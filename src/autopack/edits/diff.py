"""Making unified diffs that this engine (and git) read back exactly.

Used to show a change to a person or a model, and by the tests and the benchmark.
Unlike :func:`difflib.unified_diff` alone, it splits lines only at ``\\n`` and marks a
missing final newline, so any text round-trips.
"""

from __future__ import annotations

import difflib

from autopack.edits.textfile import split_lines

NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """The git-style diff turning ``old`` into ``new`` for the file ``path``."""
    old_lines, new_lines = split_lines(old), split_lines(new)
    body = difflib.unified_diff(
        old_lines, new_lines, f"a/{path}", f"b/{path}", n=context, lineterm=""
    )
    out: list[str] = []
    for n, line in enumerate(body):
        if n < 2 or line.startswith("@@"):
            out.append(line + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n" + NO_NEWLINE)
    return "".join(out)
