"""Does an edit land exactly, or get refused, when the model's diff is imperfect?

The corpus is made of real code changes: modified files from this project's own git
history, and real functions of installed packages (click, rich, typer, httpx, yaml,
the standard library, ...) rewritten by small realistic edits (insert a statement,
delete one, change one, rename a local, wrap a line in a block) and diffed. Each change
is then perturbed the way models get diffs wrong, one class at a time:

    exact        the diff as made
    drift        every hunk's line numbers off by 1-9 lines
    trailing_ws  trailing spaces added to context and removed lines
    indent       the hunk dedented/indented as a block, or spaces written as tabs
    context      context lines missing or extra, header counts left wrong
    crlf         the file uses CRLF, the diff LF
    typographic  straight quotes written as curly ones (old and new lines alike)
    elided       unchanged context replaced by a "..." line
    ambiguous    a second copy of the hunk's old lines elsewhere in the file
    already      the change is already in the file
    not_in_file  a context line that is not in the file (must be refused)

Every trial runs, side by side, through this engine, ``git apply``, ``git apply
--recount --ignore-whitespace``, GNU ``patch --fuzz=3`` and the SWE-bench harness's
ladder (``git apply``, then ``patch --batch --fuzz=5``). An outcome is *correct* when
the tool succeeded and the file equals the intended one byte for byte, *wrong* when it
succeeded with any other result, *refused* when it failed and left the file alone,
*partial* when it failed but changed the file. For ``already`` the intended file is the
unchanged one; for ``not_in_file`` it is too, and success counts as wrong.

The second table is real model output: patches that language-model systems wrote for
SWE-bench Lite tasks (see ``bench/realpatches``), applied to the files at each task's base
commit, as written and perturbed the way models err (line drift, wrong counts, trailing
whitespace stripped, no final newline, blank lines after the last hunk). Where ``git
apply`` applies a patch its result is the intended one; where it refuses, the intent is
git's result on the patch with only its blank tail dropped, a final newline added and
the counts recounted, and a patch with no such intent must be refused. A perturbed patch
is intended to do what the patch did before it was perturbed.

    python bench/edits.py            # ~250 real changes x 11 classes, and the real patches
    python bench/edits.py --quick    # a handful (CI smoke run)

The real corpus (``bench/data/edits_real.json`` names it: 407 patches of 4 systems for
134 tasks of 8 repositories) is assembled on the first full run from bare git mirrors,
``$AUTOPACK_BENCH_MIRRORS/<owner>+<name>/repo`` (default ``/work/.mirror``; make one with
``git clone --bare https://github.com/<owner>/<name> <dir>/<owner>+<name>/repo`` for the
four prediction repositories and the eight project repositories the manifest names),
into ``$XDG_CACHE_HOME/autopack/edits-real`` (default ``~/.cache/autopack/edits-real``;
``--cache``/``--mirrors`` override both). ``--quick``, and a machine with neither
mirrors nor cache, run the second table on a few examples written for this bench.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autopack.edits import PathPolicy, apply_edit_text, unified_diff
from realpatches import DEFAULT_CACHE, DEFAULT_MIRRORS, RealPatch, load

REPO = Path(__file__).resolve().parents[1]
CLASSES = (
    "exact",
    "drift",
    "trailing_ws",
    "indent",
    "context",
    "crlf",
    "typographic",
    "elided",
    "ambiguous",
    "already",
    "not_in_file",
)
UNRECOVERABLE = {"not_in_file"}
PACKAGES = (
    "click",
    "rich",
    "typer",
    "httpx",
    "yaml",
    "sqlalchemy",
    "alembic",
    "jinja2",
    "argparse",
    "json",
    "email",
    "http",
    "logging",
    "unittest",
    "asyncio",
)
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


@dataclass(frozen=True)
class Change:
    """A real change to one file: its text before, and the intended text after."""

    path: str
    before: str
    after: str


@dataclass(frozen=True)
class Trial:
    """One perturbed edit: the bytes on disk, the diff to apply, the bytes we want."""

    kind: str
    path: str
    on_disk: bytes
    diff: str
    expected: bytes


# --- corpus -------------------------------------------------------------------------


def history_changes(limit: int) -> list[Change]:
    """Modified text files from this repository's own commits."""
    log = _git(REPO, "log", "--diff-filter=M", "--name-only", "--format=@%H", "-n", "300")
    changes: list[Change] = []
    commit = ""
    for line in log.splitlines():
        if line.startswith("@"):
            commit = line[1:]
        elif line.endswith((".py", ".md", ".toml", ".yaml", ".txt")) and len(changes) < limit:
            before = _git(REPO, "show", f"{commit}^:{line}", check=False)
            after = _git(REPO, "show", f"{commit}:{line}", check=False)
            if before and after and before != after and before.endswith("\n"):
                changes.append(Change(line, before, after))
    return changes


