"""Fixtures for the roles tests: a real door over scripted models, and a small worktree."""

from __future__ import annotations

from pathlib import Path

import pytest
from roles_helpers import Calls

from autopack.events import ModelCalled
from autopack.llm.budget import BudgetLedger, Caps, Spent
from autopack.llm.door import ModelDoor
from autopack.llm.pricing import PriceTable


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def recorded() -> list[ModelCalled]:
    return []


@pytest.fixture
def door(recorded: list[ModelCalled]) -> ModelDoor:
    ledger = BudgetLedger(Caps(), {}, Spent(), {})
    return ModelDoor(
        run_id="t", ledger=ledger, prices=PriceTable.default(), on_call=recorded.append
    )


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "__init__.py").write_text("")
    (root / "src" / "app" / "core.py").write_text("def core():\n    return 1\n")
    (root / "README.md").write_text("# App\nSays hello.\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root
