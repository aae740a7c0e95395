"""``autopack gaps``: what is missing or broken in a repository, found without a model.

The scan reads the repository at HEAD, never the working copy, so two scans of one
commit agree. It has two halves:

* reading text (fast, always): TODO and FIXME comments in the allowed paths, debug-ledger
  entries without a fix, files a success criterion names that do not exist. The blobs
  come from one ``git cat-file --batch``; binaries and files over :data:`MAX_TEXT_BYTES`
  are skipped; each pattern is compiled once.
* running things (unless ``run=False``): the project's test command in the sandbox, on a
  fresh export of HEAD, through the same runner and report plugin a run's baseline uses
  (failing, erroring, skipped and xfailed tests, unmet test and command criteria,
  untested public functions when the run records coverage), then ruff and mypy when the
  project configures them.

Every gap is typed and located, and the list is ranked: kinds by :data:`KINDS` order
(what blocks the intention first), then by place.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autopack.autopilot.intention import Intention
from autopack.config import Settings
from autopack.ledger.entries import parse_ledger
from autopack.verify.results import FAILED, PASSED, TestRun, detect_test_command, is_pytest
from autopack.workspace import git
from autopack.workspace.runner import Sandbox

KINDS = (
    "criterion",
    "test-error",
    "test-fail",
    "readme",
    "type",
    "lint",
    "skipped",
    "xfailed",
    "debug",
    "todo",
    "untested",
)
"""Gap kinds, most urgent first: this order is the ranking."""
MAX_TEXT_BYTES = 1_000_000
"""Larger files are not read for TODOs (generated data, vendored bundles)."""
TOOL_TIMEOUT_S = 600.0
TOOL_OUTPUT_CAP = 5_000_000
PLUGIN_DIR = Path(__file__).parent / "pytest_plugin"
GAPS_REPORT = ".autopack-gaps.jsonl"
DEBUG_LEDGER = "docs/DEBUG_LOG.md"
NO_FIX = {"", "-", "none", "tbd", "todo", "pending", "unknown", "n/a", "open", "?"}
BINARY_SUFFIXES = frozenset(
    (  # noqa: SIM905 (one word per suffix would take 44 lines)
        ".png .jpg .jpeg .gif .ico .bmp .webp .pdf .zip .gz .bz2 .xz .tar .whl .egg .so .dll"
        " .dylib .exe .bin .pyc .pyo .class .jar .woff .woff2 .ttf .otf .eot .mp3 .mp4 .wav"
        " .ogg .avi .mov .sqlite .db .npy .npz .pkl .pickle .parquet .feather .h5"
    ).split()
)
_TODO = re.compile(rb"\b(TODO|FIXME)\b")
_TODO_BEFORE = re.compile(rb"(?:^|#|//|/\*|<!--|;|--)[ \t]*(?:[-*][ \t]+)?$", re.MULTILINE)
"""What must precede the marker on its line: a comment opener (or nothing), so the word in
prose or in a string is not a note."""
_TODO_AFTER = re.compile(rb"(?:\([^)\n]*\))?:?[ \t]*([^\n]*)")
_RUFF_LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.M)
_MYPY_LINE = re.compile(
    r"^(?P<path>[^:\n]+):(?P<line>\d+):(?:\d+:)? error: (?P<msg>.*?)(?:  \[(?P<code>[\w-]+)\])?$",
    re.M,
)


@dataclass(frozen=True)
class Gap:
    """One thing between the repository and its intention, with where to look."""

    kind: str
    path: str
    line: int
    message: str
    ref: str
    """What identifies the gap across scans: a test ID, a rule code, a ledger ID."""

    def key(self) -> tuple[str, str, str]:
        """Identity across commits: lines move, the kind, file and reference do not."""
        return (self.kind, self.path, self.ref)

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path and self.line else self.path or "-"


@dataclass
class Scan:
    """The gaps of one commit, ranked, and what the scan could not do."""

    head: str
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    files: int = 0
    """Tracked files at HEAD."""

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for gap in self.gaps:
            counts[gap.kind] = counts.get(gap.kind, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "files": self.files,
            "counts": self.counts(),
            "gaps": [{"rank": i, **asdict(gap)} for i, gap in enumerate(self.gaps, 1)],
            "notes": self.notes,
            "timings": {name: round(seconds, 3) for name, seconds in self.timings.items()},
        }


def scan(
    root: Path,
    intention: Intention,
    settings: Settings,
    *,
    run: bool = True,
    sandbox: Sandbox | None = None,
    ref: str = "HEAD",
) -> Scan:
    """Every gap of ``root`` at ``ref`` (HEAD) against ``intention``, ranked."""
    head = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    result = Scan(head=head)
    started = time.perf_counter()
    blobs = _tracked_blobs(root, head)
    result.files = len(blobs)
    texts = _read_texts(root, {p: b for p, b in blobs.items() if _readable(p, b, intention)})
    gaps = [*_todos(texts), *_unfixed_debug(texts), *_missing_files(intention, blobs)]
    result.timings["text"] = time.perf_counter() - started
    if run:
        from autopack.workspace.runner import make_sandbox

        box = sandbox or make_sandbox(settings.sandbox)
        started = time.perf_counter()
        with _export(root, head) as checkout:
            result.timings["export"] = time.perf_counter() - started
            gaps += _ran(root, checkout, head, intention, settings, box, result)
    kept = [g for g in gaps if g.kind == "criterion" or not g.path or intention.allows(g.path)]
    result.gaps = rank(kept)
    return result


def rank(gaps: list[Gap]) -> list[Gap]:
    """Most urgent kind first, then by place; a gap found twice is listed once."""
    return sorted(set(gaps), key=lambda g: (KINDS.index(g.kind), g.path, g.line, g.ref))


# -- reading text -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    oid: str
    size: int


def _tracked_blobs(root: Path, head: str) -> dict[str, _Blob]:
    """Every regular file at HEAD with its blob id and size (one ``git ls-tree``)."""
    listing = _git(root, "ls-tree", "-r", "-z", "-l", "--full-tree", head)
    blobs: dict[str, _Blob] = {}
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, oid, size = meta.split()
        if kind == "blob" and mode in ("100644", "100755"):
            blobs[path] = _Blob(oid, int(size))
    return blobs


def _readable(path: str, blob: _Blob, intention: Intention) -> bool:
    if path == DEBUG_LEDGER:
        return True
    if blob.size > MAX_TEXT_BYTES or Path(path).suffix.lower() in BINARY_SUFFIXES:
        return False
    return intention.allows(path)


def _read_texts(root: Path, blobs: Mapping[str, _Blob]) -> dict[str, bytes]:
    """The blobs' contents from one ``git cat-file --batch``; binaries (a NUL byte) left out."""
    paths = list(blobs)
    with tempfile.TemporaryFile() as request:
        request.write("".join(f"{blobs[p].oid}\n" for p in paths).encode())
        request.seek(0)
        # One read of the whole stream: communicate()'s small polled reads cost a second
        # at 5,000 files.
        argv, env = git.command_line(root, ("cat-file", "--batch"))
        batch = subprocess.Popen(argv, cwd=root, env=env, stdin=request, stdout=subprocess.PIPE)
        assert batch.stdout is not None
        out = batch.stdout.read()
        if batch.wait() != 0:
            raise git.GitError(f"git cat-file --batch failed in {root}")
    texts: dict[str, bytes] = {}
    pos = 0
    for path in paths:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].rsplit(b" ", 1)[1])
        body = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        if b"\0" not in body[:8192]:
            texts[path] = body
    return texts


