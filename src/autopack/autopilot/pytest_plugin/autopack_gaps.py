"""pytest plugin: where each test that did not pass is, and why it was skipped.

Loaded by ``autopack gaps`` next to Autopack's report plugin (``-p autopack_gaps`` with
this folder on ``PYTHONPATH``), it appends one JSON object per line to the file named by
``AUTOPACK_GAPS_REPORT`` for every test phase that did not pass: ``{"test": nodeid,
"when": phase, "kind": "failed" | "error" | "skipped" | "xfailed", "path": file, "line":
1-based line, "reason": text}``. The outcomes themselves come from the report plugin;
this one only adds what a person needs to find the test: its place and the reason.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

REASON_CHARS = 200


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    target = os.environ.get("AUTOPACK_GAPS_REPORT")
    if not target or report.passed:
        return
    path, line, _ = report.location
    entry: dict[str, Any] = {
        "test": report.nodeid,
        "when": report.when,
        "kind": _kind(report),
        "path": path,
        "line": (line or 0) + 1,
        "reason": _reason(report)[:REASON_CHARS],
    }
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def _kind(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "failed"  # a strict xfail that passed
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail) or "expected to fail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0] if crash.message else ""
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""
