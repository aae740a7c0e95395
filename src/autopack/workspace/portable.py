"""Text for a model without what belongs to this machine or this run.

Test output and the output of the Builder's tools reach prompts; a replay asks the same
questions in another worktree (its run id is another), at other temporary folders and
on another day, and its requests must hash the same as the recorded ones. Nor has the
model any use for where things are on this machine. :func:`portable` is the one place
that says what is left out; it runs before any cut of the text, so a cut cannot fall
inside a path that a replay would write at another length.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from pathlib import Path

WORKTREE = "<worktree>"
HOME = "<home>"
PYTHON = "<python>"
TMP = "<tmp>"
TIME = "<time>"

_TIMING = re.compile(r"\b\d+\.\d+\s?(?:s|ms|sec|seconds)\b")
_PART = r"/[^\s/'\"`<>|:;,()\[\]{}=*?]+"
"""One part of a path, up to a character that ends a path in prose, reprs and tracebacks."""


def portable(text: str, worktree: Path) -> str:
    """``text`` with machine-specific paths and durations replaced by placeholders.

    The worktree becomes ``<worktree>``, the interpreter's prefix ``<python>`` and the home
    folder ``<home>`` (the longest first, so a worktree inside the home stays a worktree).
    A path under a temporary folder (``/tmp``, ``/var/tmp``, ``$TMPDIR``), whose folders
    are random, becomes ``<tmp>`` followed by its last part when it has more than one
    (``/tmp/tmpab12/junit.xml`` -> ``<tmp>/junit.xml``). Durations (``0.42s``) become
    ``<time>``.
    """
    roots = _roots(worktree)
    text = roots.pattern.sub(lambda m: roots.names[m.group(0)], text) if roots.names else text
    text = _temporary().sub(_tmp_path, text)
    return _TIMING.sub(TIME, text)


class _Roots:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        ordered = sorted(names, key=len, reverse=True)
        alternatives = "|".join(re.escape(root) for root in ordered)
        self.pattern = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-])")


def _roots(worktree: Path) -> _Roots:
    return _machine_roots(str(worktree), str(worktree.resolve()), str(Path.home()))


@functools.lru_cache(maxsize=64)
def _machine_roots(worktree: str, resolved: str, home: str) -> _Roots:
    names: dict[str, str] = {}
    for prefix in (sys.base_prefix, sys.prefix, sys.exec_prefix):
        names.update(dict.fromkeys(_spellings(prefix), PYTHON))
    if home not in ("", "/"):
        names.update(dict.fromkeys(_spellings(home), HOME))
    names.update(dict.fromkeys({worktree, resolved}, WORKTREE))
    return _Roots({root: name for root, name in names.items() if root.count("/") >= 1})


def _spellings(path: str) -> set[str]:
    return {path, os.path.realpath(path)} - {"", "/"}


@functools.cache
def _temporary() -> re.Pattern[str]:
    folders = {"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()}
    folders |= {os.path.realpath(folder) for folder in folders}
    alternatives = "|".join(re.escape(f) for f in sorted(folders - {"/"}, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])(?:{alternatives})((?:{_PART})*)/?(?![\w.-])")


def _tmp_path(match: re.Match[str]) -> str:
    parts = match.group(1).split("/")[1:]
    return f"{TMP}/{parts[-1]}" if len(parts) > 1 else TMP
