"""Framework overhead per phase, next to the floor of the git work a phase cannot avoid.

Overhead = phase wall time - model time - test command time, from the run's own
events and evidence. The floor, measured in the same process on the same repository:
``git worktree add`` + commit + ``git worktree remove``. Prints one table.

Each repository is run twice, telemetry off and on (OTLP/HTTP to a loopback collector in
another process), side by side. Telemetry is exported once, when the run ends, from the
run's events: its cost per phase is that export (read the events and cassette, build
the spans and metrics, send them), timed again 21 times, divided by the phases.

    python bench/overhead.py            # the demo and a generated 5,000-file repository
    python bench/overhead.py --quick    # tiny inputs, for CI smoke runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.config import TelemetrySettings, load_settings
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor
from autopack.engine.runtime import Runtime
from autopack.engine.summary import export_telemetry
from autopack.plan import load_plan, parse_plan_text
from autopack.workspace import git


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def phase_figures(rt: Runtime, run_id: str) -> list[dict[str, float]]:
    """Per landed phase: wall, model and test seconds, and the framework's own time."""
    events = rt.store.events(run_id)
    view = rt.store.view(run_id)
    figures = []
    for phase_id, phase in view.phases.items():
        mine = [e for e in events if e.phase_id == phase_id]
        starts = [e for e in mine if e.type == "phase_started"]
        end = [e for e in mine if e.type == "step_completed" and e.data["step"] == "commit"]
        if not starts or not end:
            continue
        wall = _ts(end[-1].ts) - _ts(starts[0].ts)
        model = sum(e.data["duration_ms"] for e in mine if e.type == "model_called") / 1000
        tests = sum(_test_seconds(rt, run_id, phase_id, n) for n in range(1, phase.attempt + 1))
        figures.append({"wall": wall, "model": model, "tests": tests, "own": wall - model - tests})
    return figures


def _test_seconds(rt: Runtime, run_id: str, phase_id: str, attempt: int) -> float:
    path = rt.run_dir(run_id) / "phases" / phase_id / str(attempt) / "verify.json"
    if not path.exists():
        return 0.0
    return float(json.loads(path.read_text()).get("test_seconds", 0.0))


def git_floor(repo: Path, samples: int) -> float:
    """Median seconds of worktree add + one-file commit + worktree remove."""
    times = []
    for n in range(samples):
        path = repo / ".autopack" / "floor" / str(n)
        start = time.perf_counter()
        git.add_worktree(repo, path, "HEAD")
        (path / "floor.txt").write_text(f"{n}\n")
        git.git(path, "add", "-A")
        git.git(path, "-c", "user.name=f", "-c", "user.email=f@f", "commit", "-qm", "floor")
        git.remove_worktree(repo, path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generated_repo(root: Path, files: int, phases: int) -> tuple[Path, Path, Path]:
    """A repository of ``files`` small modules, a plan editing one module per phase, a script."""
    repo = root / "generated"
    for n in range(files):
        module = repo / "pkg" / f"sub{n // 100:03d}" / f"mod{n:05d}.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(
            f'"""Module {n}."""\n\nVALUE = {n}\n\n\ndef value() -> int:\n    return VALUE\n'
        )
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "generated")
    tiers, replies = [], []
    for p in range(phases):
        target = f"pkg/sub{p:03d}/mod{p * 100:05d}.py"
        tiers.append(
            f"  - id: t{p}\n    phases:\n      - id: p{p}\n        goal: bump {target}\n"
            f"        scope: {{paths: [{target}]}}\n        tests: {{command: 'true'}}\n"
        )
        edit = (
            f"{target}\n<<<<<<< SEARCH\nVALUE = {p * 100}\n=======\n"
            f"VALUE = {p * 100 + 1}\n>>>>>>> REPLACE\n"
        )
        replies.append(
            f"  p{p}:\n    builder:\n      - |\n"
            + "".join(f"        {line}\n" for line in edit.splitlines())
            + "    auditor:\n      - {verdict: approve, summary: ok, issues: []}\n"
        )
    plan = root / "plan.yaml"
    plan.write_text("run: {goal: overhead}\ntiers:\n" + "".join(tiers))
    script = root / "script.yaml"
    script.write_text("version: 1\nreplies:\n" + "".join(replies))
    return repo, plan, script


