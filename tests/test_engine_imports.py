"""The engine's pure parts import nothing that does I/O: the decider (and the commands
module, which writes only through the store it is given) load no database driver, no
git, no sandbox, no model client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO = (
    "sqlalchemy",
    "alembic",
    "sqlite3",
    "subprocess",
    "autopack.store",
    "autopack.workspace",
    "autopack.llm",
    "autopack.config",
    "autopack.engine.create",
    "autopack.engine.local",
    "autopack.engine.steps",
)


@pytest.mark.parametrize("module", ["autopack.engine.decider", "autopack.engine.commands"])
def test_a_pure_engine_module_loads_nothing_that_does_io(module: str) -> None:
    probe = (
        f"import sys, json; import {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        f"for h in {IO!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
