"""Benchmark: what the hardened sandbox costs, per command and on a real test suite.

Per command: starting ``true`` as a plain subprocess, under the old bubblewrap command
line (the host's root read-only, every capability kept), under the hardened one
(allow-list, no capabilities, seccomp, user namespace, limits), and through the runner
end to end (pids cgroup, output pump and all), hardened and plain. Per suite: a real
project's test suite (its sdist from PyPI, fetched like ``bench/gate.py`` does), run
plain and sandboxed, alternately, in the same invocation.

    python bench/sandbox.py            # more-itertools' suite, 5 runs each; 50 starts
    python bench/sandbox.py --quick    # toolz' suite once each; 10 starts (CI smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autopack.workspace.confine import bwrap_data, pipes
from autopack.workspace.runner import BwrapSandbox, SubprocessSandbox, make_sandbox
from gate import PROJECTS, QUICK, Project, fetch


def old_argv(cwd: Path) -> list[str]:
    """The sandbox's command line before hardening, for comparison."""
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    return [*argv, "--bind", str(cwd), str(cwd), "--chdir", str(cwd), "/bin/sh", "-c", "true"]


def median_ms(start: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        start()
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def hardened_direct(sandbox: BwrapSandbox, cwd: Path) -> None:
    """The hardened command line alone, with fresh descriptors as the runner makes them."""
    with pipes(bwrap_data()) as fds:
        argv = sandbox.argv("true", cwd, [], fds)
        subprocess.run(argv, pass_fds=tuple(fds.values()), check=True)


def start_rows(sandbox: BwrapSandbox, runs: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        cwd = Path(scratch)
        plain = median_ms(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True), runs)
        fallback = SubprocessSandbox()
        return [
            ("plain subprocess", plain),
            ("old bwrap argv", median_ms(lambda: subprocess.run(old_argv(cwd), check=True), runs)),
            ("hardened bwrap argv", median_ms(lambda: hardened_direct(sandbox, cwd), runs)),
            ("runner, no sandbox", median_ms(lambda: fallback.run("true", cwd), runs)),
            ("runner, hardened", median_ms(lambda: sandbox.run("true", cwd), runs)),
        ]


def suite_rows(sandbox: BwrapSandbox, project: Project, runs: int) -> list[tuple[str, float]]:
    """The suite's wall time, plain and sandboxed, alternating so load drifts hit both."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as scratch:
        root = fetch(project, Path(scratch))
        plain: list[float] = []
        boxed: list[float] = []
        for _ in range(runs):
            began = time.perf_counter()
            done = subprocess.run(
                project.command, shell=True, cwd=root, capture_output=True, check=False
            )
            plain.append(time.perf_counter() - began)
            result = sandbox.run(project.command, root)
            boxed.append(result.duration_s)
            if done.returncode != 0 or result.exit_code != 0:
                raise SystemExit(f"{project.name}: the suite failed\n{result.output[-2000:]}")
    return [
        (f"{project.name} suite, plain", 1000 * statistics.median(plain)),
        (f"{project.name} suite, hardened", 1000 * statistics.median(boxed)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny suite, few runs (CI smoke)")
    args = parser.parse_args()
    starts, project, suites = (10, QUICK, 1) if args.quick else (50, PROJECTS[0], 5)
    sandbox = make_sandbox("bwrap")
    assert isinstance(sandbox, BwrapSandbox)
    rows = start_rows(sandbox, starts)
    base = rows[0][1]
    lines = ["| what                             | median ms | vs plain   |", "|" + "-" * 34 + "|"]
    lines[1] += "-----------|------------|"
    for name, ms in rows:
        lines.append(f"| {name:<32} | {ms:>9.1f} | {ms - base:>+8.1f}ms |")
    plain_suite, boxed_suite = suite_rows(sandbox, project, suites)
    for name, ms in (plain_suite, boxed_suite):
        share = 100 * (ms - plain_suite[1]) / plain_suite[1]
        lines.append(f"| {name:<32} | {ms:>9.1f} | {share:>+9.1f}% |")
    print(
        f"sandbox: bwrap ({'user namespace' if sandbox.user_namespace else 'root'}); "
        f"medians of {starts} starts of `true` and {suites} runs of the suite"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
