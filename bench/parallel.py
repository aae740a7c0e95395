"""Wall time of a run of independent phases at max_parallel 1, 2 and 4, in one invocation.

Each phase waits on scripted model latency (the Builder and the Auditor) and runs a
test command that sleeps: waiting, not work, so phases overlap even on 2 cores.

    python bench/parallel.py            # 8 phases, 2 s per model reply, 1 s tests
    python bench/parallel.py --quick    # 4 phases, 0.2 s replies, 0.1 s tests (CI smoke)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.plan import parse_plan_text
from autopack.states import RunState
from autopack.workspace import git


def build_inputs(root: Path, phases: int, latency: float, test_s: float) -> tuple[str, Path]:
    names = [f"p{n}" for n in range(1, phases + 1)]
    lines = "".join(
        f"      - {{id: {n}, goal: bump {n}, scope: {{paths: [{n}.py]}}, "
        f"tests: {{command: 'sleep {test_s:g}'}}}}\n"
        for n in names
    )
    plan = f"run: {{goal: parallel bench}}\ntiers:\n  - id: only\n    phases:\n{lines}"
    script = f"version: 1\nlatency_seconds: {latency:g}\nreplies:\n"
    for n in names:
        edit = f"{n}.py\n<<<<<<< SEARCH\nV = 0\n=======\nV = 1\n>>>>>>> REPLACE\n"
        script += f"  {n}:\n    builder:\n      - |\n"
        script += "".join(f"        {line}\n" for line in edit.splitlines())
        script += "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
    script_path = root / "script.yaml"
    script_path.write_text(script)
    return plan, script_path


def one_run(root: Path, plan: str, script: Path, phases: int, parallel: int) -> float:
    repo = root / f"repo-{parallel}"
    repo.mkdir()
    for n in range(1, phases + 1):
        (repo / f"p{n}.py").write_text("V = 0\n")
    (repo / "autopack.toml").write_text(f"max_parallel = {parallel}\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    rt = Runtime.open(repo, model_override=f"scripted:{script}")
    run_id = create_run(rt, parse_plan_text(plan), plan_source="bench")
    start = time.perf_counter()
    state = LocalExecutor(rt, poll_s=0.05).execute(run_id)
    elapsed = time.perf_counter() - start
    if state is not RunState.SUCCEEDED:
        raise SystemExit(
            f"max_parallel {parallel}: run {state.value}: {rt.store.view(run_id).reason}"
        )
    return elapsed


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs (CI smoke)")
    args = parser.parse_args(argv)
    phases, latency, test_s, levels = (
        (4, 0.2, 0.1, (1, 2)) if args.quick else (8, 2.0, 1.0, (1, 2, 4))
    )
    with tempfile.TemporaryDirectory(prefix="autopack-parallel-") as tmp:
        root = Path(tmp)
        plan, script = build_inputs(root, phases, latency, test_s)
        times = {level: one_run(root, plan, script, phases, level) for level in levels}
    print(f"{phases} independent phases, {latency:g} s per model reply, {test_s:g} s test command")
    print("max_parallel | wall s | speedup | share of serial")
    for level, seconds in times.items():
        print(f"{level} | {seconds:.1f} | {times[1] / seconds:.2f}x | {seconds / times[1]:.0%}")
    print("target: max_parallel 4 takes <= 40% of the serial wall time")


if __name__ == "__main__":
    main(sys.argv[1:])
