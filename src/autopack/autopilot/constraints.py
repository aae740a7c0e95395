"""The intention's constraints a machine can check on a change: frozen paths, frozen
dependencies, public names that must stay defined.

The gate checks every attempt of a run against the constraints recorded when the run
was created (``intention_constraints`` in its settings; rule ``intention_violated``),
and the autopilot checks every landed run again before its branch moves.
"""

from __future__ import annotations

import ast
import configparser
import tomllib
from pathlib import Path
from typing import Any

from autopack.autopilot.intention import Constraints
from autopack.plan import path_matches
from autopack.workspace import git

REQUIREMENTS_PREFIX = "requirements"


def violations(root: Path, constraints: Constraints, old: str, new: str) -> list[str]:
    """What the change from ``old`` to ``new`` (commits or trees) breaks (empty: nothing)."""
    changed = _git(root, "diff", "--name-only", "-z", old, new).split("\0")
    changed = [path for path in changed if path]
    found = [
        f"{path} is frozen ({pattern})"
        for path in changed
        for pattern in constraints.frozen_paths
        if path_matches(path, pattern)
    ]
    if constraints.frozen_dependencies:
        found += [
            f"{path} changes the declared dependencies"
            for path in changed
            if _dependencies(root, old, path) != _dependencies(root, new, path)
        ]
    for name in constraints.public_names:
        module, _, symbol = name.partition(":")
        before = _top_level_names(root, old, module)
        if symbol in before and symbol not in _top_level_names(root, new, module):
            found.append(f"public name {name} was removed")
    return found


def _dependencies(root: Path, commit: str, path: str) -> Any:
    """The dependency declarations of one file at a commit (``None``: it declares none)."""
    name = path.rsplit("/", 1)[-1]
    text = _show(root, commit, path)
    if name.startswith(REQUIREMENTS_PREFIX) and name.endswith((".txt", ".in")):
        lines = (line.split("#", 1)[0].strip() for line in (text or "").splitlines())
        return sorted(line for line in lines if line)
    if name == "pyproject.toml" and text is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return text  # unreadable: any change to it counts
        project = data.get("project", {})
        build = data.get("build-system", {})
        return [
            project.get("dependencies"),
            project.get("optional-dependencies"),
            build.get("requires"),
        ]
    if name == "setup.cfg" and text is not None:
        parser = configparser.ConfigParser()
        try:
            parser.read_string(text)
        except configparser.Error:
            return text
        return [
            parser.get("options", "install_requires", fallback=None),
            dict(parser["options.extras_require"]) if "options.extras_require" in parser else None,
        ]
    return None


def _top_level_names(root: Path, commit: str, module: str) -> set[str]:
    """Functions, classes and assigned names at the top of a module at a commit."""
    text = _show(root, commit, module)
    try:
        tree = ast.parse(text or "")
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _show(root: Path, commit: str, path: str) -> str | None:
    blob = git.read_blob(root, f"{commit}:{path}")
    return blob.decode("utf-8", "replace") if blob is not None else None


def _git(root: Path, *args: str) -> str:
    return git.git(root, *args)
