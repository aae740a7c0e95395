"""A small real project with known gaps, committed in a real git repository, and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from autopack.cli import app

CALC = '''"""A calculator."""

import os


def add(a: int, b: int) -> int:
    return a + b


def divide(a: int, b: int) -> float:
    return a // b


def scale(a: int) -> int:
    # TODO: support floats
    return a * 2


def typed() -> int:
    return "not an int"
'''
ADD_DEPENDENCY = """Adding a dependency.

pyproject.toml
<<<<<<< SEARCH
dependencies = []
=======
dependencies = ["requests"]
>>>>>>> REPLACE
"""
TESTS = """import pytest

from calc import add, divide


def test_add():
    assert add(1, 2) == 3


def test_divide():
    assert divide(1, 2) == 0.5


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_uses_broken(broken):
    assert broken


@pytest.mark.skip(reason="waits for the parser")
def test_parser():
    pass


@pytest.mark.xfail(reason="rounding is wrong")
def test_rounding():
    assert round(2.675, 2) == 2.68
"""
PYPROJECT = """[project]
name = "calc"
version = "0"

[tool.ruff]
line-length = 100

[tool.mypy]
files = ["calc.py"]
"""
DEBUG_LOG = """# Debug log

| ID | Date | Title |
|---|---|---|

## DBG-001 | 2026-12-01 | Division rounds down
- Symptom: divide(1, 2) is 0.
- Signature: assert 0 == 0.5
- Root cause: floor division.
- Fix: none
- Verified: -

## DBG-002 | 2026-12-02 | Import was slow
- Symptom: slow.
- Signature: -
- Root cause: a big import.
- Fix: Import lazily.
- Verified: timed.
"""
INTENTION = """north_star: A calculator people trust.
success_criteria:
  tests: [tests/test_feature.py::test_power]
  commands: ["python -c 'import calc; calc.power'"]
  files: [docs/usage.md]
constraints:
  must: [Keep the functions pure]
  must_not: [Add dependencies]
  frozen_paths: [vendor/**]
  frozen_dependencies: true
  public_names: ["calc.py:add"]
preferences: [Small commits]
allowed_paths: ["calc.py", "tests/**", "docs/**", "vendor/**", README.md]
out_of_scope: [vendor/**]
budgets:
  iterations: 3
  total: {cost_usd: 2.5}
"""


README = """# calc

Add two numbers:

```console
$ pip install calc
$ python -c 'import calc; print(calc.add(1, 2))'
3
$ python -m calc.cli --version
calc 1.0
```

The plan lives in docs:

```sh
cd docs
cat plan.md
```

```python
calc.add(1, 2)
```
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode()


def commit_all(repo: Path, message: str = "work") -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def gappy_project(root: Path) -> Path:
    """A committed project with one gap of each kind the scan finds (see the tests)."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(
        root,
        {
            "calc.py": CALC,
            "tests/test_calc.py": TESTS,
            "pyproject.toml": PYPROJECT,
            "docs/DEBUG_LOG.md": DEBUG_LOG,
            "vendor/lib.py": "# TODO: not ours to fix\n",
            "docs/plan.md": "# Plan\n\nTODO: write the guide\nOur TODO list is short.\n",
            "logo.png": "\x89PNG TODO: not text\n",
            ".autopack/intention.yaml": INTENTION,
            "README.md": README,
        },
    )
    git(root, "config", "core.excludesFile", "/dev/null")
    (root / ".git/info/exclude").write_text(".autopack/\n")
    commit_all(root, "start")
    return root


def autopack(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def gaps_json(repo: Path, *args: str) -> dict[str, Any]:
    result = autopack("gaps", "-C", str(repo), "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def by_kind(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for gap in data["gaps"]:
        kinds.setdefault(gap["kind"], []).append(gap)
    return kinds
