"""The Builder's tools: what a model may do inside a phase's worktree.

Every path goes through the phase's :class:`~autopack.edits.PathPolicy`: reads through
``resolve_read``, every write through the edits engine (which applies the policy and
keeps line endings, encoding and mode); every command goes through the sandboxed
runner. A tool never raises to the loop: refusals and errors come back as text the
model can act on, so a bad call costs a step, not the phase.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema
import regex as _regex

from autopack.edits import (
    EditReport,
    EditSet,
    FileEdit,
    PathRefused,
    apply_edit_text,
    apply_edits,
)
from autopack.edits.policy import normalize_rel
from autopack.llm.base import ToolCall, ToolSpec
from autopack.roles.repomap import list_files
from autopack.roles.tokens import clip
from autopack.workspace.portable import portable

if TYPE_CHECKING:
    from autopack.edits import PathPolicy
    from autopack.workspace.runner import Sandbox

MAX_SEARCH_HITS = 50
MAX_SEARCH_LINE = 2_000
SEARCH_SECONDS = 10.0
"""Longest one ``search`` may take: a regular expression that backtracks without end is
stopped here (by the ``regex`` engine's timeout), not by the phase's wall time."""


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    schema = {"type": "object", "properties": properties, "required": required}
    return ToolSpec(name=name, description=description, parameters=schema)


_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 1}
DECISION_SCHEMA = {
    "type": "object",
    "properties": {k: _STR for k in ("title", "context", "decision", "rationale", "alternatives")},
    "required": ["title", "decision"],
}
TOOL_SPECS: tuple[ToolSpec, ...] = (
    _spec(
        "read_file",
        "Read a text file of the worktree, optionally a range of 1-based lines.",
        {"path": _STR, "start_line": _INT, "end_line": _INT},
        ["path"],
    ),
    _spec("list_dir", "List a directory of the worktree.", {"path": _STR}, []),
    _spec(
        "search",
        "Find text (or a Python regex with regex=true) in the worktree's files.",
        {"pattern": _STR, "path": _STR, "regex": {"type": "boolean"}},
        ["pattern"],
    ),
    _spec(
        "edit",
        "Replace one exact snippet of a file; it must occur exactly once.",
        {"path": _STR, "old": _STR, "new": _STR},
        ["path", "old", "new"],
    ),
    _spec("write_file", "Create or overwrite a file.", {"path": _STR, "content": _STR}, ["path"]),
    _spec(
        "apply_patch",
        "Apply edits in any format the edits engine reads (search/replace, unified diff, "
        "whole file); all apply or none.",
        {"patch": _STR},
        ["patch"],
    ),
    _spec(
        "run",
        "Run a shell command in the worktree (sandboxed, with a timeout), e.g. the tests.",
        {"command": _STR, "timeout_s": {"type": "number", "minimum": 1}},
        ["command"],
    ),
    _spec(
        "finish",
        "End the phase: what you changed, and any design decisions worth recording.",
        {"summary": _STR, "decisions": {"type": "array", "items": DECISION_SCHEMA}},
        ["summary"],
    ),
)


class ExtraTools(Protocol):
    """Tools offered beside the Builder's own: a phase's MCP tools."""

    calls: int
    """Calls made so far; each counts against the Builder's step limit."""

    @property
    def specs(self) -> tuple[ToolSpec, ...]: ...

    def handles(self, name: str) -> bool:
        """Whether a call of ``name`` is for these tools (allowed or not)."""
        ...

    def dispatch(self, call: ToolCall) -> str: ...


@dataclass(frozen=True)
class ToolLimits:
    """Caps on what one tool call may cost."""

    run_timeout_s: float
    """Longest a ``run`` command may take, whatever the model asks for."""
    run_output_cap: int
    """Bytes of command output kept (head and tail)."""
    observation_tokens: int
    """Longest tool result sent back to the model."""


class Toolbox:
    """The Builder's tools bound to one worktree, path policy and sandbox."""

    def __init__(
        self, worktree: Path, policy: PathPolicy, sandbox: Sandbox, limits: ToolLimits
    ) -> None:
        self.worktree = worktree
        self.policy = policy
        self.sandbox = sandbox
        self.limits = limits
        self.handlers: dict[str, Callable[..., str]] = {
            "read_file": self.read_file,
            "list_dir": self.list_dir,
            "search": self.search,
            "edit": self.edit,
            "write_file": self.write_file,
            "apply_patch": self.apply_patch,
            "run": self.run,
        }

    def dispatch(self, call: ToolCall) -> str:
        """Run one tool call and describe the outcome; refusals are results, not crashes."""
        if call.error:
            return (
                f"error: the arguments of this {call.name} call could not be read: "
                f"{call.error}; nothing was done. Call it again with one JSON object."
            )
        handler = self.handlers.get(call.name)
        if handler is None:
            return f"error: unknown tool {call.name!r}; tools: {', '.join(self.handlers)}, finish"
        problem = argument_problem(call.name, call.arguments)
        if problem:
            return f"error: bad arguments for {call.name}: {problem}; nothing was done"
        try:
            result = handler(**call.arguments)
        except PathRefused as exc:
            result = f"refused: {exc}"
        except TypeError as exc:
            result = f"error: bad arguments for {call.name}: {exc}"
        except (OSError, UnicodeDecodeError, ValueError, re.error) as exc:
            result = f"error: {exc}"
        return clip(portable(result, self.worktree), self.limits.observation_tokens)

    def read_file(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        lines = self.policy.resolve_read(path).read_text(encoding="utf-8").splitlines()
        chosen = lines[max(start_line, 1) - 1 : end_line]
        if not chosen:
            return f"{path}: {len(lines)} lines; nothing in {start_line}..{end_line}"
        return "\n".join(chosen)

    def _directory(self, path: str) -> Path:
        """Resolve a directory to read; the root itself is allowed here (not for files)."""
        if not normalize_rel(path):
            return self.worktree.resolve()
        return self.policy.resolve_read(path)

    def list_dir(self, path: str = ".") -> str:
        target = self._directory(path)
        entries = [
            f"{entry.name}/" if entry.is_dir() else entry.name
            for entry in sorted(target.iterdir())
            if entry.name not in {".git", ".autopack"}
        ]
        return "\n".join(entries) or "(empty)"

    def search(self, pattern: str, path: str = ".", regex: bool = False) -> str:
        base = self._directory(path)
        try:
            matcher = _compile(pattern) if regex else None
        except _regex.error as exc:
            return f"error: not a regular expression: {exc}"
        deadline = time.monotonic() + SEARCH_SECONDS
        hits: list[str] = []
        roots = list_files(base) if base.is_dir() else ["."]
        try:
            for rel in roots:
                shown = (base / rel).relative_to(self.worktree.resolve()).as_posix()
                hits.extend(self._search_file(shown, pattern, matcher, deadline))
                if len(hits) >= MAX_SEARCH_HITS:
                    stop = f"... stopped at {MAX_SEARCH_HITS}"
                    return "\n".join([*hits[:MAX_SEARCH_HITS], stop])
        except TimeoutError:
            return (
                f"error: the search took longer than {SEARCH_SECONDS:g} s and was stopped; "
                "use a simpler pattern or a narrower path"
            )
        return "\n".join(hits) or f"no match for {pattern!r}"

    def _search_file(
        self, shown: str, pattern: str, matcher: _regex.Pattern[str] | None, deadline: float
    ) -> list[str]:
        """Matching lines of one file; raises ``TimeoutError`` once ``deadline`` passed."""
        try:
            text = self.policy.resolve_read(shown).read_text(encoding="utf-8")
        except (PathRefused, OSError, UnicodeDecodeError):
            return []  # unreadable or off-limits files are simply not searched
        hits = []
        for number, line in enumerate(text.splitlines(), start=1):
            probe = line[:MAX_SEARCH_LINE]
            if matcher is None:
                found = pattern in probe
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("search deadline")
                found = matcher.search(probe, timeout=left) is not None
            if found:
                hits.append(f"{shown}:{number}: {line.strip()[:200]}")
        return hits

    def edit(self, path: str, old: str, new: str) -> str:
        if not old:
            return "error: 'old' is empty; use write_file to create a file"
        report = self._write(FileEdit("snippet", path, old=old, new=new))
        return f"edited {path}" if report.applied else report.to_text()

    def write_file(self, path: str, content: str = "") -> str:
        existed = self.policy.resolve_write(path).exists()
        report = self._write(FileEdit("write", path, content=content))
        if not report.applied:
            return report.to_text()
        return f"{'overwrote' if existed else 'created'} {path} ({len(content)} chars)"

    def apply_patch(self, patch: str) -> str:
        report = apply_edit_text(patch, self.policy, fmt="auto")
        return str(report.to_text())

    def _write(self, edit: FileEdit) -> EditReport:
        """The one write path: the edits engine keeps endings, encoding, mode and policy."""
        return apply_edits(EditSet((edit,), "tool"), self.policy)

    def run(self, command: str, timeout_s: float | None = None) -> str:
        limit = min(timeout_s or self.limits.run_timeout_s, self.limits.run_timeout_s)
        result = self.sandbox.run(
            command, self.worktree, timeout_s=limit, output_cap=self.limits.run_output_cap
        )
        if result.timed_out:
            status = f"timed out after {limit:g}s; the command was killed"
        else:
            status = f"exit code {result.exit_code}"
        return f"{status}\n{result.output}"


_VALIDATORS = {
    spec.name: jsonschema.Draft202012Validator({**spec.parameters, "additionalProperties": False})
    for spec in TOOL_SPECS
}
"""Each tool's schema as sent to the model, plus: no arguments it does not declare."""


def argument_problem(tool: str, arguments: Any) -> str:
    """What is wrong with a tool call's arguments against the tool's schema, or ``""``.

    Checked before anything runs, so a handler only ever sees the types it declares.
    JSON Schema lets NaN and infinity through ``minimum`` (every comparison with NaN is
    false), and JSON parsers accept them, so numbers must also be finite.
    """
    error = jsonschema.exceptions.best_match(_VALIDATORS[tool].iter_errors(arguments))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        return f"{where}: {error.message}" if where else error.message
    bad = _non_finite(arguments)
    return f"{bad}: numbers must be finite" if bad is not None else ""


def _non_finite(value: Any, where: str = "") -> str | None:
    """The place of the first NaN or infinity inside ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the arguments"
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _compile(pattern: str) -> _regex.Pattern[str]:
    """A Python regular expression, compiled by the ``regex`` engine, whose searches take a
    timeout (the standard ``re`` cannot be interrupted)."""
    return _regex.compile(pattern, flags=_regex.VERSION0)


def parse_decisions(raw: Any) -> list[dict[str, str]]:
    """Keep the well-formed decisions of ``finish(decisions=...)``, as plain strings."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return []
    if not isinstance(raw, list):
        return []
    keys = ("title", "context", "decision", "rationale", "alternatives")
    decisions = []
    for item in raw:
        if isinstance(item, dict) and item.get("title") and item.get("decision"):
            decisions.append({k: str(item.get(k, "") or "") for k in keys})
    return decisions
