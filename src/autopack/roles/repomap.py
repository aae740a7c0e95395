"""The repo map: files and their top-level symbols, ranked, within a token budget.

The Builder and the Planner need to know what exists without reading everything. Files
the phase is about (``focus``) come first with their symbols, then files they mention
and files near them; whatever does not fit is summarised as counts per directory, so
the map never exceeds its budget however large the repository.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from autopack.plan import path_matches
from autopack.roles.tokens import estimate_tokens

SKIP_DIRS = frozenset(
    {
        ".git",
        ".autopack",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "dist",
        "build",
        ".idea",
        ".vscode",
    }
)
MAX_OUTLINE_BYTES = 256_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOL_PATTERNS: dict[str, re.Pattern[str]] = {
    ".js": re.compile(
        r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\*?|class|const|let)\s+(\w+)", re.M
    ),
    ".go": re.compile(r"^(?:func(?:\s+\([^)]*\))?|type)\s+(\w+)", re.M),
    ".rs": re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?(?:fn|struct|enum|trait|mod|impl)\s+(\w+)", re.M),
    ".java": re.compile(
        r"^\s*(?:public|protected|private)?\s*(?:abstract\s+|final\s+)?(?:class|interface|enum|record)\s+(\w+)",
        re.M,
    ),
    ".rb": re.compile(r"^\s*(?:class|module|def)\s+([\w.?!]+)", re.M),
}
_SYMBOL_PATTERNS[".ts"] = _SYMBOL_PATTERNS[".tsx"] = _SYMBOL_PATTERNS[".jsx"] = _SYMBOL_PATTERNS[
    ".mjs"
] = _SYMBOL_PATTERNS[".js"]
_SYMBOL_PATTERNS[".kt"] = _SYMBOL_PATTERNS[".cs"] = _SYMBOL_PATTERNS[".java"]


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as a sorted relative POSIX path.

    Symlinks are skipped, not followed: the map must not describe, or leak, anything
    outside the repository. A worktree's ``.git`` is a file, so names are skipped for
    files as well as folders.
    """
    found: list[str] = []
    pending = [""]
    settled = time.time_ns() - SETTLED_NS
    while pending:  # strings and scandir, not Path objects: this runs over every file
        folder = pending.pop()
        files, folders = _folder_entries(os.path.join(root, folder) if folder else root, settled)
        prefix = f"{folder}/" if folder else ""
        found.extend([prefix + name for name in files])
        pending.extend([prefix + name for name in folders])
    return sorted(found)


SETTLED_NS = 1_000_000_000
"""A folder last changed longer ago than this may have its listing remembered: a change
after the listing then gets a later timestamp (they tick every few milliseconds)."""
_MAX_REMEMBERED = 50_000
_FOLDERS: dict[tuple[int, int], tuple[int, int, list[str], list[str]]] = {}
"""Listings by folder identity (device, inode) with its mtime and ctime then. Adding,
removing or renaming an entry changes a folder's mtime, and a new folder on a reused
inode has a new ctime; keyed by inode, the listings survive a worktree's move."""


def _folder_entries(path: str | Path, settled: int) -> tuple[list[str], list[str]]:
    """Names of the regular files and of the real subfolders of one folder."""
    info = os.stat(path)
    key = (info.st_dev, info.st_ino)
    known = _FOLDERS.get(key)
    if known is not None and known[:2] == (info.st_mtime_ns, info.st_ctime_ns):
        return known[2], known[3]
    files: list[str] = []
    folders: list[str] = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name in SKIP_DIRS or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
            elif entry.is_file(follow_symlinks=False):
                files.append(entry.name)
    if max(info.st_mtime_ns, info.st_ctime_ns) < settled:
        if len(_FOLDERS) >= _MAX_REMEMBERED:
            _FOLDERS.clear()
        _FOLDERS[key] = (info.st_mtime_ns, info.st_ctime_ns, files, folders)
    return files, folders