def _todos(texts: Mapping[str, bytes]) -> Iterator[Gap]:
    for path, body in texts.items():
        if b"TODO" not in body and b"FIXME" not in body:
            continue
        line, counted = 1, 0
        for match in _TODO.finditer(body):
            start = match.start()
            line_start = body.rfind(b"\n", 0, start) + 1
            if not _TODO_BEFORE.search(body, line_start, start):
                continue
            line += body.count(b"\n", counted, start)
            counted = start
            marker = match.group(1).decode()
            after = _TODO_AFTER.match(body, match.end())
            text = after.group(1) if after else b""
            note = text.decode("utf-8", "replace").strip().rstrip("*/->").strip()
            yield Gap(
                "todo", path, line, f"{marker}: {note}" if note else marker, f"{marker}:{note}"
            )


def _unfixed_debug(texts: Mapping[str, bytes]) -> Iterator[Gap]:
    body = texts.get(DEBUG_LEDGER)
    if body is None:
        return
    text = body.decode("utf-8", "replace")
    lines = {line: n for n, line in enumerate(text.splitlines(), 1) if line.startswith("## ")}
    for entry in parse_ledger(text, "debug").entries:
        if entry.field("Fix").strip().lower().rstrip(".") in NO_FIX:
            line = lines.get(entry.heading, 0)
            yield Gap(
                "debug", DEBUG_LEDGER, line, f"{entry.id} has no fix: {entry.title}", entry.id
            )


