"""``autopack show``: one attempt's evidence as a person reads it, on one screen.

The summary names what decided the attempt: the gate's decision and reasons, the test
counts against the baseline with the tests that changed outcome (whole ids, never cut),
the audit, the diff stat, and the edits engine's report when edits were refused.
``--json`` gives everything recorded instead (:func:`attempt_evidence`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

FAILING = (
    ("newly_failing", "newly failing (passed before)"),
    ("fail_to_pass_failing", "required to pass, failing"),
    ("hidden_failing", "hidden acceptance tests failing"),
    ("missing", "missing (in the baseline, not run)"),
    ("collection_errors", "collection errors"),
    ("run_errors", "run errors"),
    ("edited_failing", "edited tests failing"),
    ("runner_tampered", "test runner tampered with"),
)
"""Delta lists that mean a test is not passing, in the order a reader needs them."""
LISTED = 8
"""Tests shown per list; the rest are counted (``--json`` has them all)."""
REPORT_LINES = 12
"""Lines of a refused edit's report shown."""


def attempt_evidence(
    folder: Path, steps: dict[str, Any], run_id: str, phase_id: str, attempt: int, state: str
) -> dict[str, Any]:
    """Everything recorded for the attempt: its step results, the diff, the test evidence."""
    return {
        "run_id": run_id,
        "phase_id": phase_id,
        "attempt": attempt,
        "phase_state": state,
        "steps": steps,
        "diff": _read(folder / "changes.diff"),
        "verify": _json(folder / "verify.json"),
    }


def attempt_summary(evidence: dict[str, Any]) -> RenderableType:
    """The evidence of :func:`attempt_evidence` in at most a screenful of lines."""
    steps, verify = evidence["steps"], evidence["verify"]
    title = Text.assemble(
        (f"{evidence['phase_id']} attempt {evidence['attempt']}", "bold"),
        f" of {evidence['run_id']} (phase {evidence['phase_state']})",
    )
    parts: list[RenderableType] = [title, *_gate(steps.get("gate"))]
    parts += _tests(steps.get("verify"), verify)
    parts += _audit(steps.get("audit"))
    parts += _changes(evidence["diff"])
    parts += _refused(steps.get("apply"))
    parts += _mcp_calls(steps.get("build"))
    parts.append(Text("the full evidence (test output, every report): add --json", "dim"))
    return Group(*parts)


def _mcp_calls(build: dict[str, Any] | None) -> list[RenderableType]:
    """The Builder's calls of MCP tools, each with its outcome."""
    calls = (build or {}).get("mcp_calls", [])
    if not calls:
        return []
    lines = [
        f"{c['server']}.{c['tool']}: " + (f"error: {c['detail']}" if c["is_error"] else "ok")
        for c in calls
    ]
    return [Text(f"MCP calls: {len(calls)}"), *(_item(line) for line in lines)]


def _item(text: str, indent: int = 2) -> RenderableType:
    """An indented line whose wrapped continuation keeps the indent."""
    return Padding(Text(text), (0, 0, 0, indent), expand=False)


def _gate(gate: dict[str, Any] | None) -> list[RenderableType]:
    if not gate:
        return [Text("gate: not reached")]
    rules = ", ".join(gate.get("rules", []))
    head = Text.assemble("gate: ", (str(gate.get("decision", "?")), "bold"))
    if rules:
        head.append(f" (rules: {rules})")
    reasons = [str(reason).splitlines() or [""] for reason in gate.get("reasons", [])]
    return [head, *(_item(f"- {lines[0]}" + (" (...)" * (len(lines) > 1))) for lines in reasons)]


def _tests(step: dict[str, Any] | None, verify: dict[str, Any]) -> list[RenderableType]:
    if not verify and not step:
        return [Text("tests: not run")]
    counts = (step or {}).get("counts", {})
    run = verify.get("full_run") or verify.get("selected_run") or {}
    now = counts.get("full") or run.get("counts") or {}
    base = counts.get("baseline") or (verify.get("baseline") or {}).get("counts") or {}
    line = Text(f"tests: {_counts(now) or 'none ran'} (baseline: {_counts(base) or 'none'})")
    delta: dict[str, list[str]] = verify.get("delta") or {}
    changes = [
        f"{len(delta.get(key, []))} {label}"
        for key, label in (("newly_failing", "newly failing"), ("fixed", "fixed"))
        if delta.get(key)
    ]
    if delta.get("new_tests"):
        changes.append(f"{len(delta['new_tests'])} new tests")
    if delta.get("not_run"):  # the affected tests stop at the first proven failure
        changes.append(f"{len(delta['not_run'])} affected not run (already failed)")
    out: list[RenderableType] = [line]
    if changes:
        out.append(_item(", ".join(changes)))
    for key, label in FAILING:
        tests = [str(t) for t in delta.get(key, [])]
        if tests:
            out.append(Text(f"{label}:", "bold red"))
            out += [Text(f"  {test}", no_wrap=True, overflow="ignore") for test in tests[:LISTED]]
            if len(tests) > LISTED:
                out.append(Text(f"  ... and {len(tests) - LISTED} more"))
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)


def _audit(audit: dict[str, Any] | None) -> list[RenderableType]:
    if not audit:
        return []
    issues = audit.get("issues", [])
    head = f"audit: {audit.get('verdict', '?')}: {audit.get('summary', '')}".rstrip(": ")
    out: list[RenderableType] = [Text(head)]
    for issue in issues[:LISTED]:
        where = issue.get("path", "") + (f":{issue['line']}" if issue.get("line") else "")
        said = issue.get("message") or issue.get("description") or ""
        out.append(_item(" ".join(p for p in ("-", issue.get("severity", ""), where, said) if p)))
    return out


def diff_stat(diff: str) -> list[tuple[str, int, int]]:
    """Per file of a unified git diff: its path, lines added, lines removed."""
    files: list[tuple[str, int, int]] = []
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            path = line.rsplit(" b/", 1)[-1]
            files.append((path, 0, 0))
        elif files and line.startswith("+") and not line.startswith("+++ "):
            path, added, removed = files[-1]
            files[-1] = (path, added + 1, removed)
        elif files and line.startswith("-") and not line.startswith("--- "):
            path, added, removed = files[-1]
            files[-1] = (path, added, removed + 1)
    return files


def _changes(diff: str) -> list[RenderableType]:
    files = diff_stat(diff)
    if not files:
        return [Text("changes: none")]
    added = sum(f[1] for f in files)
    removed = sum(f[2] for f in files)
    out: list[RenderableType] = [Text(f"changes: {len(files)} file(s), +{added} -{removed}")]
    width = max(len(path) for path, _, _ in files[:LISTED])
    for path, plus, minus in files[:LISTED]:
        out.append(Text(f"  {path:<{width}}  +{plus} -{minus}", no_wrap=True, overflow="ignore"))
    if len(files) > LISTED:
        out.append(Text(f"  ... and {len(files) - LISTED} more files"))
    return out


def _refused(apply: dict[str, Any] | None) -> list[RenderableType]:
    if not apply or apply.get("applied", True) or not apply.get("feedback"):
        return []
    report = str(apply["feedback"]).rstrip().splitlines()
    out: list[RenderableType] = [Text("edits refused:", "bold red")]
    out += [_item(line) for line in report[:REPORT_LINES]]
    if len(report) > REPORT_LINES:
        out.append(Text(f"  ... {len(report) - REPORT_LINES} more lines"))
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
