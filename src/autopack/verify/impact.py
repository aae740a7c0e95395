"""Test-impact selection: which tests a change can affect, so they run first.

The map is recorded once with the baseline. With ``coverage`` installed it is a
per-test line map (which tests executed each line of the base tree); without it, a
static import graph (which files each test file imports, transitively). Selection is
only about fast feedback: the full suite still runs before a phase may pass, so a test
the map misses costs time, never correctness.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SKIP_DIRS = {".git", ".autopack", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build"}


def coverage_available() -> bool:
    return importlib.util.find_spec("coverage") is not None


def coverage_map(data_file: Path, root: Path) -> dict[str, Any]:
    """Read the plugin's coverage data: ``{"tests": [...], "lines": {file: {line: [i]}}}``.

    Test IDs are stored once and referenced by index, which keeps the map small.
    """
    from coverage import CoverageData

    data = CoverageData(basename=str(data_file))
    data.read()
    tests: list[str] = []
    index: dict[str, int] = {}
    lines: dict[str, dict[str, list[int]]] = {}
    for measured in sorted(data.measured_files()):
        try:
            rel = Path(measured).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        per_line: dict[str, list[int]] = {}
        for lineno, contexts in data.contexts_by_lineno(measured).items():
            ids = [index.setdefault(c, len(index)) for c in contexts if c]
            if ids:
                per_line[str(lineno)] = sorted(set(ids))
        if per_line:
            lines[rel] = per_line
    tests = sorted(index, key=index.__getitem__)
    return {"strategy": "coverage", "tests": tests, "lines": lines}


def _python_files(root: Path) -> Iterable[Path]:
    for path in root.rglob("*.py"):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def _module_names(path: Path, root: Path) -> list[str]:
    """Dotted names a file can be imported by: from its top package, and from ``src/``."""
    parts = [path.stem] if path.stem != "__init__" else []
    parent = path.parent
    while (parent / "__init__.py").exists() and parent != root:
        parts.insert(0, parent.name)
        parent = parent.parent
    return [".".join(parts)] if parts else []


def _imports(path: Path, module: str) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([p for p in anchor if p] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph_map(root: Path) -> dict[str, Any]:
    """Per test file, the project files it imports (transitively, parent packages included)."""
    by_module: dict[str, str] = {}
    files = list(_python_files(root))
    for path in files:
        for name in _module_names(path, root):
            by_module.setdefault(name, path.relative_to(root).as_posix())
    edges: dict[str, set[str]] = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        module = (_module_names(path, root) or [path.stem])[0]
        deps: set[str] = set()
        for name in _imports(path, module):
            pieces = name.split(".")
            for i in range(1, len(pieces) + 1):
                target = by_module.get(".".join(pieces[:i]))
                if target and target != rel:
                    deps.add(target)
        edges[rel] = deps
    tests = {rel: sorted(_closure(rel, edges)) for rel in edges if _is_test_file(rel)}
    return {"strategy": "import_graph", "files": tests}


def _closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for dep in edges.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _is_test_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def changed_base_lines(before: str, after: str) -> set[int]:
    """Line numbers in the *base* version that an edit replaced, deleted or sits between."""
    old = before.splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=after.splitlines(), autojunk=False)
    lines: set[int] = set()
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            lines.update(range(i1 + 1, i2 + 1))
        else:  # a pure insertion: the lines around it are the ones whose behaviour changes
            lines.update(n for n in (i1, i1 + 1) if 1 <= n <= len(old))
    return lines


def function_spans(source: str) -> list[tuple[int, int]]:
    """First and last line of every function and method in ``source``, decorators included."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans.append((first, node.end_lineno or node.lineno))
    return spans


def select_tests(
    impact: Mapping[str, Any],
    changed: Mapping[str, set[int] | None],
    all_tests: Sequence[str],
    functions: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> list[str]:
    """Tests affected by ``changed`` (file -> changed base lines, ``None`` = whole file).

    ``functions`` gives each changed file's function spans in the base tree, so a changed
    line no test executed selects the tests that ran its function, not the whole file.
    """
    if impact.get("strategy") == "coverage":
        chosen, unplaced = _select_by_coverage(impact, changed, functions or {})
        if unplaced and "imports" in impact:
            chosen |= _select_by_imports(impact["imports"], unplaced, all_tests)
    else:
        chosen = _select_by_imports(impact, changed, all_tests)
    for test in all_tests:  # an edited test file always reruns its own tests
        if test.split("::", 1)[0] in changed:
            chosen.add(test)
    known = set(all_tests)
    return sorted(t for t in chosen if t in known)


def _select_by_coverage(
    impact: Mapping[str, Any],
    changed: Mapping[str, set[int] | None],
    functions: Mapping[str, Sequence[tuple[int, int]]],
) -> tuple[set[str], dict[str, set[int] | None]]:
    """Per changed line: the tests that ran it, else that ran its function.

    A line in neither (a module-level edit, a file no test ran) can affect any test that
    uses the module without running that line: its file selects every test that ran the
    file, and is returned so the import graph adds the tests that import it.
    """
    tests: list[str] = impact["tests"]
    chosen: set[int] = set()
    unplaced: dict[str, set[int] | None] = {}
    for path, lines in changed.items():
        per_line: dict[str, list[int]] = impact["lines"].get(path, {})
        for line in lines or ():
            picked = _tests_of_line(per_line, line, functions.get(path, ()))
            if picked is None:
                unplaced[path] = lines
            chosen |= picked or set()
        if lines is None or not per_line:
            unplaced[path] = lines
        if path in unplaced:
            chosen |= {i for hit in per_line.values() for i in hit}
    return {tests[i] for i in chosen}, unplaced


def _tests_of_line(
    per_line: Mapping[str, list[int]], line: int, spans: Sequence[tuple[int, int]]
) -> set[int] | None:
    """Tests that ran ``line``, or else any line of its innermost function; ``None``: neither."""
    if per_line.get(str(line)):
        return set(per_line[str(line)])
    around = [(first, last) for first, last in spans if first <= line <= last]
    if not around:
        return None
    first, last = min(around, key=lambda span: span[1] - span[0])
    picked = {i for n in range(first, last + 1) for i in per_line.get(str(n), ())}
    return picked or None


def _select_by_imports(
    impact: Mapping[str, Any], changed: Mapping[str, set[int] | None], all_tests: Sequence[str]
) -> set[str]:
    files: dict[str, list[str]] = impact.get("files", {})
    hit_files = {test for test, deps in files.items() if set(deps).intersection(changed)}
    return {t for t in all_tests if t.split("::", 1)[0] in hit_files}