def _missing_files(intention: Intention, blobs: Mapping[str, _Blob]) -> Iterator[Gap]:
    for wanted in intention.success_criteria.files:
        name = wanted.rstrip("/")
        if name not in blobs and not any(p.startswith(name + "/") for p in blobs):
            yield Gap("criterion", wanted, 0, f"file {wanted} does not exist", f"file:{wanted}")


# -- running things ---------------------------------------------------------------------


@contextmanager
def _export(root: Path, head: str) -> Iterator[Path]:
    """HEAD's files in a throwaway folder (no ``.git``): tests write there, not in the repo."""
    with tempfile.TemporaryDirectory(prefix="autopack-gaps-") as scratch:
        checkout = Path(scratch) / "head"
        checkout.mkdir()
        argv, env = git.command_line(root, ("archive", "--format=tar", head))
        archive = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE)
        assert archive.stdout is not None
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(checkout, filter="tar")
        if archive.wait() != 0:
            raise git.GitError(f"git archive {head} failed in {root}")
        yield checkout


def _ran(
    root: Path,
    checkout: Path,
    head: str,
    intention: Intention,
    settings: Settings,
    sandbox: Sandbox,
    result: Scan,
) -> list[Gap]:
    gaps: list[Gap] = []
    started = time.perf_counter()
    command = settings.test_command or detect_test_command(root, head)
    if command:
        run, impact, located = _run_tests(checkout, command, settings, sandbox)
        if run.warning:
            result.notes.append(f"tests: {run.warning}")
        gaps += _test_gaps(run, located)
        gaps += _criteria_tests(intention, run)
        gaps += _untested(checkout, impact, intention)
    elif intention.success_criteria.tests:
        result.notes.append("no test command: test criteria cannot be checked")
    result.timings["tests"] = time.perf_counter() - started
    for name, tool in (("ruff", _ruff), ("mypy", _mypy)):
        started = time.perf_counter()
        gaps += tool(checkout, sandbox, result.notes)
        result.timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    gaps += _criteria_commands(intention, checkout, sandbox, settings)
    result.timings["commands"] = time.perf_counter() - started
    started = time.perf_counter()
    gaps += _readme_commands(root, checkout, head, sandbox, result.notes)
    result.timings["readme"] = time.perf_counter() - started
    return gaps


def _run_tests(
    checkout: Path, command: str, settings: Settings, sandbox: Sandbox
) -> tuple[TestRun, dict[str, Any], dict[str, dict[str, Any]]]:
    """The test command as a baseline runs it (per-test coverage when it can), with the
    gaps plugin telling where each test that did not pass lives."""
    from autopack.verify.baseline import measure_baseline

    report = checkout / GAPS_REPORT
    env = {"PYTHONPATH": str(PLUGIN_DIR), "AUTOPACK_GAPS_REPORT": str(report)}
    full = f"{command} -p autopack_gaps" if is_pytest(command) else command
    run, impact = measure_baseline(
        sandbox, checkout, full, timeout_s=settings.test_timeout_s, env=env
    )
    located: dict[str, dict[str, Any]] = {}
    if report.exists():
        for line in report.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            located.setdefault(entry["test"], entry)  # the first phase that did not pass
    return run, impact, located