def package_changes(count: int, rng: random.Random) -> list[Change]:
    """Real functions of installed packages, each file rewritten by one or two edits."""
    files = sorted(_package_files())
    rng.shuffle(files)
    changes: list[Change] = []
    for path, rel in files:
        if len(changes) >= count:
            break
        text = path.read_text(encoding="utf-8", errors="strict")
        after = rewrite(text, rng)
        if after is not None and after != text:
            changes.append(Change(rel, text, after))
    return changes


def _package_files() -> list[tuple[Path, str]]:
    found = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        base = Path(spec.origin).parent
        paths = base.rglob("*.py") if spec.submodule_search_locations else [Path(spec.origin)]
        for path in paths:
            size = path.stat().st_size
            if 2_000 <= size <= 60_000 and "test" not in path.name:
                rel = f"{name}/{path.relative_to(base).as_posix()}"
                if spec.submodule_search_locations is None:
                    rel = path.name
                found.append((path, rel))
    return found


def rewrite(text: str, rng: random.Random) -> str | None:
    """One or two realistic edits to functions of a Python file, or None if none fits."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    if not text.endswith("\n") or "\r" in text or "\t" in text:
        return None
    functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or 0) - node.lineno >= 4
    ]
    if not functions:
        return None
    lines = _LINE.findall(text)
    chosen = rng.sample(functions, min(len(functions), rng.choice([1, 1, 2])))
    taken: list[tuple[int, int]] = []
    for function in sorted(chosen, key=lambda f: -f.lineno):
        span = (function.lineno, function.end_lineno or function.lineno)
        if any(a <= span[1] and span[0] <= b for a, b in taken):
            continue
        taken.append(span)
        lines = _edit_function(lines, function, rng)
    return "".join(lines)


def _edit_function(lines: list[str], function: ast.AST, rng: random.Random) -> list[str]:
    statements = _simple_statements(function)
    if not statements:
        return lines
    target = rng.choice(statements)
    row = target.lineno - 1
    line = lines[row]
    indent = line[: len(line) - len(line.lstrip())]
    name = getattr(function, "name", "f")
    kind = rng.choice(["insert", "delete", "modify", "rename", "wrap"])
    if kind == "insert":
        return [*lines[: row + 1], f'{indent}log.debug("{name}: checkpoint")\n', *lines[row + 1 :]]
    if kind == "delete" and _deletable(function, target):
        return [*lines[:row], *lines[row + 1 :]]
    if kind == "wrap":
        wrapped = [f"{indent}if __debug__:\n", f"{indent}    {line.lstrip()}"]
        return [*lines[:row], *wrapped, *lines[row + 1 :]]
    if kind == "rename":
        renamed = _rename_local(lines, function)
        if renamed is not None:
            return renamed
    return [*lines[:row], _modify(line), *lines[row + 1 :]]


def _simple_statements(function: ast.AST) -> list[ast.stmt]:
    found = []
    for node in ast.walk(function):
        if node is function or not isinstance(node, ast.stmt):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.lineno != node.end_lineno or isinstance(node, ast.Expr | ast.Pass):
            continue
        if isinstance(node, ast.If | ast.For | ast.While | ast.With | ast.Try):
            continue
        found.append(node)
    return found


def _deletable(function: ast.AST, target: ast.stmt) -> bool:
    for node in ast.walk(function):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and target in block and len(block) >= 2:
                return True
    return False


def _modify(line: str) -> str:
    number = re.search(r"(?<![\w.])(\d+)(?![\w.])", line)
    if number:
        return line[: number.start()] + str(int(number.group()) + 1) + line[number.end() :]
    for old, new in ((" == ", " != "), (" is not ", " is "), (" and ", " or ")):
        if old in line:
            return line.replace(old, new, 1)
    return line.rstrip("\n") + "  # reviewed\n"


def _rename_local(lines: list[str], function: ast.AST) -> list[str] | None:
    names = sorted(
        {
            node.id
            for node in ast.walk(function)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and len(node.id) > 2
        }
    )
    if not names:
        return None
    name = names[len(names) // 2]
    start, end = function.lineno, function.end_lineno or function.lineno  # type: ignore[attr-defined]
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    body = [pattern.sub(f"{name}_value", line) for line in lines[start:end]]
    return [*lines[:start], *body, *lines[end:]]


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace"))
    return result.stdout.decode("utf-8", errors="replace") if result.returncode == 0 else ""


# --- perturbations ------------------------------------------------------------------

Hunks = list[list[str]]


def split_diff(diff: str) -> tuple[list[str], Hunks]:
    lines = _LINE.findall(diff)
    hunks: Hunks = []
    for line in lines[2:]:
        if line.startswith("@@"):
            hunks.append([line])
        else:
            hunks[-1].append(line)
    return lines[:2], hunks


def join_diff(head: list[str], hunks: Hunks) -> str:
    return "".join(head) + "".join(line for hunk in hunks for line in hunk)


def make_trial(change: Change, kind: str, rng: random.Random) -> Trial | None:
    """``change`` perturbed as ``kind``; None when the class does not apply to it."""
    diff = unified_diff(change.before, change.after, change.path)
    before, after = change.before.encode(), change.after.encode()
    head, hunks = split_diff(diff)
    if kind == "exact":
        return Trial(kind, change.path, before, diff, after)
    if kind == "crlf":
        crlf = change.before.replace("\n", "\r\n").encode()
        return Trial(kind, change.path, crlf, diff, change.after.replace("\n", "\r\n").encode())
    if kind == "already":
        return Trial(kind, change.path, after, diff, after)
    if kind == "ambiguous":
        block = "".join(line[1:] for line in hunks[0][1:] if line[:1] in " -")
        extra = ("\n" + block).encode()
        return Trial(kind, change.path, before + extra, diff, after + extra)
    perturbed = PERTURB[kind](hunks, change, rng)
    if perturbed is None:
        return None
    expected = before if kind in UNRECOVERABLE else after
    return Trial(kind, change.path, before, join_diff(head, perturbed), expected)


def _drift(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    shift = rng.choice([n for n in range(-9, 10) if n])

    def move(match: re.Match[str]) -> str:
        return f"{match.group(1)}{max(1, int(match.group(2)) + shift)}"

    return [[re.sub(r"([-+])(\d+)", move, hunk[0], count=2), *hunk[1:]] for hunk in hunks]


def _trailing_ws(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    out = []
    for hunk in hunks:
        body = [
            line[:-1] + " " * rng.choice([1, 2, 4]) + "\n"
            if line[:1] in " -" and line.strip() and line.endswith("\n") and rng.random() < 0.6
            else line
            for line in hunk[1:]
        ]
        out.append([hunk[0], *body])
    return out if out != hunks else None


def _indent(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    old_side = [line[1:] for hunk in hunks for line in hunk[1:] if line[:1] in " -"]
    if not any(text.startswith("    ") for text in old_side):
        return None  # nothing in the edit shows the file's indentation: not recoverable
    if rng.random() < 0.5:
        return [[hunk[0], *[_tabify(line) for line in hunk[1:]]] for hunk in hunks]
    out = []
    for hunk in hunks:
        body = [line for line in hunk[1:] if line[1:].strip()]
        common = min((len(x[1:]) - len(x[1:].lstrip(" ")) for x in body), default=0)
        if common >= 4:
            shifted = [
                line[0] + line[1 + common :] if line[1:].strip() else line for line in hunk[1:]
            ]
        else:
            shifted = [
                line[0] + "    " + line[1:] if line[1:].strip() else line for line in hunk[1:]
            ]
        out.append([hunk[0], *shifted])
    return out


def _tabify(line: str) -> str:
    text = line[1:]
    spaces = len(text) - len(text.lstrip(" "))
    return line[0] + "\t" * (spaces // 4) + " " * (spaces % 4) + text[spaces:]


def _context(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    if rng.random() < 0.5:
        out = []
        for hunk in hunks:
            body = hunk[1:]
            if len(body) > 2 and body[0][:1] == " " and body[1][:1] == " ":
                body = body[1:]
            if len(body) > 2 and body[-1][:1] == " " and body[-2][:1] == " ":
                body = body[:-1]
            out.append([hunk[0], *body])
        return out if out != hunks else None
    lines = _LINE.findall(change.before)
    out = []
    for hunk in hunks:
        start = int(re.match(r"@@ -(\d+)", hunk[0]).group(1))  # type: ignore[union-attr]
        extra = [" " + line for line in lines[max(0, start - 3) : start - 1]]
        out.append([hunk[0], *extra, *hunk[1:]])
    return out


_CURLY = {"'": ("\u2018", "\u2019"), '"': ("\u201c", "\u201d")}


def _typographic(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    if not any(
        ch in line for hunk in hunks for line in hunk[1:] if line[:1] in " -" for ch in "'\""
    ):
        return None
    return [[hunk[0], *[line[0] + _curl(line[1:]) for line in hunk[1:]]] for hunk in hunks]


def _curl(text: str) -> str:
    out = []
    for n, ch in enumerate(text):
        if ch in _CURLY:
            opening = n == 0 or text[n - 1] in " ([{=,:"
            out.append(_CURLY[ch][0 if opening else 1])
        else:
            out.append(ch)
    return "".join(out)


def _elided(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    out, elided = [], False
    for hunk in hunks:
        body = hunk[1:]
        kinds = "".join(line[:1] for line in body)
        inner = re.search(r"[-+]( {4,})[-+]", kinds)
        if inner:
            a, b = inner.start(1) + 1, inner.end(1) - 1
            body = [*body[:a], "...\n", *body[b:]]
            elided = True
        elif kinds.startswith("  "):
            lead = len(kinds) - len(kinds.lstrip(" "))
            body = ["...\n", *body[lead - 1 :]]
            elided = True
        out.append([hunk[0], *body])
    return out if elided else None


def _not_in_file(hunks: Hunks, change: Change, rng: random.Random) -> Hunks | None:
    body = hunks[0][1:]
    rows = [n for n, line in enumerate(body) if line[:1] in " -" and len(line.strip()) > 3]
    if not rows:
        return None
    row = rng.choice(rows)
    text = body[row]
    middle = len(text) // 2
    body = [*body[:row], text[:middle] + "_nowhere" + text[middle:], *body[row + 1 :]]
    return [[hunks[0][0], *body], *hunks[1:]]


PERTURB: dict[str, Callable[[Hunks, Change, random.Random], Hunks | None]] = {
    "drift": _drift,
    "trailing_ws": _trailing_ws,
    "indent": _indent,
    "context": _context,
    "typographic": _typographic,
    "elided": _elided,
    "not_in_file": _not_in_file,
}


# --- tools --------------------------------------------------------------------------


@dataclass
class Timer:
    """The engine's own time: wall clock, and CPU time (steady on a busy machine)."""

    wall: float = 0.0
    cpu: float = 0.0
    hunks: int = 0


