"""Hidden acceptance tests: tests the plan's author held back, run by the gate alone.

Tests the Builder can read can be gamed without breaking one of them: a change that
answers the visible test's input with its expected output (``if x == ...: return ...``)
passes every visible test. A plan can therefore name test files the Builder never sees
(``tests.hidden``): kept outside its worktree (a folder outside the repository, or a
file in it that was never committed) and outside its sandbox. After the Builder has
finished, they are copied into a throwaway copy of the attempt's tree, never into the
Builder's worktree, and run there; every test in them must pass.

What comes back to the Builder (and into the evidence) is the names of the failing
tests without their parameters, never the files' content, their assertion messages or
the run's output: those would hand the special-caser the inputs it needs.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autopack.plan import HiddenTests
from autopack.verify.grading import grading_tree
from autopack.verify.results import PASSED, is_pytest, run_tests
from autopack.workspace import git
from autopack.workspace.runner import Sandbox

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class HiddenTestsUnusable(RuntimeError):
    """The hidden tests cannot be held back (the Builder could read them) or cannot run."""


@dataclass(frozen=True)
class HiddenFile:
    """One hidden test file or folder: where it is kept, and where the gate puts it."""

    source: Path
    target: str


@dataclass
class HiddenRun:
    """The hidden tests' outcome, in the only terms that may reach the Builder."""

    files: list[dict[str, str]]
    """Each target with the sha256 of its content: what was run, not what it says."""
    tests: int = 0
    failing: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(entries: Sequence[HiddenTests], plan_source: str, repo: Path) -> list[HiddenFile]:
    """Absolute sources (relative ones are relative to the plan file) and their targets:
    the given one, else the source's place in the repository, else its name at the top."""
    files = []
    for entry in entries:
        source = Path(entry.source)
        if not source.is_absolute():
            source = Path(plan_source).parent / source
        source = source.resolve()
        target = entry.target
        if target is None:
            inside = source.is_relative_to(repo.resolve())
            target = source.relative_to(repo.resolve()).as_posix() if inside else source.name
        files.append(HiddenFile(source, target.rstrip("/")))
    return files


def check_hidden(
    files: Sequence[HiddenFile],
    *,
    repo: Path,
    base_commit: str,
    command: str | None,
    sandbox: Sandbox,
    worktree: Path,
) -> None:
    """Raise :class:`HiddenTestsUnusable` unless every hidden file exists, is absent from
    the base commit (else the Builder's worktree holds it) and is out of reach of the
    Builder's commands, probed with the very sandbox and folder they run in."""
    if command is None or not is_pytest(command):
        raise HiddenTestsUnusable(
            f"hidden acceptance tests run with pytest, and the phase's test command is "
            f"{command!r}: set a pytest test command (test_command or tests.command)"
        )
    for hidden in files:
        if not hidden.source.exists():
            raise HiddenTestsUnusable(f"the hidden test source {hidden.source} does not exist")
        if hidden.source.is_relative_to(repo.resolve()):
            relative = hidden.source.relative_to(repo.resolve()).as_posix()
            if git.ls_files(repo, base_commit, [relative]):
                raise HiddenTestsUnusable(
                    f"the hidden test source {relative} is committed in the base commit, so "
                    "the Builder's worktree would hold it: untrack it (git rm --cached, and "
                    "list it in .git/info/exclude) and commit, or move it out of the "
                    "repository; then start a new run"
                )
    quoted = " ".join(shlex.quote(str(hidden.source)) for hidden in files)
    probe = f'for p in {quoted}; do [ -e "$p" ] && echo "$p"; done; true'
    seen = sandbox.run(probe, worktree, timeout_s=30).output.split()
    if seen:
        raise HiddenTestsUnusable(
            f"the Builder's commands can read the hidden tests ({', '.join(seen)}; "
            f"sandbox: {sandbox.name}): keep them where its sandbox does not reach (a folder "
            "outside the repository that is not a system folder), and run with bubblewrap"
        )


def run_hidden(
    files: Sequence[HiddenFile],
    *,
    repo: Path,
    tree: str,
    command: str,
    sandbox: Sandbox,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    base_tree: str,
    changed_files: Sequence[str],
) -> HiddenRun:
    """Run the hidden tests in a copy of ``tree`` (the attempt's), made for this run only,
    graded as the visible ones are: with the base's test configuration (a ``conftest.py``
    the Builder added cannot decide the hidden tests' outcomes either)."""
    with tempfile.TemporaryDirectory(prefix="autopack-hidden-") as scratch:
        copy = Path(scratch) / "tree"
        _export_tree(repo, tree, copy)
        placed = [_place(hidden, copy) for hidden in files]
        targets = [hidden.target for hidden in files]
        with grading_tree(copy, base_tree, changed_files, (), repo=repo):
            run = run_tests(sandbox, copy, command, test_ids=targets, timeout_s=timeout_s, env=env)
    ran = {test: outcome for test, outcome in run.outcomes.items() if _within(test, targets)}
    failing = [_name(test) for test, outcome in sorted(ran.items()) if outcome != PASSED]
    failing += [f"{_name(error)} (fails to collect)" for error in run.collection_errors]
    if run.timed_out:
        failing.append("the hidden acceptance tests timed out")
    elif not ran and not failing:
        failing.append(f"no hidden acceptance test ran ({', '.join(targets)})")
    return HiddenRun(
        files=placed,
        tests=len(ran),
        failing=list(dict.fromkeys(failing)),
        duration_s=run.duration_s,
        exit_code=run.exit_code,
        timed_out=run.timed_out,
    )


def with_hidden(evidence: Mapping[str, Any], hidden: HiddenRun) -> dict[str, Any]:
    """The verify evidence with the hidden run folded in: its failures block the attempt."""
    delta = {**evidence.get("delta", {}), "hidden_failing": hidden.failing}
    passed = bool(evidence.get("passed")) and not hidden.failing
    return {**evidence, "delta": delta, "passed": passed, "hidden": hidden.to_dict()}


def _export_tree(repo: Path, tree: str, target: Path) -> None:
    """Write ``tree``'s files into ``target``: exactly what would land, nothing untracked."""
    target.mkdir(parents=True)
    argv, env = git.command_line(repo, ("archive", "--format=tar", tree))
    archive = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE)
    assert archive.stdout is not None
    with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
        tar.extractall(target, filter="tar")
    if archive.wait() != 0:
        raise git.GitError(f"git archive {tree} failed in {repo}")


def _place(hidden: HiddenFile, copy: Path) -> dict[str, str]:
    """Copy one hidden source to its target in the copy (over whatever the attempt put
    there) and return the target with the sha256 of what was copied."""
    destination = copy / hidden.target
    destination.parent.mkdir(parents=True, exist_ok=True)
    if hidden.source.is_dir():
        shutil.copytree(hidden.source, destination, ignore=IGNORED, dirs_exist_ok=True)
    else:
        shutil.copy2(hidden.source, destination)
    return {"target": hidden.target, "sha256": _digest(hidden.source)}


def _digest(source: Path) -> str:
    """sha256 of a file, or of a folder's files with their relative paths."""
    if source.is_file():
        return hashlib.sha256(source.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    files = [p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(files):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _within(test: str, targets: Sequence[str]) -> bool:
    path = test.split("::", 1)[0]
    return any(path == target or path.startswith(f"{target}/") for target in targets)


def _name(test: str) -> str:
    """A test's ID without its parameters: ``test_x[input-expected]`` would tell the Builder
    exactly which input to special-case."""
    return re.sub(r"\[.*\]", "", test)