def _test_gaps(run: TestRun, located: Mapping[str, Mapping[str, Any]]) -> Iterator[Gap]:
    if run.kind != "pytest":
        if run.exit_code != 0:
            code = "timed out" if run.timed_out else f"exit {run.exit_code}"
            yield Gap("test-fail", "", 0, f"{run.command} failed ({code})", run.command)
        return
    for error in run.collection_errors:
        path = error.split("::", 1)[0]
        yield Gap("test-error", path, 0, f"{path} does not collect", error)
    if run.timed_out or not run.finished:
        stuck = f" at {run.running}" if run.running else ""
        why = "timed out" if run.timed_out else "stopped before the session ended"
        yield Gap(
            "test-error", run.running.split("::", 1)[0], 0, f"the test run {why}{stuck}", "session"
        )
    for test_id, outcome in sorted(run.outcomes.items()):
        if outcome == PASSED:
            continue
        where = located.get(test_id, {})
        kind = {"failed": "test-fail", "error": "test-error"}.get(outcome, "skipped")
        if where.get("kind") == "xfailed":
            kind = "xfailed"
        path = str(where.get("path") or test_id.split("::", 1)[0])
        reason = str(where.get("reason") or outcome)
        name = test_id.split("::", 1)[-1]
        yield Gap(kind, path, int(where.get("line", 0)), f"{name}: {reason}", test_id)


def _criteria_tests(intention: Intention, run: TestRun) -> Iterator[Gap]:
    for test_id in intention.success_criteria.tests:
        outcomes = [
            o for t, o in run.outcomes.items() if t == test_id or t.startswith(test_id + "[")
        ]
        if not outcomes:
            state = "is not collected"
        elif all(o == PASSED for o in outcomes):
            continue
        else:
            state = "fails" if FAILED in outcomes else f"does not pass ({outcomes[0]})"
        path = test_id.split("::", 1)[0]
        yield Gap("criterion", path, 0, f"test {test_id} {state}", f"test:{test_id}")


def _criteria_commands(
    intention: Intention, checkout: Path, sandbox: Sandbox, settings: Settings
) -> Iterator[Gap]:
    for command in intention.success_criteria.commands:
        done = sandbox.run(command, checkout, timeout_s=settings.test_timeout_s)
        if done.exit_code != 0:
            code = "timed out" if done.timed_out else f"exit {done.exit_code}"
            yield Gap(
                "criterion", "", 0, f"command fails ({code}): {command}", f"command:{command}"
            )


def _readme_commands(
    root: Path, checkout: Path, head: str, sandbox: Sandbox, notes: list[str]
) -> list[Gap]:
    """The root README's shell commands that exit non-zero (see :mod:`.readme` for which
    are read, skipped and how they run), each run in a fresh export of HEAD."""
    from autopack.autopilot import readme

    name = readme.readme_path({p.name for p in checkout.iterdir()})
    if name is None:
        return []
    found = readme.commands(name, (checkout / name).read_text("utf-8", "replace"))
    skipped = [(c, c.skip_reason()) for c in found if c.skip_reason()]
    if skipped:
        listed = ", ".join(f"{c.line} ({why})" for c, why in skipped)
        notes.append(f"{name}: {len(skipped)} command(s) skipped at lines {listed}")
    runnable = [c for c in found if not c.skip_reason()]
    if not runnable:
        return []
    gaps: list[Gap] = []
    with _export(root, head) as fresh:
        for command in runnable:
            folder = fresh / command.folder
            if not folder.is_dir():
                message = f"`{command.command}` runs in {command.folder}, which does not exist"
                gaps.append(Gap("readme", name, command.line, message, command.command))
                continue
            done = sandbox.run(command.command, folder, timeout_s=readme.TIMEOUT_S)
            if done.timed_out:
                notes.append(f"{name}:{command.line}: `{command.command}` did not finish "
                             f"in {readme.TIMEOUT_S:.0f} s (not counted)")  # fmt: skip
            elif done.exit_code != 0:
                why = f"exits {done.exit_code}: {_last_line(done.output)}"
                gaps.append(Gap("readme", name, command.line, f"`{command.command}` {why}",
                                command.command))  # fmt: skip
    return gaps