def run_autopack(work: Path, patch: Path, timer: Timer) -> bool:
    text = patch.read_bytes().decode("utf-8")  # read_text would turn CRLF lines into LF
    wall, cpu = time.perf_counter(), time.process_time()
    report = apply_edit_text(text, PathPolicy(work))
    timer.wall += time.perf_counter() - wall
    timer.cpu += time.process_time() - cpu
    timer.hunks += len(report.hunks)
    return report.applied


def _ok(work: Path, *command: str) -> bool:
    result = subprocess.run(command, cwd=work, capture_output=True, check=False, timeout=60)
    return result.returncode == 0


def run_git(work: Path, patch: Path) -> bool:
    return _ok(work, "git", "apply", "--whitespace=nowarn", str(patch))


def run_git_recount(work: Path, patch: Path) -> bool:
    return _ok(work, "git", "apply", "--recount", "--ignore-whitespace", str(patch))


def run_patch(work: Path, patch: Path) -> bool:
    command = ["patch", "-p1", "--fuzz=3", "--forward", "--batch", "--no-backup-if-mismatch"]
    return _ok(work, *command, "-i", str(patch))


def run_swebench(work: Path, patch: Path) -> bool:
    if _ok(work, "git", "apply", "--verbose", str(patch)):
        return True
    return _ok(work, "patch", "--batch", "--fuzz=5", "-p1", "-i", str(patch))


