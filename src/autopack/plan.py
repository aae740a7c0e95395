"""The plan: what a person asks Autopack to build, as tiers of phases.

A plan is YAML (JSON is accepted too: it is read by the same YAML loader, so an
error in a plan sent to the API carries the same line numbers as one in a file).
Validation is strict: unknown keys, wrong types and every semantic mistake we can
detect before a run starts are reported together, each with file, line and field.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from autopack.globs import path_matches as path_matches
from autopack.safeyaml import MAX_BYTES, Loc, YamlRefused, field_name, load_yaml

Risk = Literal["low", "medium", "high"]
MAX_PHASES = 500
"""Most phases a plan may have; with :data:`autopack.safeyaml.MAX_BYTES` and
:data:`~autopack.safeyaml.MAX_DEPTH` this bounds what checking a plan costs."""
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
MCP_TOOL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,30}\.[A-Za-z0-9_-]{1,64}$"
"""``SERVER.TOOL``: a server of ``[mcp.servers]`` and one of its tools."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Budget(_Strict):
    """Caps for a run or a phase; ``None`` means no cap of that kind."""

    tokens: int | None = Field(default=None, gt=0, description="Input plus output tokens.")
    cost_usd: float | None = Field(default=None, gt=0, description="Spend in US dollars.")
    model_calls: int | None = Field(default=None, gt=0, description="Number of model calls.")
    wall_seconds: float | None = Field(default=None, gt=0, description="Elapsed time.")


class Scope(_Strict):
    """What a phase may write (``paths``), what it may read as context (``read_only``), and
    which protected paths it must write (``protected``: each attempt then waits for a person).

    A ``read_only`` glob may not overlap ``paths`` (``plan check`` says where); should a
    stored plan have the overlap, read-only wins.
    """

    paths: list[str] = Field(min_length=1, description="Files or globs the Builder may write.")
    read_only: list[str] = Field(
        default_factory=list, description="Context the Builder reads; never written."
    )
    protected: list[str] = Field(
        default_factory=list,
        description="Protected paths (CI config, autopack.toml, ...) the phase may write, "
        "inside scope.paths; a person approves every attempt that writes one.",
    )

    def allows_write(self, path: str) -> bool:
        """Whether the phase may change ``path``: ``paths`` covers it and ``read_only``
        does not (read-only wins, so an overlap can never open a file for writing)."""
        return any(path_matches(path, glob) for glob in self.paths) and not any(
            path_matches(path, glob) for glob in self.read_only
        )


class HiddenTests(_Strict):
    """Acceptance tests the Builder never sees; every test in them must pass.

    The gate copies them into a throwaway copy of the attempt's tree after the Builder
    has finished, and runs them there (see ``verify/hidden.py``)."""

    source: str = Field(
        min_length=1,
        description=(
            "A test file or folder kept from the Builder: outside the repository, or in it "
            "but never committed. A relative path is relative to the plan file's folder."
        ),
    )
    target: str | None = Field(
        default=None,
        description=(
            "Where the gate puts it in the verification copy, relative to the repository. "
            "Default: its place in the repository, else its name at the top."
        ),
    )


class PhaseTests(_Strict):
    """How the phase is verified."""

    command: str | None = Field(default=None, description="Overrides the project test command.")
    fail_to_pass: list[str] = Field(
        default_factory=list, description="Test IDs that must pass after the phase."
    )
    hidden: list[HiddenTests] = Field(
        default_factory=list,
        description="Acceptance tests held back from the Builder; all must pass.",
    )


class ModelOverrides(_Strict):
    """Model specs (``provider:model``) that replace the configured ones for a phase."""

    planner: str | None = None
    builder: str | None = None
    auditor: str | None = None


class Phase(_Strict):
    """One unit of work: built, verified, audited and gated on its own."""

    id: str = Field(pattern=ID_PATTERN, description="Unique within the plan; used in branches.")
    goal: str = Field(min_length=1, description="One sentence: what this phase achieves.")
    description: str = Field(default="", description="Details for the Builder.")
    scope: Scope
    deliverables: list[str] = Field(default_factory=list, description="Files that must exist.")
    acceptance_criteria: list[str] = Field(default_factory=list, description="Checked by audit.")
    tests: PhaseTests = Field(default_factory=PhaseTests)
    risk: Risk = "low"
    depends_on: list[str] = Field(default_factory=list, description="Phase ids that come first.")
    budget: Budget | None = None
    models: ModelOverrides | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    mcp_tools: list[Annotated[str, StringConstraints(pattern=MCP_TOOL_PATTERN)]] = Field(
        default_factory=list,
        description="MCP tools the Builder may call, as SERVER.TOOL (servers are named in"
        " autopack.toml's [mcp.servers]).",
    )