def outline(path: Path) -> list[str]:
    """Top-level symbols of one file, one short line each ([] when none or unreadable)."""
    try:
        if path.stat().st_size > MAX_OUTLINE_BYTES:
            return []
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    key = (path.suffix, hashlib.blake2b(text.encode(), digest_size=16).digest())
    known = _OUTLINES.get(key)
    if known is None:
        known = _outline_text(path.suffix, text)
        if len(_OUTLINES) >= _MAX_REMEMBERED:
            _OUTLINES.clear()
        _OUTLINES[key] = known
    return list(known)


_OUTLINES: dict[tuple[str, bytes], list[str]] = {}
"""Outlines by file suffix and content hash: each phase maps mostly the same files again."""


def _outline_text(suffix: str, text: str) -> list[str]:
    if suffix == ".py":
        return _python_outline(text)
    pattern = _SYMBOL_PATTERNS.get(suffix)
    return [f"{name}" for name in dict.fromkeys(pattern.findall(text))] if pattern else []


def _python_outline(text: str) -> list[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines: list[str] = []
    for node in tree.body:
        if getattr(node, "name", "").startswith("_"):
            continue  # private: not part of what other files can use
        if isinstance(node, ast.ClassDef):
            methods = [
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and not (item.name.startswith("_") and item.name != "__init__")
            ]
            lines.append(f"class {node.name}" + (f": {', '.join(methods)}" if methods else ""))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = ", ".join(a.arg for a in node.args.args if a.arg not in {"self", "cls"})
            lines.append(f"def {node.name}({args})")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [
                t.id
                for t in targets
                if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("_")
            ]
            lines.extend(names)
    return lines


def rank_files(root: Path, files: Sequence[str], focus: Sequence[str]) -> list[str]:
    """Order files by relevance to ``focus`` patterns: matches, mentioned, nearby, rest."""
    covers = scope_matcher(focus)
    focused = [f for f in files if covers(f)]
    focus_set = set(focused)
    words = mentioned_words(root, focused)
    focus_dirs = {tuple(f.split("/")[:-1]) for f in focused}
    near_by_folder: dict[str, int] = {}  # files share folders: one comparison per folder
    ranked = []
    for f in files:
        folder = f.rpartition("/")[0]
        near = near_by_folder.get(folder)
        if near is None:
            parts = tuple(folder.split("/")) if folder else ()
            near = max((_shared_prefix(parts, d) for d in focus_dirs), default=0)
            near_by_folder[folder] = near
        key = module_key(f)
        mentioned = words.get(key, 0) if len(key) >= 3 else 0
        group = 0 if f in focus_set else (1 if mentioned else 2)
        ranked.append((group, -mentioned, -near, f.count("/"), f))
    ranked.sort()  # the rank ends with the path itself: no two ranks are equal
    return [rank[-1] for rank in ranked]


_MAGIC = frozenset("*?[")


def scope_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """``lambda path: any(path_matches(path, p) for p in patterns)``, fast over many paths.

    A pattern's leading segments without wildcards must be the path's first segments:
    most paths fail at once, lacking the last of them as a substring (one regex search),
    and for a path in normal form (no empty or ``.`` segment) the rest is a string
    comparison. A pattern without wildcards needs nothing more (it names the file or a
    folder above it); the others go through ``path_matches`` for the paths that pass.
    The repo map runs this over every file of the repository.
    """
    literal: list[tuple[str, ...]] = []
    globs: list[tuple[tuple[str, ...], str]] = []
    for pattern in patterns:
        parts = _segments(pattern.rstrip("/"))
        fixed = 0
        while fixed < len(parts) and _MAGIC.isdisjoint(parts[fixed]):
            fixed += 1
        if fixed == len(parts):
            literal.append(parts)
        else:
            globs.append((parts[:fixed], pattern))
    if () in literal:
        return lambda path: True  # an empty pattern covers the whole tree
    if not patterns:
        return lambda path: False
    named = tuple("/".join(parts) for parts in literal)
    below = tuple(f"{name}/" for name in named)
    glob_under = [("/".join(fixed), pattern) for fixed, pattern in globs]
    # A covered path has the last fixed segment of some pattern among its segments.
    needles = [parts[-1] for parts in literal] + [fixed[-1] for fixed, _ in globs if fixed]
    hint: Callable[[str], object] = re.compile("|".join(map(re.escape, needles))).search
    if any(not fixed for fixed, _ in globs):
        hint = _anything

    def covers(path: str) -> bool:
        if hint(path) is None:
            return False
        if not _is_normal(path):
            return _covers_parts(_segments(path), path, literal, globs)
        if path in named or path.startswith(below):
            return True
        return any(_under(path, fixed) and path_matches(path, p) for fixed, p in glob_under)

    return covers


def _anything(path: str) -> bool:
    return True


def _covers_parts(
    parts: tuple[str, ...],
    path: str,
    literal: list[tuple[str, ...]],
    globs: list[tuple[tuple[str, ...], str]],
) -> bool:
    if any(parts[: len(prefix)] == prefix for prefix in literal):
        return True
    return any(
        parts[: len(prefix)] == prefix and path_matches(path, pattern) for prefix, pattern in globs
    )


def _under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or below it (every path is below ``""``)."""
    return not folder or path == folder or path.startswith(f"{folder}/")


def _is_normal(path: str) -> bool:
    """Whether ``path`` splits on ``/`` into exactly its segments (none empty, none ``.``)."""
    return not (
        path in ("", ".")
        or path.startswith(("/", "./"))
        or path.endswith(("/", "/."))
        or "//" in path
        or "/./" in path
    )


def _segments(path: str) -> tuple[str, ...]:
    """Segments as :func:`autopack.plan.path_matches` splits a path."""
    parts = path.split("/")
    if "" in parts or "." in parts:
        return tuple(part for part in parts if part not in ("", "."))
    return tuple(parts)


def module_key(path: str) -> str:
    """The name other files use for ``path`` (its stem; its folder for ``__init__``)."""
    folder, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return folder.rpartition("/")[2] if stem == "__init__" else stem


def _shared_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def mentioned_words(root: Path, focused: Iterable[str], max_files: int = 200) -> Counter[str]:
    """How many of the ``focused`` files mention each identifier."""
    words: Counter[str] = Counter()
    for rel in list(focused)[:max_files]:
        try:
            text = (root / rel).read_text(encoding="utf-8")[:MAX_OUTLINE_BYTES]
        except (OSError, UnicodeDecodeError):
            continue
        words.update(set(_WORD.findall(text)))
    return words


def repo_map(root: Path, *, token_budget: int, focus: Sequence[str] = ()) -> str:
    """Files and top-level symbols of ``root``, most relevant first, within ``token_budget``.

    ``focus`` holds paths or scope patterns (``src/pkg/**``) the reader cares about.
    """
    files = list_files(root)
    ranked = rank_files(root, files, focus)
    tail_reserve = min(token_budget // 5, 200)
    lines: list[str] = []
    used = 0
    shown = 0
    for rel in ranked:
        symbols = outline(root / rel)
        full = "\n".join([rel, *(f"  {s}" for s in symbols)])
        cost = estimate_tokens(full + "\n")
        if used + cost > token_budget - tail_reserve:
            cost = estimate_tokens(rel + "\n")
            full = rel
            if used + cost > token_budget - tail_reserve:
                break
        lines.append(full)
        used += cost
        shown += 1
    lines.extend(_tail(ranked[shown:], token_budget - used))
    return "\n".join(lines)


def _tail(rest: Sequence[str], budget: int) -> list[str]:
    """Summarise files that did not fit as counts per directory, within ``budget``."""
    if not rest:
        return []
    counts = Counter(f.rpartition("/")[0] or "." for f in rest)  # what Path(f).parent gives
    footer = f"... {len(rest)} more files not shown"
    budget -= estimate_tokens(footer + "\n")
    lines: list[str] = []
    for folder, count in counts.most_common():
        line = f"{folder}/ ({count} more files)"
        cost = estimate_tokens(line + "\n")
        if cost > budget:
            break
        lines.append(line)
        budget -= cost
    return [*lines, footer] if budget >= 0 else []