def judge(trial: Trial, succeeded: bool, result: bytes | None) -> str:
    if succeeded:
        return "correct" if result == trial.expected else "wrong"
    return "refused" if result == trial.on_disk else "partial"


def run_trial(
    trial: Trial, tools: dict[str, Callable[[Path, Path], bool]], scratch: Path
) -> dict[str, str]:
    outcomes = {}
    patch = scratch / "edit.diff"
    patch.write_text(trial.diff, encoding="utf-8")
    for name, tool in tools.items():
        work = scratch / name
        if work.exists():
            shutil.rmtree(work)
        target = work / trial.path
        target.parent.mkdir(parents=True)
        target.write_bytes(trial.on_disk)
        succeeded = tool(work, patch)
        result = target.read_bytes() if target.exists() else None
        outcomes[name] = judge(trial, succeeded, result)
    return outcomes


# --- real model output ----------------------------------------------------------------

REAL_CLASSES = (
    "git applies",
    "git refuses",
    "no intent",
    "drift",
    "counts",
    "stripped_ws",
    "no_final_nl",
    "blank_tail",
)
Files = dict[str, tuple[bytes, bool]]
"""Path -> (bytes, executable) of every file in a work tree."""
_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


@dataclass(frozen=True)
class RealTrial:
    """A real patch (maybe perturbed), the files it applies to, and the intended files."""

    kind: str
    files: dict[str, tuple[bytes, int]]
    diff: str
    expected: Files | None
    """None: the patch has no clear intent, and only a refusal is right."""