class Tier(_Strict):
    """Phases that may run once every earlier tier is complete."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    phases: list[Phase] = Field(min_length=1)


class RunSpec(_Strict):
    """The run as a whole."""

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    goal: str = Field(min_length=1)
    budget: Budget = Field(default_factory=Budget)
    max_attempts: int = Field(default=3, ge=1, le=20, description="Default per phase.")


class Plan(_Strict):
    """A validated plan. Build one with :func:`load_plan` or :func:`parse_plan_text`."""

    run: RunSpec
    tiers: list[Tier] = Field(min_length=1)

    def phases(self) -> Iterator[tuple[int, Phase]]:
        """Every phase with the index of its tier, in plan order."""
        for index, tier in enumerate(self.tiers):
            for phase in tier.phases:
                yield index, phase

    def phase(self, phase_id: str) -> Phase:
        for _, phase in self.phases():
            if phase.id == phase_id:
                return phase
        raise KeyError(phase_id)

    def phase_ids(self) -> list[str]:
        return [phase.id for _, phase in self.phases()]

    def canonical_json(self) -> str:
        """The plan's content as JSON; a phase's empty ``mcp_tools`` is left out, so plans
        written before the field existed keep their digest."""
        data = self.model_dump(mode="json")
        for tier in data["tiers"]:
            for phase in tier["phases"]:
                if not phase["mcp_tools"]:
                    del phase["mcp_tools"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """Stable hash of the plan's content (not of its formatting)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class PlanIssue(BaseModel):
    """One problem in a plan, located precisely."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class PlanError(ValueError):
    """A plan that cannot be run; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PlanIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; raise :class:`PlanError` on any problem."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # never more, whatever the file is
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([PlanIssue(file=str(path), line=0, field="-", message=str(exc))]) from exc
    return parse_plan_text(text, source=str(path), base_dir=path.resolve().parent)


