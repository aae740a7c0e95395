"""README commands: the shell commands a project's README tells people to type, and which
of them fail at HEAD.

The rule, which ``docs/autopilot.md`` documents:

* The README is ``README.md`` (fenced blocks) or ``README.rst`` (``code-block``, ``code``
  and ``sourcecode`` directives) at the repository's root.
* Only blocks tagged as shell are read: ``console``, ``shell-session``, ``bash``, ``sh``,
  ``shell``, ``zsh``.
* In a block where some line starts with ``$ `` (always so in ``console`` and
  ``shell-session`` blocks), exactly those lines are commands and the rest is output; in
  any other shell block every line is a command, but blank lines and ``#`` comments. A line
  ending with ``\\`` goes on with the next one.
* ``cd DIR`` is not run by itself: it is where the block's following commands run.
* Skipped, and named in the scan's notes: commands that install things or need the network
  (:data:`SKIPPED`; the sandbox has no network anyway), and commands with a placeholder
  such as ``<file>``.

Each command runs in the sandbox in the repository's export of HEAD, in order, with its
own timeout (:data:`TIMEOUT_S`). A command that exits non-zero is a ``readme`` gap at its
README line; one that does not finish in time is noted, not counted (a server, a watcher).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

README_NAMES = ("README.md", "README.rst")
SHELL_TAGS = frozenset({"console", "shell-session", "bash", "sh", "shell", "zsh"})
PROMPT_TAGS = frozenset({"console", "shell-session"})
TIMEOUT_S = 60.0
"""Per command: a README command is a quick demonstration, not a test suite."""
SKIPPED: tuple[tuple[str, ...], ...] = (
    ("pip", "install"),
    ("pip3", "install"),
    ("python", "-m", "pip", "install"),
    ("python3", "-m", "pip", "install"),
    ("pipx",),
    ("uv", "pip", "install"),
    ("uv", "add"),
    ("uv", "sync"),
    ("uv", "tool"),
    ("uvx",),
    ("poetry", "install"),
    ("poetry", "add"),
    ("conda",),
    ("mamba",),
    ("apt",),
    ("apt-get",),
    ("brew",),
    ("npm", "install"),
    ("npm", "i"),
    ("yarn",),
    ("curl",),
    ("wget",),
    ("git", "clone"),
    ("git", "pull"),
    ("git", "fetch"),
    ("git", "push"),
    ("docker",),
    ("podman",),
    ("ssh",),
    ("scp",),
    ("sudo",),
)
"""Commands (by their first words) that install things or reach the network: skipped."""
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_RST_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode)::[ \t]*(\S*)")
_PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]*>")


@dataclass(frozen=True)
class Command:
    """One README command: where it is, the folder it runs in (``cd``), what it runs."""

    path: str
    line: int
    command: str
    folder: str = "."

    def skip_reason(self) -> str:
        """Why it is not run, or ``""``."""
        try:
            words = shlex.split(self.command)
        except ValueError:
            words = self.command.split()
        for pattern in SKIPPED:
            if tuple(words[: len(pattern)]) == pattern:
                return "installs or needs the network"
        if _PLACEHOLDER.search(self.command):
            return "has a placeholder"
        return ""


def readme_path(files: set[str] | dict[str, object]) -> str | None:
    """The root README the scan reads, among the tracked ``files``."""
    return next((name for name in README_NAMES if name in files), None)


def commands(path: str, text: str) -> list[Command]:
    """The shell commands of a README's shell blocks, in order (see the module's rule)."""
    blocks = _rst_blocks(text) if path.endswith(".rst") else _markdown_blocks(text)
    found: list[Command] = []
    for tag, lines in blocks:
        found += _block_commands(path, tag, lines)
    return found


def _markdown_blocks(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        index += 1
        if opened is None:
            continue
        fence, indent = opened["fence"], len(opened["indent"])
        tag = (opened["info"].split() or [""])[0].strip("{}.").lower()
        body: list[tuple[int, str]] = []
        while index < len(lines):
            line = lines[index]
            index += 1
            closing = line.strip()
            if len(closing) >= len(fence) and set(closing) == {fence[0]}:
                break
            body.append((index, line[indent:] if line[:indent].strip() == "" else line))
        yield tag, body


def _rst_blocks(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opened = _RST_DIRECTIVE.match(lines[index])
        index += 1
        if opened is None:
            continue
        tag, base = opened.group(2).lower(), len(opened["indent"])
        while index < len(lines) and lines[index].strip().startswith(":"):
            index += 1  # the directive's options
        body: list[tuple[int, str]] = []
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= base:
                break
            body.append((index + 1, line))
            index += 1
        while body and not body[-1][1].strip():
            body.pop()
        indent = min((len(t) - len(t.lstrip()) for _, t in body if t.strip()), default=0)
        yield tag, [(n, t[indent:]) for n, t in body]


def _block_commands(path: str, tag: str, lines: list[tuple[int, str]]) -> list[Command]:
    if tag not in SHELL_TAGS:
        return []
    prompted = tag in PROMPT_TAGS or any(t.startswith("$ ") for _, t in lines)
    found: list[Command] = []
    folder = "."
    pending: tuple[int, str] | None = None
    for number, text in lines:
        if pending is not None:  # a continued line
            start, so_far = pending
            joined = so_far[:-1].rstrip() + " " + text.strip()
            pending = (start, joined) if joined.endswith("\\") else None
            if pending is None:
                folder = _take(found, path, start, joined, folder)
            continue
        if prompted:
            if not text.startswith("$ "):
                continue
            command = text[2:].strip()
        else:
            command = text.strip()
            if not command or command.startswith("#"):
                continue
        if command.endswith("\\"):
            pending = (number, command)
            continue
        folder = _take(found, path, number, command, folder)
    return found


def _take(found: list[Command], path: str, line: int, command: str, folder: str) -> str:
    """Add a command (a ``cd`` only moves the folder); the folder after it."""
    words = command.split()
    if words and words[0] == "cd" and len(words) == 2 and "&&" not in command:
        target = words[1]
        if target.startswith(("/", "~", "$")) or ".." in Path(target).parts:
            return folder  # out of the repository: its following commands run at the root
        return str(Path(folder) / target)
    found.append(Command(path, line, command, folder))
    return folder
