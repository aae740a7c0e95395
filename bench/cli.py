"""Cold start of the ``autopack`` command, next to the interpreter's own start.

Each command runs as a fresh subprocess (``python -c "from autopack.cli import main;
main()" ARGS``, what the installed script does), interleaved with ``python -c pass``
in the same invocation; the table shows the median of N runs of each and the
difference. The target is at most 0.25 s above the interpreter for every command. The
first row, a Typer app that does nothing, is what the command line library costs alone.

    python bench/cli.py            # 15 runs of each
    python bench/cli.py --quick    # 3 runs of each (CI smoke run)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autopack.cli.demo import demo_files, prepare_demo_repo

TARGET_S = 0.25
ENTRY = "from autopack.cli import main; main()"
TYPER_FLOOR = """\
from pathlib import Path
import typer
app = typer.Typer()
@app.command()
def runs(repo: Path = Path("."), state: str = "", limit: int = 20) -> None:
    print(repo, state, limit)
@app.command()
def other() -> None:
    pass
app()
"""
"""A Typer app of two commands doing nothing: what the command line library costs."""
EDIT = "a.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"


def timed(argv: list[str], cwd: Path) -> float:
    """Seconds one subprocess takes, start to exit; it must succeed."""
    env = {**os.environ, "COLUMNS": "80"}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:])} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def prepare(folder: Path) -> tuple[Path, str, Path]:
    """The demo repository with one finished run, and an edit directory with one file."""
    repo = prepare_demo_repo(folder / "repo")
    _, plan, script = demo_files()
    cli = [sys.executable, "-c", ENTRY]
    subprocess.run(
        [*cli, "run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"],
        check=True,
        capture_output=True,
    )
    run_id = next((repo / ".autopack" / "runs").iterdir()).name
    edits = folder / "edits"
    edits.mkdir()
    (edits / "edit.txt").write_text(EDIT)
    return repo, run_id, edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each (CI)")
    parser.add_argument("-n", type=int, default=15, help="runs of each command")
    args = parser.parse_args()
    runs = 3 if args.quick else args.n
    with tempfile.TemporaryDirectory(prefix="autopack-bench-cli-") as tmp:
        repo, run_id, edits = prepare(Path(tmp))
        cli = [sys.executable, "-c", ENTRY]
        commands = {
            "(a bare Typer app)": ([sys.executable, "-c", TYPER_FLOOR, "runs"], repo, None),
            "autopack --help": ([*cli, "--help"], repo, None),
            "autopack runs": ([*cli, "runs"], repo, None),
            "autopack status RUN": ([*cli, "status", run_id], repo, None),
            "autopack edits apply": (
                [*cli, "edits", "apply", "edit.txt", "--root", str(edits)],
                edits,
                EDIT,
            ),
        }
        baseline = [sys.executable, "-c", "pass"]
        print(f"cold start, median of {runs} runs each (load {os.getloadavg()[0]:.2f})")
        print(f"{'command':<24} {'python -c pass':>15} {'command':>9} {'above':>7} {'target':>7}")
        for name, (argv, cwd, edit) in commands.items():
            floor, took = [], []
            for _ in range(runs):
                if edit is not None:  # the edit is undone so every run applies it again
                    (edits / "a.py").write_text("A = 1\n")
                floor.append(timed(baseline, cwd))
                took.append(timed(argv, cwd))
            base, cmd = statistics.median(floor), statistics.median(took)
            mark = "ok" if cmd - base <= TARGET_S else "over"
            print(f"{name:<24} {base:>14.3f}s {cmd:>8.3f}s {cmd - base:>6.3f}s {mark:>7}")


if __name__ == "__main__":
    main()