def real_trials(patches: list[RealPatch], scratch: Path, rng: random.Random) -> list[RealTrial]:
    """Each patch as written, then perturbed (only patches whose intent git confirms)."""
    trials = []
    for patch in patches:
        intended = _git_result(patch.files, patch.diff, scratch)
        if intended is not None:
            trials.append(RealTrial("git applies", patch.files, patch.diff, intended))
            for kind, perturb in REAL_PERTURB.items():
                diff = perturb(patch.diff, patch.files, rng)
                if diff is not None and diff != patch.diff:
                    trials.append(RealTrial(kind, patch.files, diff, intended))
            continue
        repaired = _git_result(patch.files, _repair(patch.diff), scratch, "--recount")
        kind = "git refuses" if repaired is not None else "no intent"
        trials.append(RealTrial(kind, patch.files, patch.diff, repaired))
    return trials


def _git_result(
    files: dict[str, tuple[bytes, int]], diff: str, scratch: Path, *flags: str
) -> Files | None:
    work = _materialize(files, scratch / "intent")
    patch = scratch / "intent.diff"
    patch.write_bytes(diff.encode("utf-8", errors="surrogateescape"))
    if not _ok(work, "git", "apply", "--whitespace=nowarn", *flags, str(patch)):
        return None
    return snapshot(work)


def _repair(diff: str) -> str:
    """The patch as its author meant it: no whitespace-only tail beyond the last hunk."""
    lines = _LINE.findall(diff)
    end = _last_hunk_end(lines)
    if end is not None and all(not line.strip() for line in lines[end:]):
        lines = lines[:end]
    text = "".join(lines)
    return text if text.endswith("\n") else text + "\n"