def parse_plan_text(text: str, source: str = "<plan>", base_dir: Path | None = None) -> Plan:
    """Validate plan text (YAML or JSON); raise :class:`PlanError` listing every problem.

    ``base_dir`` is the plan file's folder, which relative hidden test sources start
    from; a plan without a file (sent to the API) must name them absolutely.

    The text is read by :func:`autopack.safeyaml.load_yaml` (no aliases, no repeated
    keys, bounded size and depth), and a plan has at most :data:`MAX_PHASES` phases, so
    checking one costs bounded time and memory whoever wrote it.
    """
    try:
        data, root = load_yaml(text, source)
    except YamlRefused as exc:
        issue = PlanIssue(
            file=source, line=exc.line, field=field_name(exc.loc), message=exc.message
        )
        raise PlanError([issue]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise PlanError(
            [PlanIssue(file=source, line=line, field="-", message=f"not valid YAML: {exc}")]
        ) from exc
    lines = _line_map(root) if root is not None else {}
    locate = _Locator(source, lines)
    if not isinstance(data, dict):
        raise PlanError([locate((), "the plan must be a mapping with 'run' and 'tiers'")])
    phases = _phase_count(data)
    if phases > MAX_PHASES:
        message = f"{phases} phases; a plan may have at most {MAX_PHASES} (split it into runs)"
        raise PlanError([locate(("tiers",), message)])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError([locate(tuple(err["loc"]), err["msg"]) for err in exc.errors()]) from exc
    issues = [*_semantic_issues(plan, locate), *_hidden_issues(plan, base_dir, locate)]
    if issues:
        raise PlanError(issues)
    return plan


def _phase_count(data: dict[str, Any]) -> int:
    """Phases in the raw data, counted before validation (whose cost grows with them)."""
    tiers = data.get("tiers")
    if not isinstance(tiers, list):
        return 0
    return sum(
        len(tier["phases"])
        for tier in tiers
        if isinstance(tier, dict) and isinstance(tier.get("phases"), list)
    )


class _Locator:
    """Turns a location inside the data into a :class:`PlanIssue` with its line."""

    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self.lines = lines

    def __call__(self, loc: Loc, message: str) -> PlanIssue:
        probe = loc
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return PlanIssue(
            file=self.source, line=self.lines.get(probe, 1), field=field_name(loc), message=message
        )


def _line_map(node: yaml.Node, loc: Loc = ()) -> dict[Loc, int]:
    """Map every key and item location in the YAML tree to its 1-based line."""
    lines: dict[Loc, int] = {loc: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child: Loc = (*loc, str(key_node.value))
            lines.update(_line_map(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*loc, index)))
    return lines


def _semantic_issues(plan: Plan, locate: _Locator) -> Iterator[PlanIssue]:
    where: dict[str, Loc] = {}
    tier_of: dict[str, int] = {}
    seen_tiers: set[str] = set()
    for t, tier in enumerate(plan.tiers):
        if tier.id in seen_tiers:
            yield locate(("tiers", t, "id"), f"duplicate tier id {tier.id!r}")
        seen_tiers.add(tier.id)
        for p, phase in enumerate(tier.phases):
            loc: Loc = ("tiers", t, "phases", p)
            if phase.id in where:
                yield locate((*loc, "id"), f"duplicate phase id {phase.id!r}")
                continue
            where[phase.id] = loc
            tier_of[phase.id] = t
    for t, tier in enumerate(plan.tiers):
        for p, phase in enumerate(tier.phases):
            yield from _phase_issues(phase, ("tiers", t, "phases", p), t, tier_of, locate)
    yield from _cycle_issues(plan, where, locate)
    yield from _overlap_issues(plan, where, locate)


def _phase_issues(
    phase: Phase, loc: Loc, tier: int, tier_of: dict[str, int], locate: _Locator
) -> Iterator[PlanIssue]:
    for key in ("paths", "read_only", "protected"):
        for i, pattern in enumerate(getattr(phase.scope, key)):
            problem = _bad_path(pattern)
            if problem:
                yield locate((*loc, "scope", key, i), problem)
    for i, pattern in enumerate(phase.scope.protected):
        if not any(path_matches(pattern, allowed) for allowed in phase.scope.paths):
            yield locate((*loc, "scope", "protected", i), f"{pattern!r} is outside scope.paths")
    for i, pattern in enumerate(phase.scope.read_only):
        clash = next((p for p in phase.scope.paths if globs_overlap(p, pattern)), None)
        if clash is not None:
            message = (
                f"read_only {pattern!r} overlaps paths {clash!r}: read-only wins, so the "
                "phase could not write what both cover; narrow one of them"
            )
            yield locate((*loc, "scope", "read_only", i), message)
    for i, dep in enumerate(phase.depends_on):
        dep_loc = (*loc, "depends_on", i)
        if dep == phase.id:
            yield locate(dep_loc, "a phase cannot depend on itself")
        elif dep not in tier_of:
            yield locate(dep_loc, f"unknown phase {dep!r}")
        elif tier_of[dep] > tier:
            yield locate(dep_loc, f"{dep!r} is in a later tier; tiers run in order")
    for i, deliverable in enumerate(phase.deliverables):
        d_loc = (*loc, "deliverables", i)
        problem = _bad_path(deliverable)
        if problem:
            yield locate(d_loc, problem)
        elif not any(path_matches(deliverable, pattern) for pattern in phase.scope.paths):
            yield locate(d_loc, f"deliverable {deliverable!r} is outside scope.paths")


def _hidden_issues(plan: Plan, base_dir: Path | None, locate: _Locator) -> Iterator[PlanIssue]:
    """Hidden test sources exist where the plan says; their targets stay in the repository."""
    for t, tier in enumerate(plan.tiers):
        for p, phase in enumerate(tier.phases):
            for i, hidden in enumerate(phase.tests.hidden):
                loc: Loc = ("tiers", t, "phases", p, "tests", "hidden", i)
                if hidden.target is not None:
                    problem = _bad_path(hidden.target)
                    if problem:
                        yield locate((*loc, "target"), problem)
                source = Path(hidden.source)
                if base_dir is not None:
                    source = base_dir / source  # an absolute source stays itself
                if not source.is_absolute():
                    message = f"{hidden.source!r} is relative and the plan has no file"
                    yield locate((*loc, "source"), f"{message}: give an absolute path")
                elif not source.exists():
                    yield locate((*loc, "source"), f"no such file or folder: {source}")


def _bad_path(pattern: str) -> str | None:
    if not pattern.strip():
        return "empty path"
    if pattern.startswith(("/", "\\")) or (len(pattern) > 1 and pattern[1] == ":"):
        return f"{pattern!r} is absolute; paths are relative to the repository"
    parts = PurePosixPath(pattern).parts
    if ".." in parts:
        return f"{pattern!r} leaves the repository"
    if parts and parts[0] in {".git", ".autopack"}:
        return f"{pattern!r} is inside {parts[0]}/, which no phase may touch"
    return None


def _cycle_issues(plan: Plan, where: dict[str, Loc], locate: _Locator) -> Iterator[PlanIssue]:
    deps = {phase.id: [d for d in phase.depends_on if d in where] for _, phase in plan.phases()}
    state: dict[str, int] = {}
    reported: set[str] = set()

    def visit(node: str, trail: list[str]) -> Iterator[PlanIssue]:
        state[node] = 1
        for dep in deps[node]:
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep) :], dep] if dep in trail else [node, dep]
                if dep not in reported:
                    reported.add(dep)
                    index = plan.phase(node).depends_on.index(dep)
                    message = "dependency cycle: " + " -> ".join(cycle)
                    yield locate((*where[node], "depends_on", index), message)
            elif dep not in state:
                yield from visit(dep, [*trail, dep])
        state[node] = 2

    for phase_id in deps:
        if phase_id not in state:
            yield from visit(phase_id, [phase_id])


