"""Does ``autopack gaps`` find every injected gap, and only those, and is it fast?

Real projects come from their PyPI source distributions (tabulate, more-itertools,
attrs: small, pure Python, with their test suites), downloaded once with
``pip download --no-deps --no-binary :all: NAME==VERSION`` into ``bench/.cache/sdists``
(``--cache`` moves it). Each is committed to a fresh git repository as it is (plus a
``ruff.toml`` selecting pyflakes' rules when the project configures no ruff, so lint gaps
can exist) and scanned: those are the project's own gaps, the baseline. Then a script
injects labelled gaps and commits them, and the project is scanned again; a gap of the
second scan that the first did not have is *reported*. Per gap type:

    recall     labelled gaps reported / labelled gaps
    precision  reported gaps that match a label / reported gaps

The injections, for every project (``T`` its test folder, ``S`` a module the tests
import, ``P`` its package folder):

    test-fail   three tests in T that fail: an assert, a raise, one case of a parametrized test
    test-error  three tests whose fixture fails: in setup, in teardown, a missing fixture
    skipped     skip marker, skipif marker, pytest.skip() in the body
    xfailed     xfail marker, pytest.xfail() in the body, xfail(raises=...)
    criterion   a missing file, a test ID that does not exist, a command that exits 1
    todo        "# TODO: ...", "# FIXME(owner) ...", "<!-- TODO ... -->" in a doc
    lint        two new modules in P with a pyflakes error each (unused import, undefined name)
    debug       a docs/DEBUG_LOG.md entry whose Fix is "none"
    untested    a public function appended to S that no test runs
    readme      three commands appended to the root README (Markdown or reST) that exit
                non-zero: a ``$ `` line of a console block, a plain line of a sh block,
                and a command after ``cd docs`` that needs a file there is not

The injected code is otherwise clean under each project's own lint rules (attrs selects
nearly all of ruff's), so a lint gap is reported only where one was meant. And there are
decoys that must not be reported: a test that passes, a passing criterion test and
command, "TODO" as a word in prose and in a string, a TODO in an out-of-scope folder, in a
binary file and in an uncommitted file, a debug entry with a fix; in the README a command
that passes, one run in ``cd docs`` that passes, ``pip install``, ``curl`` and
``git clone`` lines (skipped), a placeholder, console output that would fail as a command,
and a Python block.

The second table times the text half of the scan on a 5,000-file repository (the three
projects' files copied until there are 5,000) next to ``git ls-files`` on it, and the
tools half (exporting HEAD, ruff over every file) separately; test execution is reported
per project in the first table's notes.

    python bench/gaps.py            # three projects, 5,000 files
    python bench/gaps.py --quick    # tabulate only, 1,000 files (CI smoke)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autopack.autopilot.gaps import KINDS, Gap, Scan, configures, scan
from autopack.autopilot.intention import Intention
from autopack.autopilot.readme import readme_path
from autopack.config import Settings

HERE = Path(__file__).resolve().parent
MECHANICAL = KINDS
"""Every type the scan reports is found mechanically (no model): the targets apply to all."""


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    tests: str
    """The test folder."""
    module: str
    """An importable module of the project (the injected tests import it)."""
    source: str
    """A module the test suite imports; gaps are appended to it."""
    package: str
    """The package folder; new modules go there."""
    command: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


PROJECTS = (
    Project(
        "tabulate", "0.9.0", "test", "tabulate", "tabulate/__init__.py", "tabulate",
        "python -m pytest test",
    ),
    Project(
        "more-itertools", "10.5.0", "tests", "more_itertools", "more_itertools/more.py",
        "more_itertools", "python -m pytest tests",
    ),
    Project(
        "attrs", "24.2.0", "tests", "attr", "src/attr/_make.py", "src/attr",
        "python -m pytest tests -o pythonpath=src -p no:xdist",
    ),
)  # fmt: skip
OUT_OF_SCOPE = "injected_vendor"


@dataclass(frozen=True)
class Label:
    """An injected gap: a reported gap matches it by kind, path and (when given) ref."""

    kind: str
    path: str
    ref: str | None = None

    def matches(self, gap: Gap) -> bool:
        return (
            gap.kind == self.kind
            and gap.path == self.path
            and (self.ref is None or gap.ref == self.ref)
        )


# -- the projects -----------------------------------------------------------------------


def sdist(project: Project, cache: Path) -> Path:
    """The project's source distribution, downloaded once."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{project.name.replace('-', '?')}-{project.version}.tar.gz"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
             ":all:", project.spec, "-d", str(cache)],
            check=True,
        )  # fmt: skip
        found = sorted(cache.glob(f"{project.name.replace('-', '?')}-{project.version}.tar.gz"))
    return found[0]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode()


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-q", "-m", message)