def _last_hunk_end(lines: list[str]) -> int | None:
    """Index just past the last hunk's counted lines, or None without counts."""
    starts = [n for n, line in enumerate(lines) if _HEADER.match(line)]
    if not starts:
        return None
    match = _HEADER.match(lines[starts[-1]])
    assert match is not None
    old, new = int(match.group(2) or 1), int(match.group(4) or 1)
    n = starts[-1] + 1
    while n < len(lines) and (old > 0 or new > 0):
        kind = lines[n][:1]
        if kind == "\\":
            n += 1
            continue
        old -= kind in (" ", "-", "\n", "\r")
        new -= kind in (" ", "+", "\n", "\r")
        n += 1
    while n < len(lines) and lines[n].startswith("\\"):
        n += 1
    return n


def _real_drift(diff: str, files: dict[str, tuple[bytes, int]], rng: random.Random) -> str:
    shift = rng.choice([n for n in range(-9, 10) if n])

    def move(match: re.Match[str]) -> str:
        old, new = (max(1, int(match.group(g)) + shift) for g in (1, 3))
        old_n = f",{match.group(2)}" if match.group(2) is not None else ""
        new_n = f",{match.group(4)}" if match.group(4) is not None else ""
        return f"@@ -{old}{old_n} +{new}{new_n} @@"

    return _HEADER.sub(move, diff)


def _real_counts(diff: str, files: dict[str, tuple[bytes, int]], rng: random.Random) -> str:
    def miscount(match: re.Match[str]) -> str:
        old = int(match.group(2) or 1) + rng.choice([-2, -1, 1, 2])
        new = int(match.group(4) or 1) + rng.choice([-2, -1, 1, 2])
        return f"@@ -{match.group(1)},{max(old, 0)} +{match.group(3)},{max(new, 0)} @@"

    return _HEADER.sub(miscount, diff)


def _real_stripped_ws(
    diff: str, files: dict[str, tuple[bytes, int]], rng: random.Random
) -> str | None:
    """An editor's "strip trailing whitespace" run over the diff: context and removed
    lines lose their trailing blanks, and a blank context line its one-space prefix."""
    lines = _LINE.findall(diff)
    out = [
        line[0] + line[1:].rstrip() + "\n"
        if line[:1] in " -" and not line.startswith("--- ") and line.endswith("\n")
        else line
        for line in lines
    ]
    out = ["\n" if line == " \n" else line for line in out]
    return "".join(out) if out != lines else None


def _real_no_final_nl(
    diff: str, files: dict[str, tuple[bytes, int]], rng: random.Random
) -> str | None:
    return diff.rstrip("\n") if diff.endswith("\n") else None


def _real_blank_tail(diff: str, files: dict[str, tuple[bytes, int]], rng: random.Random) -> str:
    return diff + rng.choice(["\n", " \n", "\n\n", "  \n\n"])


REAL_PERTURB: dict[
    str, Callable[[str, dict[str, tuple[bytes, int]], random.Random], str | None]
] = {
    "drift": _real_drift,
    "counts": _real_counts,
    "stripped_ws": _real_stripped_ws,
    "no_final_nl": _real_no_final_nl,
    "blank_tail": _real_blank_tail,
}


def _materialize(files: dict[str, tuple[bytes, int]], work: Path) -> Path:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for path, (data, mode) in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    return work


def snapshot(work: Path) -> Files:
    """Every file under ``work`` (patch's leftovers .orig/.rej aside)."""
    return {
        path.relative_to(work).as_posix(): (path.read_bytes(), bool(path.stat().st_mode & 0o100))
        for path in sorted(work.rglob("*"))
        if path.is_file() and not path.name.endswith((".orig", ".rej"))
    }


def run_real(
    trial: RealTrial, tools: dict[str, Callable[[Path, Path], bool]], scratch: Path
) -> dict[str, str]:
    patch = scratch / "real.diff"
    patch.write_bytes(trial.diff.encode("utf-8", errors="surrogateescape"))
    before = {path: (data, bool(mode & 0o100)) for path, (data, mode) in trial.files.items()}
    outcomes = {}
    for name, tool in tools.items():
        work = _materialize(trial.files, scratch / "real")
        succeeded = tool(work, patch)
        result = snapshot(work)
        if not succeeded:
            outcomes[name] = "refused" if result == before else "partial"
        elif trial.expected is None:
            outcomes[name] = "wrong"
        else:
            outcomes[name] = "correct" if result == trial.expected else "wrong"
    return outcomes