def _untested(checkout: Path, impact: Mapping[str, Any], intention: Intention) -> Iterator[Gap]:
    """Public functions no test executed a line of, in the modules the tests import.

    Only with a per-test coverage map (``coverage`` installed): without one, nothing is
    claimed. A module the tests never import is left out (it may be a script)."""
    if impact.get("strategy") != "coverage":
        return
    lines: Mapping[str, Mapping[str, Any]] = impact.get("lines", {})
    imported = {f for deps in impact.get("imports", {}).get("files", {}).values() for f in deps}
    for path in sorted(set(lines) | imported):
        if not path.endswith(".py") or _is_test_file(path) or not intention.allows(path):
            continue
        ran = {int(n) for n in lines.get(path, {})}
        for name, start, end in _public_functions(checkout / path):
            if not ran.intersection(range(start + 1, end + 1)):
                yield Gap("untested", path, start, f"{name} is never run by a test", name)


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _public_functions(path: Path) -> Iterator[tuple[str, int, int]]:
    """Top-level public functions and public methods of public classes: name, lines."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and not node.name.startswith("_"):
            yield node.name, node.lineno, node.end_lineno or node.lineno
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, functions) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item.lineno, item.end_lineno or item.lineno


def configures(checkout: Path, tool: str) -> bool:
    """Whether the project configures ``tool`` (ruff or mypy) in a file it reads."""
    if tool == "ruff" and any((checkout / n).is_file() for n in ("ruff.toml", ".ruff.toml")):
        return True
    if tool == "mypy" and any((checkout / n).is_file() for n in ("mypy.ini", ".mypy.ini")):
        return True
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        if tool in data.get("tool", {}):
            return True
    setup_cfg = checkout / "setup.cfg"
    if tool == "mypy" and setup_cfg.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(setup_cfg, encoding="utf-8")
        except configparser.Error:
            return False
        return parser.has_section("mypy")
    return False


def _ruff(checkout: Path, sandbox: Sandbox, notes: list[str]) -> Iterator[Gap]:
    if not configures(checkout, "ruff"):
        return
    command = "python -m ruff check --output-format=concise --exit-zero --no-cache ."
    done = sandbox.run(command, checkout, timeout_s=TOOL_TIMEOUT_S, output_cap=TOOL_OUTPUT_CAP)
    if done.exit_code != 0:
        notes.append(f"ruff is configured but did not run: {_last_line(done.output)}")
        return
    for match in _RUFF_LINE.finditer(done.output):
        code, _, message = match["msg"].partition(" ")
        message = message.removeprefix("[*] ")
        path = match["path"].removeprefix("./")
        yield Gap("lint", path, int(match["line"]), f"{code} {message}", code)


def _mypy(checkout: Path, sandbox: Sandbox, notes: list[str]) -> Iterator[Gap]:
    if not configures(checkout, "mypy"):
        return
    options = "--no-error-summary --show-column-numbers --no-pretty --no-color-output"
    command = f"python -m mypy {options}"
    done = sandbox.run(command, checkout, timeout_s=TOOL_TIMEOUT_S, output_cap=TOOL_OUTPUT_CAP)
    if done.exit_code == 2 and "Missing target" in done.output:
        notes.append("mypy is configured without files to check: set `files` in its config")
        return
    if done.exit_code not in (0, 1):
        notes.append(f"mypy is configured but did not run: {_last_line(done.output)}")
        return
    for match in _MYPY_LINE.finditer(done.output):
        code = match["code"] or "error"
        line = int(match["line"])
        message = f"{code}: {match['msg']}"
        yield Gap("type", match["path"].removeprefix("./"), line, message, f"{code}:{match['msg']}")


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _git(root: Path, *args: str) -> str:
    """Git's output, run by Autopack's trusted git (no configured command runs)."""
    argv, env = git.command_line(root, args)
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise git.GitError(f"git {' '.join(args)} failed in {root}: {done.stderr.decode()}")
    return done.stdout.decode("utf-8", "surrogateescape")
