"""pytest plugin: record the interpreter and the pytest plugins a test run used.

A baseline is evidence only together with what produced it: "No module named
'coverage'" means nothing until one knows which Python ran the tests. Loaded with
``-p autopack_env`` and ``AUTOPACK_ENV_REPORT`` naming a JSON file, it writes the
interpreter as soon as it is imported (before the project's own plugins load, so a
plugin that fails to import still leaves the interpreter on record), then the plugins
pytest registered once it is configured.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pytest


def _write(extra: dict[str, Any]) -> None:
    path = os.environ.get("AUTOPACK_ENV_REPORT")
    if not path:
        return
    report = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "pytest": pytest.__version__,
        **extra,
    }
    Path(path).write_text(json.dumps(report), encoding="utf-8")


_write({})


def pytest_configure(config: pytest.Config) -> None:
    distributions = config.pluginmanager.list_plugin_distinfo()
    plugins = sorted({f"{dist.project_name}-{dist.version}" for _, dist in distributions})
    _write({"plugins": plugins})