def pristine(project: Project, archive: Path, into: Path) -> Path:
    """The sdist, unpacked and committed as the repository's first commit."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    repo = into / f"{project.name}-{project.version}"
    git(repo, "init", "-q", "-b", "main")
    if not configures(repo, "ruff"):
        (repo / "ruff.toml").write_text('[lint]\nselect = ["F"]\n')
    commit(repo, "pristine")
    return repo


def write(repo: Path, rel: str, text: str, *, append: bool = False) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        text = path.read_text(encoding="utf-8") + text
    path.write_text(text, encoding="utf-8")


# -- the injections ---------------------------------------------------------------------

INJECTED_TESTS = """# SPDX-License-Identifier: MIT
# Copyright 2026 the gaps bench
import pytest

import {module}


def test_injected_passes():
    assert {module}.__name__ == "{module}"


def test_injected_assert_fails():
    assert {module}.__name__ == "something else"


def test_injected_raise_fails():
    raise ValueError("injected")


@pytest.mark.parametrize("n", [1, 2])
def test_injected_param_fails(n):
    assert n == 1


@pytest.fixture
def broken_setup():
    raise RuntimeError("injected setup error")


@pytest.fixture
def broken_teardown():
    yield 1
    raise RuntimeError("injected teardown error")


def test_injected_setup_errors(broken_setup):
    pass


def test_injected_teardown_errors(broken_teardown):
    pass


def test_injected_missing_fixture(no_such_fixture):
    pass


@pytest.mark.skip(reason="injected skip")
def test_injected_skip_marker():
    pass


@pytest.mark.skipif(True, reason="injected skipif")
def test_injected_skipif_marker():
    pass


def test_injected_skip_call():
    pytest.skip("injected skip call")


@pytest.mark.xfail(reason="injected xfail")
def test_injected_xfail_marker():
    raise AssertionError("injected")


def test_injected_xfail_call():
    pytest.xfail("injected xfail call")


@pytest.mark.xfail(raises=KeyError, reason="injected xfail raises")
def test_injected_xfail_raises():
    raise KeyError("x")
"""
DEBUG_LOG = """# Debug log

## DBG-001 | 2026-12-01 | Injected: the table loses a column
- Symptom: a column is missing.
- Signature: -
- Root cause: unknown.
- Fix: none
- Verified: -

## DBG-002 | 2026-12-02 | Injected decoy: fixed
- Symptom: slow.
- Signature: -
- Root cause: a loop.
- Fix: Cached the widths.
- Verified: timed.
"""


README_FAILING = (
    "python -c 'raise SystemExit(2)'",
    "python -m injected_no_such_module",
    "test -f injected-missing.txt",
)
README_MD = """

## Injected: trying it out

```console
$ pip install {name}
$ python -c 'print("injected passes")'
injected passes
false
$ {failing[0]}
```

```sh
# a comment, then a plain command
{failing[1]}
curl https://example.org/injected
{name}-cli <file>
```

```bash
cd docs
test -f injected_notes.md
{failing[2]}
```

```python
raise SystemExit("injected: not a shell block")
```
"""
README_RST = """

Injected: trying it out
-----------------------

.. code-block:: console

    $ pip install {name}
    $ python -c 'print("injected passes")'
    injected passes
    false
    $ {failing[0]}

.. code-block:: sh

    # a comment, then a plain command
    {failing[1]}
    git clone https://example.org/injected.git
    {name}-cli <file>

.. code-block:: bash

    cd docs
    test -f injected_notes.md
    {failing[2]}

.. code-block:: python

    raise SystemExit("injected: not a shell block")