SINK = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
"""A loopback OTLP/HTTP receiver that takes every export, in its own process as a
collector would be (in this one, its request handling would be counted as ours)."""


@contextmanager
def collector() -> Iterator[str]:
    """Start :data:`SINK`; yields its base URL."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        yield f"http://127.0.0.1:{sink.stdout.readline().strip()}"
    finally:
        sink.kill()
        sink.wait()


def measure(
    repo: Path, plan_path: Path, script: Path, floor_samples: int, endpoint: str | None = None
) -> dict[str, float]:
    """One run of the plan; ``endpoint`` turns telemetry on (sent there at the run's end)."""
    settings = load_settings(repo)
    telemetry = TelemetrySettings(enabled=endpoint is not None, endpoint=endpoint or "")
    settings = settings.model_copy(update={"telemetry": telemetry})
    rt = Runtime.open(repo, settings=settings, model_override=f"scripted:{script}")
    plan = load_plan(plan_path) if plan_path.suffix else parse_plan_text(plan_path.read_text())
    run_id = create_run(rt, plan, plan_source=str(plan_path))
    LocalExecutor(rt).execute(run_id)
    figures = phase_figures(rt, run_id)
    export = 0.0
    if endpoint is not None:
        record = json.loads((rt.run_dir(run_id) / "telemetry.json").read_text())
        assert record["ok"], record  # the run's own export reached the collector
        export = statistics.median(_timed_export(rt, run_id) for _ in range(EXPORT_SAMPLES))
    floor = git_floor(repo, floor_samples)
    own = statistics.median(f["own"] for f in figures)
    return {
        "phases": len(figures),
        "wall": statistics.median(f["wall"] for f in figures),
        "model": statistics.median(f["model"] for f in figures),
        "tests": statistics.median(f["tests"] for f in figures),
        "own": own,
        "floor": floor,
        "ratio": own / floor if floor else float("nan"),
        "export": export,
        "spans": 0 if endpoint is None else record["spans"],
    }


EXPORT_SAMPLES = 21
"""Repeats of the export (about 15 ms each): enough for a steady median on a busy machine."""


def _timed_export(rt: Runtime, run_id: str) -> float:
    start = time.perf_counter()
    export_telemetry(rt, run_id)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs (CI smoke)")
    args = parser.parse_args(argv)
    files, phases, samples = (200, 2, 3) if args.quick else (5000, 6, 7)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="autopack-bench-") as tmp, collector() as url:
        root = Path(tmp)
        _, demo_plan, demo_script = demo_files()
        demo_repo = prepare_demo_repo(root / "demo")
        repo, plan, script = generated_repo(root, files, phases)
        # An untimed run first: the off and on columns then both start warm (imports,
        # caches), and differ only by telemetry.
        measure(prepare_demo_repo(root / "warm-up"), demo_plan, demo_script, 1)
        for name, where in (
            ("demo", (demo_repo, demo_plan, demo_script)),
            (f"generated {files} files", (repo, plan, script)),
        ):
            off = measure(*where, samples)
            on = measure(*where, samples, endpoint=url)
            rows.append((name, off, on))
    header = (
        "repository",
        "phases",
        "wall ms",
        "model ms",
        "tests ms",
        "own ms off",
        "own ms on",
        "floor ms",
        "own/floor",
        "spans",
        "export ms",
        "telemetry ms/phase",
    )
    print("Framework overhead per phase (medians; own = wall - model - tests), telemetry off | on")
    print(" | ".join(header))
    for name, off, on in rows:
        print(
            f"{name} | {off['phases']:.0f} | {off['wall'] * 1000:.0f} | "
            f"{off['model'] * 1000:.0f} | "
            f"{off['tests'] * 1000:.0f} | {off['own'] * 1000:.0f} | {on['own'] * 1000:.0f} | "
            f"{off['floor'] * 1000:.0f} | {off['ratio']:.2f} | {on['spans']:.0f} | "
            f"{on['export'] * 1000:.1f} | {on['export'] * 1000 / on['phases']:.1f}"
        )
    print("targets: own/floor <= 2.0 and own <= 150 ms on the 5,000-file repository;")
    print("telemetry <= 5 ms per phase (exported once, at the run's end, over OTLP/HTTP)")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main(sys.argv[1:])
