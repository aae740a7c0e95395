"""Benchmark: does the Quality Gate pass good fixes and stop bad ones on real projects?

For each real library (its sdist, with its own test suite, fetched with ``pip download``
into a cache dir at bench time), tasks are made by mutation: a mutation some existing
test catches is the bug (its caught tests become ``fail_to_pass``), the original code
is the good fix, and another mutation, or the good fix plus an unrelated breakage, are
bad fixes. The gate judges every candidate; bad fixes (retry attempts) are verified
twice, with impact selection and with the full suite only, to compare test time (every
test command the attempt waited for, flaky reruns included).

    python bench/gate.py            # more-itertools and python-dateutil (suites of 5-15 s)
    python bench/gate.py --quick    # toolz, two tasks (CI smoke run)
    python bench/gate.py --project python-dateutil --tasks 2

python-dateutil's suite needs ``freezegun`` installed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from autopack.gate import GateEvidence, decide, load_policy, score_risk
from autopack.verify import MemoryBaselineCache, VerifySettings, run_checks, verify_attempt
from autopack.verify.results import PASSED, run_tests
from autopack.workspace.runner import Sandbox, make_sandbox

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autopack-bench"
SWAPS = [(" == ", " != "), (" != ", " == "), (" < ", " >= "), (" > ", " <= "), (" + ", " - ")]
SWAPS += [("return True", "return False"), ("return False", "return True")]


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    sources: tuple[str, ...]  # files to mutate, relative to the sdist root
    tests: str  # test path passed to pytest
    pythonpath: str = "."  # where the package is imported from (``src`` for a src layout)
    options: str = ""  # pytest options the suite needs without its usual plugins

    @property
    def command(self) -> str:
        return " ".join(["python -m pytest -q", self.options, self.tests]).replace("  ", " ")

    @property
    def env(self) -> dict[str, str]:
        # The suites need no third-party plugin; autoloading every installed one per run
        # would be overhead charged to each narrowed run.
        return {"PYTHONPATH": self.pythonpath, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


QUICK = Project(
    "toolz",
    "0.12.1",
    ("toolz/itertoolz.py", "toolz/dicttoolz.py", "toolz/functoolz.py"),
    "toolz/tests",
)
PROJECTS = [
    Project(
        "more-itertools", "10.5.0", ("more_itertools/more.py", "more_itertools/recipes.py"), "tests"
    ),
    Project(
        "python-dateutil",
        "2.9.0.post0",
        ("src/dateutil/relativedelta.py", "src/dateutil/rrule.py", "src/dateutil/easter.py"),
        "tests",
        pythonpath="src",
        # its conftest marks tests with pytest-cov's no_cover, unknown without that plugin
        options="-W ignore::pytest.PytestUnknownMarkWarning",
    ),
]


@dataclass
class Tally:
    good: int = 0
    good_passed: int = 0
    bad: int = 0
    bad_stopped: int = 0
    flaky: int = 0
    selected_s: list[float] = field(default_factory=list)
    full_s: list[float] = field(default_factory=list)
    selected_tests: list[int] = field(default_factory=list)
    suite_tests: int = 0


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def fetch(project: Project, into: Path) -> Path:
    """The project's sdist, downloaded once into the cache, unpacked into ``into``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = list(CACHE.glob(f"{project.name}-{project.version}.tar.gz"))
    if not found:
        spec = f"{project.name}=={project.version}"
        subprocess.run(
            ["pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(CACHE), spec],
            check=True,
        )
        found = list(CACHE.glob(f"{project.name}-{project.version}.tar.gz"))
    with tarfile.open(found[0]) as archive:
        archive.extractall(into, filter="data")
    return into / f"{project.name}-{project.version}"


def mutations(root: Path, project: Project, rng: random.Random) -> list[tuple[str, int, str]]:
    """(file, line index, mutated line) for every simple operator swap, shuffled."""
    found = []
    for rel in project.sources:
        for index, line in enumerate((root / rel).read_text().splitlines()):
            stripped = line.strip()
            if stripped.startswith(("#", '"', "'")):
                continue
            for old, new in SWAPS:
                if old in line:
                    found.append((rel, index, line.replace(old, new, 1)))
    rng.shuffle(found)
    return found


def apply(root: Path, mutation: tuple[str, int, str]) -> None:
    rel, index, new = mutation
    lines = (root / rel).read_text().splitlines(keepends=True)
    lines[index] = new + "\n"
    (root / rel).write_text("".join(lines))


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD^{tree}")


@contextmanager
def worktree(repo: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-wt-") as scratch:
        target = Path(scratch) / "wt"
        git(repo, "worktree", "add", "-q", "--detach", str(target), "HEAD")
        try:
            yield target
        finally:
            git(repo, "worktree", "remove", "--force", str(target))


def judge(
    repo: Path,
    tree: str,
    candidate: list[tuple[str, int, str]],
    f2p: list[str],
    project: Project,
    sandbox: Sandbox,
    cache: MemoryBaselineCache,
    *,
    select: bool,
) -> tuple[str, float, int, int]:
    """Gate decision, test seconds spent, flaky tests seen, and tests selected (0: none)."""
    with worktree(repo) as wt:
        for mutation in candidate:
            apply(wt, mutation)
        changed = git(wt, "diff", "--name-only").split()
        diff = git(wt, "diff")
        settings = VerifySettings(env=project.env, impact_selection=select, timeout_s=600)
        verified = verify_attempt(
            wt,
            base_tree=tree,
            command=project.command,
            fail_to_pass=f2p,
            changed_files=changed,
            sandbox=sandbox,
            cache=cache,
            base_checkout=lambda: worktree(repo),
            settings=settings,
        )
        policy = load_policy()
        evidence = GateEvidence(
            apply_ok=True,
            edits_report={},
            verify=verified,
            checks=run_checks(
                wt, changed_files=changed, deliverables=[], edits_report={}, ruff=False
            ),
            risk=score_risk(diff, changed, protected=policy.protected_paths),
            audit=None,
        )
        decision = decide(evidence, policy).decision
    selection = verified.selection
    seconds, count = selection["test_time_s"], selection.get("selected_count", 0)
    return decision, seconds, len(verified.delta.flaky), count


def bench_project(project: Project, tasks: int, work: Path, sandbox: Sandbox) -> Tally:
    rng = random.Random(0)
    root = fetch(project, work)
    git(root, "init", "-q")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "user.name", "bench")
    commit_all(root, "original")
    command, env = project.command, project.env
    original = run_tests(sandbox, root, command, env=env, timeout_s=600)
    passing = {t for t, o in original.outcomes.items() if o == PASSED}
    tally, cache = Tally(suite_tests=len(original.outcomes)), MemoryBaselineCache()
    candidates = mutations(root, project, rng)
    caught: list[tuple[tuple[str, int, str], list[str]]] = []
    for mutation in candidates:
        if len(caught) >= tasks + 1:
            break
        with worktree(root) as wt:
            apply(wt, mutation)
            run = run_tests(sandbox, wt, command, env=env, timeout_s=600)
        broken = sorted(t for t in passing if run.outcomes.get(t) != PASSED)
        if broken and not run.collection_errors:
            caught.append((mutation, broken))
    for index, (bug, f2p) in enumerate(caught[:tasks]):
        other = caught[(index + 1) % len(caught)][0]
        if other[:2] == bug[:2]:
            continue
        apply(root, bug)
        tree = commit_all(root, f"bug {index}")
        good = [(bug[0], bug[1], _original_line(root, bug))]
        decision, _, flaky, _ = judge(root, tree, good, f2p, project, sandbox, cache, select=True)
        tally.good += 1
        tally.good_passed += decision == "PASS"
        tally.flaky += flaky
        for bad in ([other], [*good, other]):
            decision, seconds, flaky, count = judge(
                root, tree, bad, f2p, project, sandbox, cache, select=True
            )
            _, full, _, _ = judge(root, tree, bad, f2p, project, sandbox, cache, select=False)
            tally.selected_tests.append(count)
            tally.bad += 1
            tally.bad_stopped += decision != "PASS"
            tally.flaky += flaky
            tally.selected_s.append(seconds)
            tally.full_s.append(full)
        git(root, "checkout", "-q", "HEAD~1", "--", ".")
        commit_all(root, f"undo bug {index}")
    return tally


def _original_line(root: Path, bug: tuple[str, int, str]) -> str:
    return git(root, "show", f"HEAD~1:{bug[0]}").splitlines()[bug[1]]


def row(name: str, tally: Tally) -> str:
    sel = statistics.median(tally.selected_s) if tally.selected_s else 0.0
    full = statistics.median(tally.full_s) if tally.full_s else 0.0
    ratio = f"{100 * sel / full:.0f}%" if full else "-"
    good, bad = f"{tally.good_passed}/{tally.good}", f"{tally.bad_stopped}/{tally.bad}"
    picked = statistics.median(tally.selected_tests) if tally.selected_tests else 0
    tests = f"{picked:.0f}/{tally.suite_tests}" if tally.suite_tests else f"{picked:.0f}"
    return (
        f"| {name:<14} | {good:>11} | {bad:>11} | {tally.good - tally.good_passed:>12} "
        f"| {tally.flaky:>5} | {tests:>10} | {sel:>11.2f} | {full:>9.2f} | {ratio:>8} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny project, two tasks")
    parser.add_argument("--tasks", type=int, default=4, help="tasks per project")
    parser.add_argument("--project", choices=[p.name for p in PROJECTS], help="only this one")
    args = parser.parse_args()
    projects, tasks = ([QUICK], 2) if args.quick else (PROJECTS, args.tasks)
    projects = [p for p in projects if args.project in (None, p.name)]
    sandbox = make_sandbox()
    total = Tally()
    lines = [
        "| project        | good passed | bad stopped | false blocks | flaky | sel tests  "
        "| retry sel s | full s    | sel/full |",
        "|----------------|-------------|-------------|--------------|-------|------------"
        "|-------------|-----------|----------|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as scratch:
        for project in projects:
            tally = bench_project(project, tasks, Path(scratch) / project.name, sandbox)
            lines.append(row(project.name, tally))
            for name in ("good", "good_passed", "bad", "bad_stopped", "flaky"):
                setattr(total, name, getattr(total, name) + getattr(tally, name))
            total.selected_s += tally.selected_s
            total.full_s += tally.full_s
            total.selected_tests += tally.selected_tests
    lines.append(row("overall", total))
    print(
        f"sandbox: {sandbox.name}; per retry attempt (bad fixes), medians: tests selected of "
        "the suite, test seconds (runs + flaky reruns) with selection and with the full suite"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