"""


def inject_readme(project: Project, repo: Path) -> list[Label]:
    """Append the README commands (see the module's docstring) to the root README."""
    name = readme_path({p.name for p in repo.iterdir()})
    assert name is not None, f"{project.name} has no root README"
    template = README_RST if name.endswith(".rst") else README_MD
    write(repo, name, template.format(name=project.name, failing=README_FAILING), append=True)
    return [Label("readme", name, command) for command in README_FAILING]


def inject(project: Project, repo: Path) -> tuple[list[Label], Intention]:
    """Commit the labelled gaps and the decoys; the intention whose criteria they break."""
    tests_file = f"{project.tests}/test_zz_injected.py"
    write(repo, tests_file, INJECTED_TESTS.format(module=project.module))
    test_labels = {
        "test-fail": ["assert_fails", "raise_fails", "param_fails[2]"],
        "test-error": ["setup_errors", "teardown_errors", "missing_fixture"],
        "skipped": ["skip_marker", "skipif_marker", "skip_call"],
        "xfailed": ["xfail_marker", "xfail_call", "xfail_raises"],
    }
    labels = [
        Label(kind, tests_file, f"{tests_file}::test_injected_{name}")
        for kind, names in test_labels.items()
        for name in names
    ]
    appended = "\n\ndef injected_untested_function():\n    return 42\n"
    appended += "\n# TODO: injected note in code\n# FIXME(bench) injected fixme\n"
    write(repo, project.source, appended, append=True)
    labels += [
        Label("untested", project.source, "injected_untested_function"),
        Label("todo", project.source, "TODO:injected note in code"),
        Label("todo", project.source, "FIXME:injected fixme"),
    ]
    notes = "# Notes\n\nOur TODO list lives in the tracker.\n\n<!-- TODO: injected doc note -->\n"
    write(repo, "docs/injected_notes.md", notes)
    labels.append(Label("todo", "docs/injected_notes.md", "TODO:injected doc note"))
    write(repo, f"{project.package}/injected_lint_a.py", "import os\n")
    write(repo, f"{project.package}/injected_lint_b.py", "VALUE = undefined_name\n")
    labels += [
        Label("lint", f"{project.package}/injected_lint_a.py"),
        Label("lint", f"{project.package}/injected_lint_b.py"),
    ]
    write(repo, "docs/DEBUG_LOG.md", DEBUG_LOG)
    labels.append(Label("debug", "docs/DEBUG_LOG.md", "DBG-001"))
    labels += inject_readme(project, repo)
    # decoys: none of these is a gap
    write(repo, f"{OUT_OF_SCOPE}/lib.py", "# TODO: out of scope\n")
    (repo / "docs/injected_logo.png").write_bytes(b"\x89PNG\0\0# TODO: binary\n")
    commit(repo, "inject gaps")
    write(repo, "uncommitted.py", "# TODO: not committed\n")
    intention = Intention.model_validate(
        {
            "north_star": f"{project.name} as its users expect it",
            "out_of_scope": [f"{OUT_OF_SCOPE}/**"],
            "success_criteria": {
                "files": ["docs/INJECTED_GUIDE.md", "docs/injected_notes.md"],
                "tests": [
                    f"{tests_file}::test_injected_missing",
                    f"{tests_file}::test_injected_passes",
                ],
                "commands": ["python -c 'raise SystemExit(1)'", "python -c 'pass'"],
            },
        }
    )  # fmt: skip
    labels += [
        Label("criterion", "docs/INJECTED_GUIDE.md"),
        Label("criterion", tests_file, f"test:{tests_file}::test_injected_missing"),
        Label("criterion", "", "command:python -c 'raise SystemExit(1)'"),
    ]
    return labels, intention


# -- measuring --------------------------------------------------------------------------


@dataclass
class Outcome:
    project: str
    labels: list[Label]
    reported: list[Gap]
    baseline: Scan
    injected: Scan


def measure(project: Project, cache: Path, work: Path) -> Outcome:
    repo = pristine(project, sdist(project, cache), work)
    settings = Settings(test_command=project.command, sandbox="auto")
    plain = Intention(north_star=project.name, out_of_scope=[f"{OUT_OF_SCOPE}/**"])
    before = scan(repo, plain, settings)
    labels, intention = inject(project, repo)
    after = scan(repo, intention, settings)
    known = {gap.key() for gap in before.gaps}
    reported = [gap for gap in after.gaps if gap.key() not in known]
    return Outcome(project.spec, labels, reported, before, after)


def accuracy_table(outcomes: list[Outcome]) -> list[str]:
    rows = ["type       | labels | found | recall | reported | match | precision | own"]
    rows.append("-" * len(rows[0]))
    for kind in KINDS:
        labels = [(o, lab) for o in outcomes for lab in o.labels if lab.kind == kind]
        reported = [(o, g) for o in outcomes for g in o.reported if g.kind == kind]
        found = sum(1 for o, lab in labels if any(lab.matches(g) for g in o.reported))
        matching = sum(1 for o, g in reported if any(lab.matches(g) for lab in o.labels))
        own = sum(o.baseline.counts().get(kind, 0) for o in outcomes)
        if not labels and not reported:
            continue
        recall = f"{found / len(labels):.2f}" if labels else "-"
        precision = f"{matching / len(reported):.2f}" if reported else "-"
        rows.append(
            f"{kind:<10} | {len(labels):>6} | {found:>5} | {recall:>6} | {len(reported):>8} "
            f"| {matching:>5} | {precision:>9} | {own:>3}"
        )
    return rows


def misses(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        for lab in o.labels:
            if not any(lab.matches(g) for g in o.reported):
                lines.append(f"  missed  {o.project}: {lab}")
        for gap in o.reported:
            if not any(lab.matches(gap) for lab in o.labels):
                lines.append(f"  extra   {o.project}: {gap.kind} {gap.where()} {gap.message}")
    return lines


def big_repository(sources: list[Path], into: Path, files: int) -> Path:
    """``files`` tracked files: the projects' own files, copied folder by folder."""
    into.mkdir()
    git(into, "init", "-q", "-b", "main")
    listed = [(src, rel) for src in sources for rel in git(src, "ls-files").splitlines()]
    for n in range(files):
        src, rel = listed[n % len(listed)]
        target = into / f"copy{n // len(listed)}" / src.name / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
    (into / "ruff.toml").write_text('[lint]\nselect = ["F"]\n')
    commit(into, "big")
    return into


def timed(action: object, repeats: int) -> float:
    """The median seconds of ``repeats`` calls."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def speed_table(repo: Path, repeats: int) -> list[str]:
    files = len(git(repo, "ls-files").splitlines())
    anything = Intention(north_star="speed")
    settings = Settings(sandbox="auto")  # no test command is detected at its top: no tests
    ls_files = timed(lambda: git(repo, "ls-files", "-z"), repeats)
    text = timed(lambda: scan(repo, anything, settings, run=False), repeats)
    full = scan(repo, anything, settings)
    rows = [f"repository of {files:,} files               | seconds"]
    rows.append("-" * len(rows[0]))
    rows.append(f"git ls-files -z (baseline)                  | {ls_files:7.3f}")
    rows.append(f"autopack gaps --no-run (text half)          | {text:7.3f}")
    rows.append(f"export HEAD (tools half)                    | {full.timings['export']:7.3f}")
    rows.append(f"ruff over every file (tools half)           | {full.timings['ruff']:7.3f}")
    rows.append(f"gaps found: {len(full.gaps):,} ({full.counts().get('todo', 0):,} todo)")
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tabulate only, 1,000 files")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache" / "sdists")
    args = parser.parse_args(argv)
    projects = PROJECTS[:1] if args.quick else PROJECTS
    files, repeats = (1_000, 1) if args.quick else (5_000, 3)
    with tempfile.TemporaryDirectory(prefix="autopack-bench-gaps-") as tmp:
        work = Path(tmp)
        outcomes = [measure(project, args.cache, work) for project in projects]
        print(f"injected gaps in {', '.join(o.project for o in outcomes)}")
        print("\n".join(accuracy_table(outcomes)))
        print("\n".join(misses(outcomes)) or "  every label found, nothing else reported")
        print("own = the project's own gaps at the pristine commit (not scored)")
        for o in outcomes:
            seconds = o.baseline.timings.get("tests", 0.0)
            print(f"  {o.project}: test run {seconds:.1f} s (excluded from the speed table)")
        print("targets: recall 1.00, precision >= 0.90 on every type\n")
        sources = [work / f"{p.name}-{p.version}" for p in projects]
        print("\n".join(speed_table(big_repository(sources, work / "big", files), repeats)))
        print("target: the text half under 5 s at 5,000 files")


if __name__ == "__main__":
    main(sys.argv[1:])
