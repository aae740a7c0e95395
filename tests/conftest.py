"""Suite-wide rules. With ``AUTOPACK_REQUIRE_ALL=1`` (CI sets it) no test may skip:
a skip there means a dependency CI should have installed is missing."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    required = os.environ.get("AUTOPACK_REQUIRE_ALL") == "1"
    if required and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under AUTOPACK_REQUIRE_ALL=1: {report.longrepr}"
