"""Context selection keeps the Builder's first prompt within its budget, most relevant first."""

from __future__ import annotations

from pathlib import Path

import pytest
from roles_helpers import make_phase

from autopack.roles.context import select_context
from autopack.roles.tokens import estimate_tokens


def make_package(root: Path, modules: int = 60) -> Path:
    pkg = root / "src" / "app"
    pkg.mkdir(parents=True)
    for n in range(modules):
        body = "".join(f"def f{n}_{k}(x):\n    return x + {k}\n\n" for k in range(10 + n))
        (pkg / f"mod_{n:02d}.py").write_text(body)
    return root


@pytest.mark.parametrize("budget", [500, 2_000, 6_000, 20_000])
def test_map_and_context_stay_within_the_budget(tmp_path: Path, budget: int) -> None:
    root = make_package(tmp_path)
    chosen = select_context(make_phase(), root, token_budget=budget, map_share=0.3)
    total = sum(estimate_tokens(s) for s in (chosen.repo_map, chosen.scope_listing, chosen.context))
    assert total <= budget
    assert chosen.tokens == total


def test_files_the_goal_names_are_shown_whole_before_smaller_ones(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    phase = make_phase(goal="Fix the rounding in mod_55", deliverables=[])
    chosen = select_context(phase, root, token_budget=3_000, map_share=0.3)
    assert chosen.whole[0] == "src/app/mod_55.py"
    assert "def f55_0(x):" in chosen.context
    assert "src/app/mod_00.py" in chosen.whole
    assert "more files in scope are not shown" in chosen.context


def test_read_only_files_are_shown_when_named_or_used(tmp_path: Path) -> None:
    root = make_package(tmp_path, modules=3)
    lib = root / "src" / "lib"
    lib.mkdir()
    (lib / "helpers.py").write_text("def helper():\n    return 1\n")
    (lib / "unrelated.py").write_text("def other():\n    return 2\n")
    (root / "src/app/mod_00.py").write_text("from lib import helpers\n")
    phase = make_phase(
        scope={"paths": ["src/app/**"], "read_only": ["src/lib/**"]}, deliverables=[]
    )
    chosen = select_context(phase, root, token_budget=6_000, map_share=0.3)
    assert "src/lib/helpers.py" in chosen.whole
    assert "src/lib/unrelated.py" not in chosen.whole
    assert "src/lib/unrelated.py" in chosen.repo_map
