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


@pytest.fixture(autouse=True, scope="session")
def _proof_key_in_a_scratch_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs sign their proofs with a key in the user's config folder: here a scratch one
    per session, never the real home, and no key from the environment."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    os.environ.pop("AUTOPACK_PROOF_KEY", None)
