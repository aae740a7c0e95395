"""The ``autopack`` command starts without what only some commands need: importing it,
``--help``, ``runs`` and ``status`` load neither FastAPI, Alembic, SQLAlchemy, the
engine nor the settings and plan models (checked in a fresh interpreter's
``sys.modules``). ``runs`` and ``status`` read
the rows directly and print what the store would have printed; the rooms' commands,
loaded on use, are listed with the start of their own help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.cli.app import ROOM_COMMANDS, room_command

HEAVY = (
    "fastapi",
    "alembic",
    "sqlalchemy",
    "uvicorn",
    "autopack.engine",
    "autopack.store",
    "autopack.config",
    "autopack.plan",
)
PLAN = """\
run: {goal: Edit a}
tiers:
  - id: t
    phases:
      - id: p
        goal: Change a
        scope: {paths: [a.py]}
        tests: {command: "true"}
"""
SCRIPT = """\
version: 1
replies:
  p:
    builder:
      - |
        a.py
        <<<<<<< SEARCH
        A = 1
        =======
        A = 2
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""
PROBE = """
import json, sys
from autopack.cli import main
sys.argv = ["autopack", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = [m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
print("LOADED=" + json.dumps(sorted(heavy)))
"""


def fresh(args: list[str], cwd: Path, **env: str) -> tuple[str, list[str]]:
    """Run the CLI with ``args`` in a fresh interpreter: its output, and the heavy
    modules it had loaded when it finished."""
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    output, _, loaded = done.stdout.rpartition("LOADED=")
    assert loaded, done.stderr
    return output + done.stderr, json.loads(loaded)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A repository with one finished run."""
    root = tmp_path_factory.mktemp("cold") / "repo"
    root.mkdir()
    (root / "a.py").write_text("A = 1\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    (root.parent / "plan.yaml").write_text(PLAN)
    (root.parent / "script.yaml").write_text(SCRIPT)
    model = f"scripted:{root.parent / 'script.yaml'}"
    done = CliRunner().invoke(
        app, ["run", str(root.parent / "plan.yaml"), "-C", str(root), "--model", model]
    )
    assert done.exit_code == 0, done.output
    run_id = next((root / ".autopack" / "runs").iterdir()).name
    return root, run_id


def test_importing_the_cli_loads_no_server_store_or_engine(tmp_path: Path) -> None:
    code = (
        "import sys, autopack.cli\n"
        f"print(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        f"for h in {HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_runs_and_status_load_none_of_them(repo: tuple[Path, str]) -> None:
    root, run_id = repo
    shown, loaded = fresh(["--help"], root)
    assert loaded == [] and "verify-proof" in shown and "edits" in shown
    listed, loaded = fresh(["runs"], root)
    assert loaded == [] and run_id in listed and "SUCCEEDED" in listed
    status, loaded = fresh(["status", run_id], root)
    assert loaded == [] and run_id in status and "COMPLETE" in status


def test_runs_and_status_print_what_the_store_prints(repo: tuple[Path, str]) -> None:
    """The same database named by its URL goes through the store: same output."""
    root, run_id = repo
    url = f"sqlite:///{root / '.autopack' / 'autopack.db'}"
    for args in (["runs"], ["status", run_id]):
        quick, loaded = fresh(args, root)
        assert loaded == []
        stored, loaded = fresh(args, root, AUTOPACK_DB_URL=url)
        assert "sqlalchemy" in loaded
        assert quick == stored


def test_status_of_an_unknown_run_is_one_line_and_exit_2(repo: tuple[Path, str]) -> None:
    root, _ = repo
    done = CliRunner().invoke(app, ["status", "no-such-run", "-C", str(root)])
    assert done.exit_code == 2
    assert "no run 'no-such-run' in this repository" in done.output


@pytest.mark.parametrize("name", sorted(ROOM_COMMANDS))
def test_each_room_command_is_listed_with_the_start_of_its_own_help(name: str) -> None:
    listed = ROOM_COMMANDS[name][2].rstrip(".")
    assert (room_command(name).help or "").startswith(listed)
