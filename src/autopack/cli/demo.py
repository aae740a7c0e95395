"""``autopack demo``: the bundled example, run for real with scripted model replies."""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console

from autopack.config import CONFIG_FILE, render_default_config
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import load_plan
from autopack.states import RunState
from autopack.workspace import git

DEMO = resources.files("autopack") / "examples" / "demo"
# The demo project needs no pytest plugins; not loading every installed one keeps each
# of the run's test commands fast.
DEMO_TESTS = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q"


def demo_files() -> tuple[Path, Path, Path]:
    """The bundled project folder, plan and script."""
    root = Path(str(DEMO))
    return root / "project", root / "plan.yaml", root / "script.yaml"


def prepare_demo_repo(target: Path) -> Path:
    """Copy the example project into ``target`` as a fresh git repository on ``main``."""
    project, _, _ = demo_files()
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; choose another --dir")
    shutil.copytree(
        project,
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
    )
    (target / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n", encoding="utf-8")
    (target / CONFIG_FILE).write_text(render_default_config(DEMO_TESTS), encoding="utf-8")
    git.git(target, "init", "-q", "-b", "main")
    git.git(target, "add", "-A")
    git.git(target, "commit", "-q", "-m", "textkit: initial version")
    return target


def run_demo(directory: Path | None, console: Console) -> int:
    target = (directory or Path(tempfile.mkdtemp(prefix="autopack-demo-"))).resolve()
    _, plan_path, script_path = demo_files()
    plan = load_plan(plan_path)
    console.print(
        "Autopack demo: the model replies in this demo are scripted "
        f"(read from {script_path.name}); no language model is called.\n"
        f"repository: {target}"
    )
    repo = prepare_demo_repo(target)
    rt = Runtime.open(repo, model_override=f"scripted:{script_path}")
    run_id = create_run(rt, plan, plan_source=str(plan_path))
    from autopack.cli.view import live_run, run_table

    with live_run(console, rt.store, run_id):
        state = LocalExecutor(rt).execute(run_id)
    if not console.is_terminal:  # on a terminal the live view left the final table
        console.print(run_table(rt.store.view(run_id)))
    _explain(console, rt, run_id, state)
    return 0 if state is RunState.SUCCEEDED else 1


def _explain(console: Console, rt: Runtime, run_id: str, state: RunState) -> None:
    view = rt.store.view(run_id)
    commits = git.log_commits(rt.repo, view.base_commit, view.branch)
    retried = [p.id for p in view.phases.values() if p.attempt > 1]
    console.print(f"\nrun {run_id} {state.value}: {view.reason}")
    console.print(f"{len(commits)} phase commits on {view.branch}; main is untouched.")
    if retried:
        console.print(
            f"The gate sent {', '.join(retried)} back once: its first attempt broke an existing "
            "test. See `autopack show` for the evidence."
        )
    console.print("\nWhere to look:")
    for line in (
        f"cd {rt.repo}",
        f"git log --stat {view.branch}",
        f"autopack status {run_id}",
        f"autopack show {run_id} word-frequencies --attempt 1",
        f"ls .autopack/runs/{run_id}/",
    ):
        console.print(f"  {line}", soft_wrap=True)  # a command is copied whole, never wrapped
    console.print("  (the run's events, cassette, proofs and per-attempt evidence)")