def _ancestors(plan: Plan) -> dict[str, set[str]]:
    direct = {phase.id: set(phase.depends_on) for _, phase in plan.phases()}
    closure: dict[str, set[str]] = {}

    def walk(node: str, seen: set[str]) -> set[str]:
        if node in closure:
            return closure[node]
        result: set[str] = set()
        for dep in direct.get(node, set()):
            if dep in seen:
                continue
            result |= {dep} | walk(dep, seen | {dep})
        closure[node] = result
        return result

    for node in direct:
        walk(node, {node})
    return closure


def _overlap_issues(plan: Plan, where: dict[str, Loc], locate: _Locator) -> Iterator[PlanIssue]:
    ancestors = _ancestors(plan)
    for tier in plan.tiers:
        for i, first in enumerate(tier.phases):
            for second in tier.phases[i + 1 :]:
                ordered = first.id in ancestors[second.id] or second.id in ancestors[first.id]
                if ordered or where.get(second.id) is None:
                    continue
                for k, pattern in enumerate(second.scope.paths):
                    clash = next((o for o in first.scope.paths if globs_overlap(o, pattern)), None)
                    if clash is not None:
                        message = (
                            f"write scope {pattern!r} overlaps {clash!r} of phase {first.id!r}, "
                            "which may run in parallel; add depends_on or split the scopes"
                        )
                        yield locate((*where[second.id], "scope", "paths", k), message)
                        break


def globs_overlap(first: str, second: str) -> bool:
    """Whether two scope patterns could both cover one file (conservative: when unsure, yes)."""
    a = PurePosixPath(first.rstrip("/")).parts
    b = PurePosixPath(second.rstrip("/")).parts
    return _parts_overlap(a, b)


def _parts_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b:
        return True  # one pattern is a directory prefix of the other
    if a[0] == "**" or b[0] == "**":
        return True
    if not _segments_overlap(a[0], b[0]):
        return False
    return _parts_overlap(a[1:], b[1:])


def _segments_overlap(a: str, b: str) -> bool:
    wild = set("*?[")
    if not wild & set(a) and not wild & set(b):
        return a == b
    if not wild & set(a):
        return fnmatch.fnmatchcase(a, b)
    if not wild & set(b):
        return fnmatch.fnmatchcase(b, a)
    return True


def plan_to_yaml(plan: Plan) -> str:
    """Render a plan back to YAML (used by the Planner to write drafts)."""
    data: dict[str, Any] = plan.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