def run_plain_patch(work: Path, patch: Path) -> bool:
    command = ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-r", "-"]
    return _ok(work, *command, "-i", str(patch))


def own_examples() -> list[RealPatch]:
    """Small patches written for this bench, each with a fault real model output has."""
    module = (
        b"import os\n\n\ndef size(path):\n    return os.path.getsize(path)\n\n\n"
        b"def main():\n    print(size('.'))\n"
    )
    twice = b"def a():\n    x = 1\n    return x\n\n\ndef b():\n    x = 1\n    return x\n"
    created = (
        "diff --git a/{0} b/{0}\nnew file mode {1}\n--- /dev/null\n+++ b/{0}\n@@ -0,0 +1,2 @@\n"
    )
    crlf = created.format("notes.txt", "100644") + "+first\r\n+second\r\n"
    script = created.format("run.sh", "100755") + "+#!/bin/sh\n+echo ok\n"
    change = (
        "--- a/tool.py\n+++ b/tool.py\n@@ -4,2 +4,3 @@ import os\n def size(path):\n"
        "+    path = os.fspath(path)\n     return os.path.getsize(path)\n"
        "@@ -8,2 +9,2 @@ def size(path):\n def main():\n"
        "-    print(size('.'))\n+    print(size('..'))\n"
    )
    one_sided = "--- a/dup.py\n+++ b/dup.py\n@@ @@\n     x = 1\n-    return x\n+    return x + 1\n"
    return [
        RealPatch("own", "tail", "own", change + "\n \n", {"tool.py": (module, 0o644)}),
        RealPatch("own", "clean", "own", change, {"tool.py": (module, 0o644)}),
        RealPatch("own", "crlf", "own", crlf, {}),
        RealPatch("own", "mode", "own", script, {}),
        RealPatch("own", "one-sided", "own", one_sided, {"dup.py": (twice, 0o644)}),
    ]


# --- main ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of changes (CI)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="real corpus cache")
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS, help="git mirrors")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    changes = history_changes(2 if args.quick else 50) + package_changes(
        4 if args.quick else 200, rng
    )
    trials = [t for c in changes for k in CLASSES if (t := make_trial(c, k, rng)) is not None]
    timer = Timer()
    tools: dict[str, Callable[[Path, Path], bool]] = {
        "autopack": lambda work, patch: run_autopack(work, patch, timer),
        "git apply": run_git,
        "git apply --recount -iw": run_git_recount,
        "patch --fuzz=3": run_patch,
        "swe-bench ladder": run_swebench,
    }
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    # tmpfs when there is one, so the figures are the tools', not a slow VM disk's
    scratch_base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=scratch_base) as tmp:
        print(f"scratch directory: {tmp}")
        for trial in trials:
            for tool, outcome in run_trial(trial, tools, Path(tmp)).items():
                tally[(trial.kind, tool)][outcome] += 1
        print_table(changes, trials, tally, list(tools), timer)
        real_table(args, tools, Path(tmp), rng)


def real_table(
    args: argparse.Namespace,
    tools: dict[str, Callable[[Path, Path], bool]],
    scratch: Path,
    rng: random.Random,
) -> None:
    """The second table: real model-written patches, as written and perturbed."""
    patches = [] if args.quick else load(args.cache, args.mirrors)
    source = f"real corpus in {args.cache}"
    if not patches:
        patches, source = own_examples(), "examples written for this bench (no real corpus used)"
    real_tools = {
        "autopack": tools["autopack"],
        "git apply": run_git,
        "git apply --recount -iw": run_git_recount,
        "patch": run_plain_patch,
        "patch --fuzz=3": run_patch,
    }
    trials = real_trials(patches, scratch, rng)
    results = [(trial, run_real(trial, real_tools, scratch)) for trial in trials]
    systems = len({p.system for p in patches})
    repos = len({p.repo for p in patches})
    print(
        f"\n{len(patches)} model-written patches ({systems} systems, {repos} repositories), "
        f"{len(trials)} trials; {source}"
    )
    print_real(results, list(real_tools))


