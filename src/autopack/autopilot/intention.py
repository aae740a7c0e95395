"""The intention: what a project is for, and what "done" means, in one checked file.

A person writes ``.autopack/intention.yaml``; the gap scan measures the repository
against it and the Planner drafts within it. It is read by Autopack's strict YAML loader
(no aliases, no repeated keys, bounded size and depth) and validated like a plan:
unknown keys, wrong types and bad paths are reported together, each with file, line and
field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopack.config import STATE_DIR
from autopack.plan import Budget, PlanIssue, _bad_path, _line_map, _Locator
from autopack.safeyaml import MAX_BYTES, Loc, YamlRefused, field_name, load_yaml

INTENTION_FILE = f"{STATE_DIR}/intention.yaml"
"""Where the intention lives in the target repository."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SuccessCriteria(_Strict):
    """What must hold for the work to be finished; each one is checked mechanically."""

    tests: list[str] = Field(
        default_factory=list, description="Test IDs (pytest node IDs) that must pass."
    )
    commands: list[str] = Field(
        default_factory=list, description="Commands that must exit 0, run in the sandbox."
    )
    files: list[str] = Field(default_factory=list, description="Files that must exist.")


class Constraints(_Strict):
    """What must and must not happen on the way."""

    must: list[str] = Field(default_factory=list, description="Statements every role is told.")
    must_not: list[str] = Field(default_factory=list, description="What no change may do.")
    frozen_paths: list[str] = Field(
        default_factory=list, description="Files or globs no change may write."
    )
    frozen_dependencies: bool = Field(
        default=False, description="No change to the declared dependencies."
    )
    public_names: list[str] = Field(
        default_factory=list,
        description="Public names that must stay defined, as 'path/to/module.py:name'.",
    )


class IntentionBudgets(_Strict):
    """What the autonomy loop may spend in total."""

    iterations: int = Field(default=5, ge=1, le=100, description="Scan-plan-run rounds at most.")
    total: Budget = Field(default_factory=Budget, description="Caps over every round together.")


class Intention(_Strict):
    """A validated intention. Build one with :func:`load_intention`."""

    north_star: str = Field(min_length=1, description="What the project is for, in a sentence.")
    success_criteria: SuccessCriteria = Field(default_factory=SuccessCriteria)
    constraints: Constraints = Field(default_factory=Constraints)
    preferences: list[str] = Field(
        default_factory=list, description="How to do it, when there is a choice."
    )
    allowed_paths: list[str] = Field(
        default_factory=lambda: ["**"], description="Files or globs the work may touch."
    )
    out_of_scope: list[str] = Field(
        default_factory=list, description="Files or globs the work leaves alone."
    )
    budgets: IntentionBudgets = Field(default_factory=IntentionBudgets)

    def allows(self, path: str) -> bool:
        """Whether ``path`` is inside the allowed paths and outside the out-of-scope ones."""
        from autopack.plan import path_matches

        inside = any(path_matches(path, pattern) for pattern in self.allowed_paths)
        return inside and not any(path_matches(path, p) for p in self.out_of_scope)

    def brief(self) -> str:
        """One line the Builder and the Auditor read with the run's goal (an autopilot run
        carries it there: their prompts show the run goal)."""
        parts = [f"north star: {self.north_star}"]
        c = self.constraints
        parts += [f"must: {'; '.join(c.must)}"] * bool(c.must)
        parts += [f"must not: {'; '.join(c.must_not)}"] * bool(c.must_not)
        parts += [f"never write: {', '.join(c.frozen_paths)}"] * bool(c.frozen_paths)
        parts += ["no dependency changes"] * c.frozen_dependencies
        parts += [f"keep defined: {', '.join(c.public_names)}"] * bool(c.public_names)
        parts += [f"prefer: {'; '.join(self.preferences)}"] * bool(self.preferences)
        return "(intention: " + " | ".join(parts) + ")"

    def prompt_text(self) -> str:
        """The intention as the roles read it."""
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_defaults=True), sort_keys=False
        ).strip()


class IntentionError(ValueError):
    """An intention that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PlanIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def intention_path(root: Path) -> Path:
    return root / INTENTION_FILE


def load_intention(path: Path) -> Intention:
    """Read and validate an intention file; raise :class:`IntentionError` on any problem."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise IntentionError(
            [PlanIssue(file=str(path), line=0, field="-", message=message)]
        ) from exc
    return parse_intention_text(text, source=str(path))


def parse_intention_text(text: str, source: str = "<intention>") -> Intention:
    """Validate intention text; raise :class:`IntentionError` listing every problem."""
    try:
        data, root = load_yaml(text, source)
    except YamlRefused as exc:
        issue = PlanIssue(
            file=source, line=exc.line, field=field_name(exc.loc), message=exc.message
        )
        raise IntentionError([issue]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise IntentionError(
            [PlanIssue(file=source, line=line, field="-", message=f"not valid YAML: {exc}")]
        ) from exc
    locate = _Locator(source, _line_map(root) if root is not None else {})
    if not isinstance(data, dict):
        raise IntentionError([locate((), "the intention must be a mapping with 'north_star'")])
    try:
        intention = Intention.model_validate(data)
    except ValidationError as exc:
        raise IntentionError([locate(tuple(e["loc"]), e["msg"]) for e in exc.errors()]) from exc
    issues = list(_semantic_issues(intention, locate))
    if issues:
        raise IntentionError(issues)
    return intention


def _semantic_issues(intention: Intention, locate: _Locator) -> Iterator[PlanIssue]:
    paths: list[tuple[Loc, str]] = [
        *((("allowed_paths", i), p) for i, p in enumerate(intention.allowed_paths)),
        *((("out_of_scope", i), p) for i, p in enumerate(intention.out_of_scope)),
        *(
            (("constraints", "frozen_paths", i), p)
            for i, p in enumerate(intention.constraints.frozen_paths)
        ),
        *(
            (("success_criteria", "files", i), p)
            for i, p in enumerate(intention.success_criteria.files)
        ),
    ]
    for i, test_id in enumerate(intention.success_criteria.tests):
        paths.append((("success_criteria", "tests", i), test_id.split("::", 1)[0]))
    for i, name in enumerate(intention.constraints.public_names):
        loc: Loc = ("constraints", "public_names", i)
        module, colon, symbol = name.partition(":")
        if not colon or not symbol.isidentifier() or not module.endswith(".py"):
            yield locate(loc, f"{name!r} is not 'path/to/module.py:name'")
        else:
            paths.append((loc, module))
    for loc, path in paths:
        problem = _bad_path(path)
        if problem:
            yield locate(loc, problem)
    for i, command in enumerate(intention.success_criteria.commands):
        if not command.strip():
            yield locate(("success_criteria", "commands", i), "empty command")
    if not intention.allowed_paths:
        yield locate(("allowed_paths",), "no allowed path: nothing could ever change")
