"""The risk score of a change, itemised so a reviewer sees where every point came from.

The weights are deliberately simple and visible: a protected path outweighs everything,
weakening a test is treated as nearly as bad (deleting or editing a test is the
cheapest way to make a suite pass), and size adds a little.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autopack.plan import path_matches

PROTECTED_POINTS = 100
SENSITIVE_POINTS = 30
TEST_EDITED_POINTS = 35
TEST_DELETED_POINTS = 50
NEW_DEPENDENCY_POINTS = 15
RUNNER_REFERENCE_POINTS = 35
DELETED_LINES_PER_POINT = 10
DELETED_LINES_CAP = 30
FREE_FILES = 3
POINTS_PER_EXTRA_FILE = 2
FILES_CAP = 20

MANIFESTS = ("requirements", "pyproject.toml", "setup.py", "setup.cfg", "package.json")
# Code under test that names the test runner can behave one way under pytest and another
# in use, or rewrite pytest's verdict when the tests import it: a person looks first.
RUNNER_REFERENCE = re.compile(r"\b_?pytest\b|PYTEST_|\bunittest\b|\bsys\.(settrace|setprofile)\b")
DEPENDENCY_LINE = re.compile(r"""^\+\s*["']?[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*[<>=~!]""")


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Glob match where ``**/`` also matches at the top level (``**/x`` matches ``x``)."""
    for pattern in patterns:
        if fnmatch.fnmatch(path, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(path, pattern[3:]):
            return True
    return False


def is_test_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    in_tests = any(part in ("tests", "test") for part in path.split("/")[:-1])
    return (
        name.startswith("test_") or name.endswith("_test.py") or (in_tests and name.endswith(".py"))
    )


@dataclass(frozen=True)
class RiskItem:
    """One contribution to the score."""

    kind: str
    path: str
    points: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RiskReport:
    """The total and every item it is made of."""

    score: int
    items: list[RiskItem] = field(default_factory=list)

    def paths_of(self, kind: str) -> list[str]:
        return [item.path for item in self.items if item.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskReport:
        return cls(int(data["score"]), [RiskItem(**item) for item in data.get("items", [])])


@dataclass
class FileDiff:
    """What the diff does to one file."""

    path: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    deleted: bool = False
    created: bool = False


def parse_diff(diff: str) -> list[FileDiff]:
    """Per-file added and removed lines of a unified (git) diff."""
    files: list[FileDiff] = []
    current: FileDiff | None = None
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            current = FileDiff(line.split(" b/", 1)[-1])
            files.append(current)
        elif current is None or line.startswith(("---", "+++", "@@", "index ")):
            continue
        elif line.startswith("deleted file mode"):
            current.deleted = True
        elif line.startswith("new file mode"):
            current.created = True
        elif line.startswith("+"):
            current.added.append(line)
        elif line.startswith("-"):
            current.removed.append(line)
    return files


def _path_items(path: str, protected: Sequence[str], sensitive: Sequence[str]) -> list[RiskItem]:
    # Also as the path policy matches (a directory covers its contents): a protected path a
    # phase was allowed to write must always be counted here, or it would pass unasked.
    if matches(path, protected) or any(path_matches(path, glob) for glob in protected):
        return [RiskItem("protected_path", path, PROTECTED_POINTS, "protected path written")]
    if matches(path, sensitive):
        return [RiskItem("sensitive_path", path, SENSITIVE_POINTS, "sensitive path written")]
    return []


def _test_items(change: FileDiff) -> list[RiskItem]:
    if not is_test_path(change.path) or change.created:
        return []
    if change.deleted:
        return [RiskItem("test_deleted", change.path, TEST_DELETED_POINTS, "test file deleted")]
    if change.removed:
        detail = f"{len(change.removed)} line(s) of an existing test removed or changed"
        return [RiskItem("test_edited", change.path, TEST_EDITED_POINTS, detail)]
    return []


def _runner_items(change: FileDiff) -> list[RiskItem]:
    """Source (not a test, not a conftest) whose added lines refer to the test runner."""
    name = change.path.rsplit("/", 1)[-1]
    if not name.endswith(".py") or is_test_path(change.path) or name == "conftest.py":
        return []
    found = [line[1:].strip() for line in change.added if RUNNER_REFERENCE.search(line[1:])]
    if not found:
        return []
    detail = f"source refers to the test runner: {found[0][:80]}"
    return [RiskItem("runner_reference", change.path, RUNNER_REFERENCE_POINTS, detail)]


def _dependency_items(change: FileDiff) -> list[RiskItem]:
    name = change.path.rsplit("/", 1)[-1]
    if not name.startswith(MANIFESTS):
        return []
    removed = {line[1:].strip() for line in change.removed}
    new = [line[1:].strip() for line in change.added if DEPENDENCY_LINE.match(line)]
    return [
        RiskItem("new_dependency", change.path, NEW_DEPENDENCY_POINTS, dep)
        for dep in new
        if dep not in removed
    ]


def _size_items(changes: list[FileDiff], files: set[str]) -> list[RiskItem]:
    items = []
    deleted = sum(len(change.removed) for change in changes)
    if deleted >= DELETED_LINES_PER_POINT:
        points = min(DELETED_LINES_CAP, deleted // DELETED_LINES_PER_POINT)
        items.append(RiskItem("deleted_lines", "", points, f"{deleted} line(s) deleted"))
    if len(files) > FREE_FILES:
        points = min(FILES_CAP, (len(files) - FREE_FILES) * POINTS_PER_EXTRA_FILE)
        items.append(RiskItem("files_touched", "", points, f"{len(files)} files touched"))
    return items


def score_risk(
    diff: str,
    changed_files: Sequence[str],
    *,
    protected: Sequence[str] = (),
    sensitive: Sequence[str] = (),
) -> RiskReport:
    """Score a change from its diff and the list of files it touched."""
    changes = parse_diff(diff)
    files = set(changed_files) | {change.path for change in changes}
    items: list[RiskItem] = []
    for path in sorted(files):
        items += _path_items(path, protected, sensitive)
    for change in changes:
        items += _test_items(change) + _runner_items(change) + _dependency_items(change)
    items += _size_items(changes, files)
    return RiskReport(sum(item.points for item in items), items)