def print_real(results: list[tuple[RealTrial, dict[str, str]]], tools: list[str]) -> None:
    counts = Counter(trial.kind for trial, _ in results)
    print("cell = correct/refused/wrong/partial (a refusal is correct only in 'no intent')")
    print(f"{'class':<12} {'n':>4}  " + "  ".join(f"{tool:<23}" for tool in tools))
    for kind in REAL_CLASSES:
        cells = []
        for tool in tools:
            c = Counter(outcome[tool] for trial, outcome in results if trial.kind == kind)
            cells.append(f"{c['correct']}/{c['refused']}/{c['wrong']}/{c['partial']}")
        print(f"{kind:<12} {counts[kind]:>4}  " + "  ".join(f"{cell:<23}" for cell in cells))
    judged = [o for t, o in results if t.expected is not None]
    git_ok = [o for o in judged if o["git apply"] == "correct"]
    git_no = [o for o in judged if o["git apply"] != "correct"]
    rows = [
        ("identical to git where git applies", git_ok, "correct"),
        ("false refusals where git applies", git_ok, "refused"),
        (f"recovered where git refuses (of {len(git_no)})", git_no, "correct"),
    ]
    for label, group, wanted in rows:
        figures = [sum(o[tool] == wanted for o in group) for tool in tools]
        print(f"{label:<45} " + "  ".join(f"{f:<8}" for f in figures))
    for outcome in ("wrong", "partial"):
        figures = [sum(o[tool] == outcome for _, o in results) for tool in tools]
        print(f"{outcome + ' (all classes)':<45} " + "  ".join(f"{f:<8}" for f in figures))


def print_table(
    changes: list[Change],
    trials: list[Trial],
    tally: dict[tuple[str, str], Counter[str]],
    tools: list[str],
    timer: Timer,
) -> None:
    counts = Counter(trial.kind for trial in trials)
    print(f"{len(changes)} real changes, {len(trials)} trials; cell = correct% c/r/w/p")
    print(f"{'class':<12} {'n':>4}  " + "  ".join(f"{tool:<24}" for tool in tools))
    for kind in CLASSES:
        cells = [_cell(tally[(kind, tool)], counts[kind]) for tool in tools]
        print(f"{kind:<12} {counts[kind]:>4}  " + "  ".join(f"{c:<24}" for c in cells))
    overall = []
    for tool in tools:
        total = sum(tally[(k, tool)]["correct"] for k in CLASSES if k not in UNRECOVERABLE)
        n = sum(counts[k] for k in CLASSES if k not in UNRECOVERABLE)
        overall.append(f"{100 * total / max(n, 1):.1f}%")
    label = "recoverable"
    print(f"{label:<12} {'':>4}  " + "  ".join(f"{c:<24}" for c in overall))
    wrong = [sum(tally[(k, tool)]["wrong"] for k in CLASSES) for tool in tools]
    partial = [sum(tally[(k, tool)]["partial"] for k in CLASSES) for tool in tools]
    print(f"{'wrong':<12} {'':>4}  " + "  ".join(f"{w:<24}" for w in wrong))
    print(f"{'partial':<12} {'':>4}  " + "  ".join(f"{p:<24}" for p in partial))
    wall = timer.hunks / timer.wall if timer.wall else 0.0
    cpu = timer.hunks / timer.cpu if timer.cpu else 0.0
    print(
        f"autopack: {timer.hunks} hunks (parse, match, write) in {timer.wall:.2f}s wall = "
        f"{wall:,.0f} hunks/s; {timer.cpu:.2f}s CPU = {cpu:,.0f} hunks/s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


def _cell(counter: Counter[str], n: int) -> str:
    if not n:
        return "-"
    c, r, w, p = (counter[key] for key in ("correct", "refused", "wrong", "partial"))
    return f"{100 * c / n:5.1f}% {c}/{r}/{w}/{p}"


if __name__ == "__main__":
    main()
