"""The steps of one phase attempt: build, apply, verify, audit, gate, commit.

Each step is a function of a :class:`StepContext` that returns a JSON-ready result;
the executor records it as a ``step_completed`` event, and a recorded step is never
run again. Every step is safe to run twice: it starts from what earlier steps
recorded (the base commit, the saved edits and diff), not from whatever a crashed
process left in the worktree.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from autopack import gate, roles, verify
from autopack.autopilot.constraints import violations
from autopack.autopilot.intention import Constraints
from autopack.config import autopack_table
from autopack.edits import PathPolicy, apply_edit_text
from autopack.engine.decider import FailPhase, SkipPhase
from autopack.engine.runtime import Runtime
from autopack.events import PhaseFailed, PhaseSkipped
from autopack.llm.cassette import ReplayModel
from autopack.llm.door import ModelDoor, choose_model, resolve_model
from autopack.llm.errors import BudgetExceeded, ModelError, ScriptExhausted
from autopack.memory.rules import RuleBook
from autopack.memory.service import MemoryService
from autopack.plan import Phase, path_matches
from autopack.projection import PhaseView, RunView
from autopack.roles.instructions import gather
from autopack.states import PHASE_TERMINAL
from autopack.store import Store
from autopack.verify import hidden
from autopack.workspace import git, landing, seal
from autopack.workspace.runner import CommandResult, Sandbox

if TYPE_CHECKING:
    from autopack.mcp.client import McpToolbox


def record_phase_end(store: Store, run_id: str, command: SkipPhase | FailPhase) -> None:
    """A skip or a failure the decider chose becomes its event, in every executor alike."""
    if isinstance(command, SkipPhase):
        store.append(run_id, PhaseSkipped(phase_id=command.phase_id, reason=command.reason))
    else:
        failed = PhaseFailed(
            phase_id=command.phase_id, attempt=command.attempt, reason=command.reason
        )
        store.append(run_id, failed)


class PhaseFailure(Exception):
    """The attempt cannot go on and retrying would not help (e.g. the script ran out)."""


@dataclass
class StepContext:
    """Everything one step of one attempt needs."""

    rt: Runtime
    view: RunView
    phase: Phase
    attempt: int
    door: ModelDoor
    call_counter: Callable[[str], int]
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def run_id(self) -> str:
        return self.view.run_id

    @property
    def sandbox(self) -> Sandbox:
        return cast(Sandbox, CancellableSandbox(self.rt.sandbox, self.cancel, self))

    @property
    def pview(self) -> PhaseView:
        return self.view.phases[self.phase.id]

    @property
    def worktree(self) -> Path:
        return self.rt.worktree(self.run_id, self.phase.id)

    @property
    def artifacts(self) -> Path:
        return self.rt.attempt_dir(self.run_id, self.phase.id, self.attempt)

    @property
    def base(self) -> str:
        return self.pview.base_commit

    def recorded(self, step: str) -> dict[str, Any]:
        return self.pview.steps[step]

    def gate_policy(self) -> gate.Policy:
        return gate.policy_for(self.rt.settings)

    def policy(self) -> PathPolicy:
        return PathPolicy(
            root=self.worktree,
            scope=tuple(self.phase.scope.paths),
            protected=self.gate_policy().protected_paths,
            declared=tuple(self.phase.scope.protected),
            read_only=tuple(self.phase.scope.read_only),
        )

    def model(self, role: str) -> Any:
        """The model for ``role``: phase override, else the run's --model, else the config."""
        override = self.rt.model_override or self.view.settings.get("model_override")
        models = self.phase.models
        if models is not None and getattr(models, role, None):
            override = getattr(models, role)
        settings = self.rt.settings.models.model_dump()
        spec = choose_model(role, self.phase.risk, self.attempt, settings, override)
        return self.resolve(spec)

    def resolve(self, spec: str) -> Any:
        if self.rt.replay_from is not None:
            return ReplayModel(self.rt.replay_from, inner_spec=spec)
        return resolve_model(spec, settings=self.rt.settings.models.model_dump())

    def brief(self, lessons: tuple[str, ...] = ()) -> roles.PhaseBrief:
        return roles.PhaseBrief(
            run_goal=self.view.plan.run.goal,
            phase=self.phase,
            attempt=self.attempt,
            feedback=previous_feedback(self.pview),
            lessons=lessons,
            instructions=self.instructions(),
        )

    def instructions(self) -> str:
        """The repository's instructions for agents as of the base commit (what the
        Builder writes in its worktree cannot instruct the Auditor)."""
        if not self.base:
            return ""

        def read(rel: str) -> str | None:
            blob = git.read_blob(self.rt.repo, f"{self.base}:{rel}")
            return None if blob is None else blob.decode("utf-8", errors="replace")

        return gather(read, self.phase.scope.paths)


def lessons_for(ctx: StepContext) -> tuple[list[str], list[dict[str, Any]]]:
    """Promoted rules whose scope matches, then retrieved lessons when retrieval is on;
    with the rule injections, which the build step records as evidence."""
    paths = ctx.phase.scope.paths
    text, injections = RuleBook.load(ctx.rt.repo).inject(ctx.phase.id, paths)
    found = [text] if text else []
    if ctx.rt.settings.sot_retrieval_enabled:
        query = f"{ctx.phase.goal}\n{ctx.phase.description}"
        found += MemoryService.for_repo(ctx.rt.repo).lessons_for(query, paths)
    return found, [asdict(injection) for injection in injections]


class CancellableSandbox:
    """The runtime's sandbox, with every command killed as soon as the run is cancelled,
    and the worktree's link to git checked after it: a command that moved it fails the
    phase (the worktree is put back first), whatever ran it (a ``run`` tool, a test)."""

    def __init__(self, inner: Sandbox, cancel: threading.Event, ctx: StepContext) -> None:
        self.inner = inner
        self.cancel = cancel
        self.ctx = ctx
        self.name = inner.name

    def run(self, command: str, cwd: Path, **options: Any) -> CommandResult:
        options.setdefault("cancel", self.cancel)
        try:
            sealed = seal.take(self.ctx.worktree)
        except seal.WorktreeTampered as exc:
            raise PhaseFailure(f"refused: {exc}") from exc
        result = self.inner.run(command, cwd, **options)
        problem = seal.broken(sealed)
        if problem is not None:
            seal.restore(sealed)
            _reset_to_base(self.ctx)
            raise PhaseFailure(f"refused: a sandboxed command tampered with git: {problem}")
        return result


def previous_feedback(phase: PhaseView) -> str:
    """What the Builder is told about the last attempt: the gate's compact feedback."""
    if phase.rejection is not None and phase.rejection.get("attempt") == phase.attempt - 1:
        return f"A reviewer rejected the previous attempt: {phase.rejection.get('note', '')}"
    if not phase.attempts:
        return ""
    last = phase.attempts[-1]["steps"]
    commit = last.get("commit", {})
    if commit.get("conflict"):
        return f"The previous attempt conflicted with the run branch: {commit['conflict']}"
    return str(last.get("gate", {}).get("feedback", ""))


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


_KNOWN_TREES: dict[Path, str] = {}
"""Tree last written into each worktree by this process: a crash empties it, so a resumed
process checks the worktree on disk instead."""

_PRISTINE: dict[Path, tuple[str, tuple[int, int, int] | None]] = {}
"""Worktrees this process left exactly at a base commit (files and index, nothing else in
them) and the stamp of their index then. The next :func:`ensure_worktree` there takes
the entry and, when base and stamp still match, skips the reset: two full scans of the
worktree. Only steps that ran no command and wrote nothing put an entry here."""


_CLAIMS = threading.Lock()

PYPROJECT = "pyproject.toml"
"""Holds the settings when a repository has no autopack.toml (``[tool.autopack]``)."""


def _claim_worktree(ctx: StepContext) -> bool:
    """Give the phase a worktree: one a finished phase of the run left behind, moved here
    (the caller resets it: only changed files are rewritten), or a new checkout at the
    base when none is idle; returns whether it is a new checkout."""
    with _CLAIMS:
        for phase in ctx.view.phases.values():
            idle = ctx.rt.worktree(ctx.run_id, phase.id)
            if phase.state in PHASE_TERMINAL and git.is_worktree(idle):
                _PRISTINE.pop(idle, None)
                _KNOWN_TREES.pop(idle, None)
                git.move_worktree(ctx.rt.repo, idle, ctx.worktree)
                return False
        git.add_worktree(ctx.rt.repo, ctx.worktree, ctx.base)
        return True


def ensure_worktree(ctx: StepContext, tree: str | None = None, *, at_base: bool = False) -> Path:
    """The attempt's worktree at its base, plus the recorded changes when ``tree`` is given.

    Whatever a crashed process left there is replaced; ``at_base`` says the worktree is
    known to be exactly the base (skips the check). Without ``tree`` the worktree comes
    back exactly at the base: its files, its index, nothing untracked.
    """
    worktree = ctx.worktree
    pristine = _PRISTINE.pop(worktree, None)
    if not at_base:
        if tree is not None and _KNOWN_TREES.get(worktree) == tree and worktree.exists():
            return worktree
        if tree is not None and git.is_worktree(worktree) and git.tree_hash(worktree) == tree:
            return worktree
        _KNOWN_TREES.pop(worktree, None)
        stamp = git.index_stamp(worktree) if tree is None and pristine else None
        if stamp is not None and pristine == (ctx.base, stamp):
            return worktree
        fresh = not git.is_worktree(worktree) and _claim_worktree(ctx)
        if not fresh:
            git.reset_worktree(worktree, ctx.base)
    if tree is not None:
        diff = (ctx.artifacts / "changes.diff").read_bytes().decode("utf-8")  # keeps CRLF
        git.apply_diff(worktree, diff)
        _KNOWN_TREES[worktree] = tree
    return worktree


def _still_pristine(ctx: StepContext) -> None:
    """Say the worktree is still exactly as :func:`ensure_worktree` left it."""
    _PRISTINE[ctx.worktree] = (ctx.base, git.index_stamp(ctx.worktree))


def _reset_to_base(ctx: StepContext) -> None:
    """Throw away what an attempt wrote; the worktree is exactly its base again."""
    _KNOWN_TREES.pop(ctx.worktree, None)
    git.reset_worktree(ctx.worktree, ctx.base)
    _still_pristine(ctx)


# -- build -------------------------------------------------------------------------


def previous_steps(ctx: StepContext) -> dict[str, Any]:
    return ctx.pview.attempts[-1]["steps"] if ctx.pview.attempts else {}


def _rebuild_nothing(ctx: StepContext) -> dict[str, Any]:
    """A rebased attempt re-lands the last attempt's change: no Builder call."""
    for name in ("prompt.txt", "edits.txt", "build.diff"):
        _write(ctx.artifacts / name, "")
    earlier = previous_steps(ctx).get("build", {})
    return {
        "summary": earlier.get("summary", ""),
        "decisions": earlier.get("decisions", []),
        "steps": 0,
        "stop_reason": "rebase",
        "rebased": True,
    }


def build(ctx: StepContext) -> dict[str, Any]:
    worktree = ensure_worktree(ctx)
    _preflight(ctx, worktree)
    if ctx.pview.rebase_tree:
        _still_pristine(ctx)
        return _rebuild_nothing(ctx)
    lessons, injections = lessons_for(ctx)
    try:
        with mcp_tools(ctx, worktree) as extra:
            result = roles.build(
                ctx.brief(tuple(lessons)),
                worktree=worktree,
                policy=ctx.policy(),
                sandbox=ctx.sandbox,
                door=ctx.door,
                model=ctx.model("builder"),
                call_counter=ctx.call_counter,
                extra=extra,
                on_condense=lambda event: ctx.rt.store.append(ctx.run_id, event),
            )
            mcp_calls = extra.records if extra is not None else []
    except ScriptExhausted as exc:
        raise PhaseFailure(str(exc)) from exc
    except ModelError as exc:
        if exc.environment or exc.retryable or isinstance(exc, BudgetExceeded):
            raise
        return {"error": f"{type(exc).__name__}: {exc}"}
    _write(ctx.artifacts / "prompt.txt", result.prompt)
    edits_sha = _write(ctx.artifacts / "edits.txt", result.edits_text)
    special: list[str] = []
    if _used_no_tools(result):
        tool_diff = ""
        _still_pristine(ctx)
    else:
        special = landing.special_files(worktree)  # git cannot stage them: none may land
        tool_diff = "" if special else git.diff_against(worktree, ctx.base)
    _write(ctx.artifacts / "build.diff", tool_diff)
    return {
        "summary": result.summary,
        "decisions": result.decisions,
        "steps": result.steps,
        "stop_reason": result.stop_reason,
        "edits_sha256": edits_sha,
        "wrote_through_tools": bool(tool_diff.strip()),
        "lessons": len(lessons),
        "rule_injections": injections,
        **({"special_files": special} if special else {}),
        **({"mcp_calls": mcp_calls} if mcp_calls else {}),
    }


@contextmanager
def mcp_tools(ctx: StepContext, worktree: Path) -> Iterator[McpToolbox | None]:
    """The phase's MCP tools for one Builder attempt (``None`` when it allows none); the
    servers are stopped afterwards, and, as after any sandboxed command, a server that
    moved the worktree's link to git fails the phase."""
    allowed = ctx.phase.mcp_tools
    if not allowed:
        yield None
        return
    # the MCP SDK only when a phase uses it: importing it costs a run seconds of start-up
    from autopack.mcp.client import McpTape, McpToolbox, McpUnavailable
    from autopack.mcp.plans import unknown_servers

    servers = ctx.rt.settings.mcp.servers
    missing = unknown_servers(allowed, servers)
    if missing:
        where = ctx.rt.settings.source
        raise PhaseFailure(f"MCP tools {', '.join(missing)}: no such server in {where} [mcp]")
    tape = McpTape(
        ctx.rt.run_dir(ctx.run_id) / "cassette.jsonl", ctx.rt.replay_from, ctx.phase.id, ctx.attempt
    )
    box = McpToolbox(
        allowed,
        servers,
        worktree=worktree,
        sandbox=ctx.sandbox,
        tape=tape,
        observe=lambda called: ctx.rt.store.append(ctx.run_id, called),
        logs=ctx.artifacts,
    )
    try:
        sealed = seal.take(worktree)
    except seal.WorktreeTampered as exc:
        raise PhaseFailure(f"refused: {exc}") from exc
    try:
        box.open()
        yield box
    except McpUnavailable as exc:
        raise PhaseFailure(str(exc)) from exc
    finally:
        box.close()
        problem = seal.broken(sealed)
        if problem is not None:
            seal.restore(sealed)
            _reset_to_base(ctx)
            raise PhaseFailure(f"refused: an MCP server tampered with git: {problem}")


def _used_no_tools(result: roles.BuildResult) -> bool:
    """The Builder answered its first call with text: no tool ran, nothing was written
    (a tool call, even ``finish``, ends the first step another way)."""
    return result.steps == 1 and result.stop_reason == "text"


def _preflight(ctx: StepContext, worktree: Path) -> None:
    """Before the Builder spends anything: the base tree's tests are evidence, and the
    hidden acceptance tests are out of the Builder's reach. Either failing raises and
    stops the run; a sane baseline is cached, so the verify step does not run it again."""
    command = test_command(ctx, worktree)
    if ctx.phase.tests.hidden:
        hidden.check_hidden(
            hidden_files(ctx),
            repo=ctx.rt.repo,
            base_commit=ctx.base,
            command=command,
            sandbox=ctx.sandbox,
            worktree=worktree,
        )
    if command is None:
        return
    try:
        verify.get_baseline(
            base_tree=git.commit_tree(ctx.rt.repo, ctx.base),
            command=command,
            base_checkout=lambda: _at_base(ctx),
            sandbox=ctx.sandbox,
            cache=StoreBaselineCache(ctx.rt),
            timeout_s=ctx.rt.settings.test_timeout_s,
            # a file any phase of the plan is to make importable may fail to collect
            fail_to_pass=[t for _, p in ctx.view.plan.phases() for t in p.tests.fail_to_pass],
        )
    except verify.BaselineUnusable as exc:
        record = {**exc.run.to_dict(), "problem": exc.problem.to_dict()}
        (ctx.artifacts / "baseline.json").write_text(json.dumps(record, indent=2), "utf-8")
        raise


@contextmanager
def _at_base(ctx: StepContext) -> Iterator[Path]:
    """The worktree, exactly at its base, for a baseline run; what the run left behind
    (caches, outputs) is gone before the Builder sees the worktree."""
    try:
        yield ctx.worktree
    finally:
        _reset_to_base(ctx)


def hidden_files(ctx: StepContext) -> list[hidden.HiddenFile]:
    return hidden.resolve(ctx.phase.tests.hidden, ctx.view.plan_source, ctx.rt.repo)


# -- apply -------------------------------------------------------------------------


def apply(ctx: StepContext) -> dict[str, Any]:
    worktree = ensure_worktree(ctx)
    error = ctx.recorded("build").get("error")
    if error:
        _still_pristine(ctx)
        return {"applied": False, "reason": f"the Builder produced no change: {error}"}
    special = ctx.recorded("build").get("special_files")
    if special:
        problems = [f"{p}: not a file, folder or symbolic link" for p in special]
        return _may_not_land(ctx, {}, problems)
    # read as bytes: read_text would turn the CRLF lines of a diff or an edit into LF
    tool_diff = (ctx.artifacts / "build.diff").read_bytes().decode("utf-8")
    git.apply_diff(worktree, tool_diff)
    edits_text = (ctx.artifacts / "edits.txt").read_bytes().decode("utf-8")
    report: dict[str, Any] = {}
    written: list[str] = []
    if edits_text.strip():
        edit_report = apply_edit_text(edits_text, ctx.policy())
        report = edit_report.to_dict()
        if not edit_report.applied:
            _reset_to_base(ctx)
            return {"applied": False, "report": report, "feedback": edit_report.to_text()}
        written = edit_report.changed_files
    if ctx.pview.rebase_tree:
        git.read_tree_into(worktree, ctx.pview.rebase_tree)
    _stage_change(worktree, written, tools_wrote=bool(tool_diff.strip()))
    tree = git.tree_hash(worktree, staged=True)
    changed = git.changed_between(worktree, ctx.base, tree)
    outside = [p for p in changed if not ctx.phase.scope.allows_write(p)]
    if outside:
        feedback = "Refused: these paths are outside the phase's scope or read-only: "
        return _refused(ctx, report, feedback + ", ".join(outside), outside_scope=outside)
    protected = _undeclared_protected(ctx, changed, tree)
    if protected:
        feedback = f"Refused: these paths are protected: {', '.join(protected)}"
        return _refused(ctx, report, feedback, protected=protected)
    refused = landing.refusals(worktree, ctx.base, tree)
    if refused:
        return _may_not_land(ctx, report, refused)
    _write(ctx.artifacts / "changes.diff", git.diff_between(worktree, ctx.base, tree))
    _KNOWN_TREES[worktree] = tree
    applied = {"applied": True, "report": report, "changed_files": changed, "tree": tree}
    return {**applied, **_intention_check(ctx, tree)}


def _intention_check(ctx: StepContext, tree: str) -> dict[str, Any]:
    """The intention's constraints the change breaks, read through Autopack's git from the
    tree as stored (never from files the sandbox could have left)."""
    recorded = ctx.view.settings.get("intention_constraints")
    if not recorded:
        return {}
    constraints = Constraints.model_validate(recorded)
    return {"intention_violations": violations(ctx.rt.repo, constraints, ctx.base, tree)}


def _undeclared_protected(ctx: StepContext, changed: list[str], tree: str) -> list[str]:
    """Changed paths the path policy would refuse as protected: a write through the
    ``run`` tool never passed the policy, so the tree is checked as well."""
    protected = _protected_globs(ctx, changed, tree)
    return [
        path
        for path in changed
        if any(path_matches(path, glob) for glob in protected)
        and not any(path_matches(path, glob) for glob in ctx.phase.scope.protected)
    ]


def _protected_globs(ctx: StepContext, changed: list[str], tree: str) -> tuple[str, ...]:
    """The policy's protected globs, and ``pyproject.toml`` when the change edits the
    settings it holds (``[tool.autopack]``): they are as protected as ``autopack.toml``."""
    globs = ctx.gate_policy().protected_paths
    if PYPROJECT in changed and _settings_table_changed(ctx, tree):
        globs += (PYPROJECT,)
    return globs


def _settings_table_changed(ctx: StepContext, tree: str) -> bool:
    texts = [
        git.git(ctx.rt.repo, "show", f"{rev}:{PYPROJECT}", check=False) for rev in (ctx.base, tree)
    ]
    try:
        before, after = (autopack_table(text) for text in texts)
    except tomllib.TOMLDecodeError:
        return True  # unreadable settings are changed settings
    return before != after


def _may_not_land(ctx: StepContext, report: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    feedback = "Refused: this change may not land: " + "; ".join(problems)
    return _refused(ctx, report, feedback, refused=problems)


def _refused(
    ctx: StepContext, report: dict[str, Any], feedback: str, **evidence: list[str]
) -> dict[str, Any]:
    """The change may not land, whatever wrote it; the worktree goes back to its base."""
    _reset_to_base(ctx)
    return {"applied": False, "report": report, **evidence, "feedback": feedback}


def _stage_change(worktree: Path, written: list[str], *, tools_wrote: bool) -> None:
    """Stage the attempt's change into the index.

    The worktree was exactly its base (files and index) and since then only the edits
    engine wrote, the files it names, and ``read-tree`` (which keeps index and files
    alike): staging those files gives the tree ``add -A`` would, without a scan of the
    whole worktree. When the Builder's tools wrote, or a written path goes through a
    symbolic link, anything may differ and everything is staged.
    """
    root = os.path.realpath(worktree)
    through_links = any(
        os.path.relpath(os.path.realpath(os.path.join(root, rel)), root) != rel for rel in written
    )
    if tools_wrote or through_links:
        git.stage_all(worktree)
    else:
        git.stage_paths(worktree, written)


# -- verify ------------------------------------------------------------------------


def test_command(ctx: StepContext, worktree: Path) -> str | None:
    """The plan's command, else the settings', else one detected in the base commit (the
    attempt's own files cannot switch its grading off)."""
    return (
        ctx.phase.tests.command
        or ctx.rt.settings.test_command
        or verify.detect_test_command(worktree, git.commit_tree(ctx.rt.repo, ctx.base))
    )


def verify_step(ctx: StepContext) -> dict[str, Any]:
    applied = ctx.recorded("apply")
    worktree = ensure_worktree(ctx, applied["tree"])
    command = test_command(ctx, worktree)
    checks = verify.run_checks(
        worktree,
        changed_files=applied["changed_files"],
        deliverables=ctx.phase.deliverables,
        edits_report=applied.get("report", {}),
        ruff=ctx.rt.settings.gate.ruff,
    )
    checks_data = [check.to_dict() for check in checks]
    checks_ok = all(check.passed for check in checks)
    evidence: dict[str, Any]
    if command is None:
        evidence = {
            "kind": "none",
            "passed": True,
            "note": "no test command configured or detected",
        }
    else:
        found = verify.verify_attempt(
            worktree,
            base_tree=git.commit_tree(ctx.rt.repo, ctx.base),
            command=command,
            fail_to_pass=ctx.phase.tests.fail_to_pass,
            changed_files=applied["changed_files"],
            sandbox=ctx.sandbox,
            cache=StoreBaselineCache(ctx.rt),
            base_checkout=lambda: base_checkout(ctx, applied["tree"]),
            settings=verify.VerifySettings(timeout_s=ctx.rt.settings.test_timeout_s),
        )
        if found.seeds_baseline and found.full_run is not None:
            full = found.full_run.to_dict()  # carries the command it ran
            (ctx.artifacts / "full_run.json").write_text(json.dumps(full), encoding="utf-8")
        evidence = found.to_dict()
        if found.passed and ctx.phase.tests.hidden:
            held_back = hidden.run_hidden(
                hidden_files(ctx),
                repo=ctx.rt.repo,
                tree=applied["tree"],
                command=command,
                sandbox=ctx.sandbox,
                timeout_s=ctx.rt.settings.test_timeout_s,
                base_tree=git.commit_tree(ctx.rt.repo, ctx.base),
                changed_files=applied["changed_files"],
            )
            evidence = hidden.with_hidden(evidence, held_back)
        evidence["test_seconds"] = _test_seconds(evidence)
    (ctx.artifacts / "verify.json").write_text(json.dumps(evidence, indent=2), encoding="utf-8")
    passed = bool(evidence.get("passed")) and checks_ok
    counts = {
        "baseline": (evidence.get("baseline") or {}).get("counts", {}),
        "full": (evidence.get("full_run") or {}).get("counts", {}),
    }
    return {
        "passed": passed,
        "tests_passed": bool(evidence.get("passed")),
        "checks": checks_data,
        "counts": counts,
    }


def _test_seconds(evidence: dict[str, Any]) -> float:
    """Time spent in test commands (a baseline taken from the cache costs nothing)."""
    baseline = evidence.get("baseline") or {}
    spent = float(evidence.get("selection", {}).get("test_time_s", 0.0))
    spent += float((evidence.get("hidden") or {}).get("duration_s", 0.0))
    if not baseline.get("cached"):
        spent += float(baseline.get("duration_s", 0.0))
    return round(spent, 3)


class StoreBaselineCache:
    """Baselines kept in the store, keyed by tree hash and command."""

    def __init__(self, rt: Runtime) -> None:
        self.store = rt.store

    def get(self, key: str) -> dict[str, Any] | None:
        return self.store.baseline_get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.store.baseline_put(key, value)


@contextmanager
def base_checkout(ctx: StepContext, tree: str) -> Iterator[Path]:
    """The attempt's own worktree, set back to its base for the baseline test run and
    given its recorded changes again afterwards: cheaper than a second checkout."""
    _KNOWN_TREES.pop(ctx.worktree, None)
    git.reset_worktree(ctx.worktree, ctx.base)
    try:
        yield ctx.worktree
    finally:
        ensure_worktree(ctx, tree, at_base=True)


# -- audit -------------------------------------------------------------------------


def _risk(ctx: StepContext, diff: str, changed: list[str]) -> gate.RiskReport:
    protected = _protected_globs(ctx, changed, ctx.recorded("apply").get("tree", ""))
    sensitive = ctx.gate_policy().sensitive_paths
    return gate.score_risk(diff, changed, protected=protected, sensitive=sensitive)


def audit(ctx: StepContext) -> dict[str, Any]:
    if ctx.pview.rebase_tree:
        earlier = dict(previous_steps(ctx).get("audit", {}))
        note = "the same change, merged onto the moved run branch: verdict carried over"
        return {**earlier, "carried_over": note}
    applied = ctx.recorded("apply")
    diff = (ctx.artifacts / "changes.diff").read_text(encoding="utf-8")
    evidence = json.loads((ctx.artifacts / "verify.json").read_text(encoding="utf-8"))
    risk = _risk(ctx, diff, applied["changed_files"])
    models = [ctx.model("auditor")]
    second = ctx.rt.settings.models.second_auditor
    if ctx.phase.risk == "high" and second:
        models.append(ctx.resolve(second))
    try:
        verdict = roles.audit(
            ctx.brief(),
            diff=diff,
            test_delta=evidence.get("delta", {}),
            risk=risk.to_dict(),
            door=ctx.door,
            models=models,
            call_counter=ctx.call_counter,
        )
    except ScriptExhausted as exc:
        raise PhaseFailure(str(exc)) from exc
    except ModelError as exc:
        if exc.environment or exc.retryable or isinstance(exc, BudgetExceeded):
            raise
        # No usable verdict is no approval: the gate sends the attempt back.
        return {"verdict": "request_changes", "summary": f"the Auditor failed: {exc}", "issues": []}
    return dict(verdict)


# -- gate --------------------------------------------------------------------------


def _changes_diff(ctx: StepContext) -> str:
    diff_path = ctx.artifacts / "changes.diff"
    return diff_path.read_text(encoding="utf-8") if diff_path.exists() else ""


def _gate_evidence(ctx: StepContext, *, approved: bool) -> gate.GateEvidence:
    """The evidence the gate decides from, all of it recorded by earlier steps."""
    steps = ctx.pview.steps
    applied = steps["apply"]
    return gate.GateEvidence(
        apply_ok=bool(applied.get("applied")) and not steps["build"].get("error"),
        edits_report=_apply_report(steps),
        verify=_recorded_verification(ctx),
        checks=[verify.CheckResult(**c) for c in steps.get("verify", {}).get("checks", [])],
        risk=_risk(ctx, _changes_diff(ctx), applied.get("changed_files", [])),
        audit=steps.get("audit"),
        approved=approved,
        intention_violations=list(applied.get("intention_violations", [])),
    )


def gate_step(ctx: StepContext, prev_proof_hash: str) -> dict[str, Any]:
    """Decide from the recorded evidence by policy, and write the attempt's proof."""
    applied = ctx.pview.steps["apply"]
    diff = _changes_diff(ctx)
    evidence = _gate_evidence(ctx, approved=False)
    decision = gate.decide(evidence, ctx.gate_policy())
    proof = gate.build_proof(
        run_id=ctx.run_id,
        phase_id=ctx.phase.id,
        attempt=ctx.attempt,
        phase_spec=ctx.phase.model_dump(mode="json"),
        base_tree=git.commit_tree(ctx.rt.repo, ctx.base),
        result_tree=applied.get("tree", ""),
        diff=diff,
        evidence=evidence,
        decision=decision,
        prev_proof_hash=prev_proof_hash or None,
        usage=vars(ctx.pview.spend),
    )
    proof_hash = gate.proof_hash(proof)
    proofs = ctx.rt.run_dir(ctx.run_id) / "proofs"
    proofs.mkdir(parents=True, exist_ok=True)
    text = json.dumps(proof, indent=2, sort_keys=True)
    (proofs / f"{ctx.phase.id}-{ctx.attempt}.json").write_text(text, encoding="utf-8")
    return {**decision.to_dict(), "proof_hash": proof_hash, "feedback": gate.render_feedback(proof)}


def _apply_report(steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The edits report, with why nothing applied when the Builder or the scope refused."""
    applied, build_result = steps["apply"], steps["build"]
    report = dict(applied.get("report") or {})
    for key, value in (
        ("builder_error", build_result.get("error")),
        ("refusal", applied.get("feedback") or applied.get("reason")),
        ("outside_scope", applied.get("outside_scope")),
        ("protected", applied.get("protected")),
    ):
        if value:
            report[key] = value
    return report


class RecordedVerification:
    """The verify step's evidence read back from ``verify.json`` for the gate and the proof."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.delta = verify.TestDelta.from_dict(data.get("delta", {}))
        self.passed = bool(data.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return self.data


def _recorded_verification(ctx: StepContext) -> verify.VerifyEvidence | None:
    path = ctx.artifacts / "verify.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("kind") == "none":
        return None
    return cast(verify.VerifyEvidence, RecordedVerification(data))


# -- commit ------------------------------------------------------------------------


def commit(ctx: StepContext) -> dict[str, Any]:
    repo, branch = ctx.rt.repo, ctx.view.branch
    proof_hash = _landing_proof_hash(ctx)
    head = git.rev_parse(repo, f"refs/heads/{branch}")
    assert head is not None, f"run branch {branch} is missing"
    if head != ctx.base:
        landed = _already_landed(ctx, head, proof_hash)
        if landed is not None:
            return landed
        return _merge_onto(ctx, head)
    tree = ctx.pview.steps["apply"]["tree"]
    sha = git.commit_tree_object(repo, tree, ctx.base, _message(ctx, proof_hash))
    git.add_note(repo, sha, _proof_note(ctx))
    git.move_branch(repo, branch, sha, ctx.base)
    _seed_baseline(ctx, tree)
    return {"commit": sha, "proof_hash": proof_hash, "tree": git.commit_tree(repo, sha)}


def _landing_proof_hash(ctx: StepContext) -> str:
    """The gated proof's hash; for an approved attempt, the hash of the proof that adds
    the approval and the decision the policy gives once approved (written next to it)."""
    gated_hash = str(ctx.pview.steps["gate"]["proof_hash"])
    if ctx.pview.approval is None:
        return gated_hash
    proofs = ctx.rt.run_dir(ctx.run_id) / "proofs"
    gated = json.loads((proofs / f"{ctx.phase.id}-{ctx.attempt}.json").read_text("utf-8"))
    decision = gate.decide(_gate_evidence(ctx, approved=True), ctx.gate_policy())
    if decision.decision != "PASS":
        raise PhaseFailure(f"approved, but the policy still decides: {'; '.join(decision.reasons)}")
    approval = {**ctx.pview.approval, "attempt": ctx.attempt}
    landing = gate.approved_proof(gated, approval, decision)
    text = json.dumps(landing, indent=2, sort_keys=True)
    (proofs / f"{ctx.phase.id}-{ctx.attempt}-approved.json").write_text(text, encoding="utf-8")
    return gate.proof_hash(landing)


def _seed_baseline(ctx: StepContext, tree: str) -> None:
    """The full suite that passed on the landed tree is the next phase's baseline (its
    base is this commit): record it so the next phase does not run the suite again. The
    impact map of this phase's own base stays a good enough guide for test selection."""
    path = ctx.artifacts / "full_run.json"
    if not path.exists():
        return
    full = json.loads(path.read_text(encoding="utf-8"))
    command = str(full["command"])
    cache = StoreBaselineCache(ctx.rt)
    base_entry = cache.get(verify.baseline_key(git.commit_tree(ctx.rt.repo, ctx.base), command))
    impact = (base_entry or {}).get("impact", {})
    cache.put(verify.baseline_key(tree, command), {**full, "impact": impact})


def _merge_onto(ctx: StepContext, head: str) -> dict[str, Any]:
    """The run branch moved (an earlier phase landed): merge this change onto it. A clean
    merge is verified again before it lands; a conflict sends the phase back."""
    tree = ctx.pview.steps["apply"]["tree"]
    merged, conflicts = git.merge_onto(ctx.rt.repo, ctx.base, tree, head)
    if merged is None:
        listed = ", ".join(conflicts) or "unknown paths"
        return {"conflict": f"the run branch moved to {head[:12]}; conflicting files: {listed}"}
    return {"rebased_onto": head, "rebased_tree": merged}


def _already_landed(ctx: StepContext, head: str, proof_hash: str) -> dict[str, Any] | None:
    """A crash between the commit and its event: the commit is there, do not make another."""
    found = git.trailers(ctx.rt.repo, head)
    if found.get("Autopack-Phase") == ctx.phase.id and found.get("Autopack-Proof") == proof_hash:
        return {
            "commit": head,
            "proof_hash": proof_hash,
            "tree": git.commit_tree(ctx.rt.repo, head),
        }
    return None


def _message(ctx: StepContext, proof_hash: str) -> str:
    summary = ctx.pview.steps["build"].get("summary") or ctx.phase.goal
    return (
        f"{ctx.phase.id}: {ctx.phase.goal}\n\n{summary}\n\n"
        f"Autopack-Run: {ctx.run_id}\n"
        f"Autopack-Phase: {ctx.phase.id}\n"
        f"Autopack-Attempt: {ctx.attempt}\n"
        f"Autopack-Proof: {proof_hash}\n"
        f"{gate.SIGNATURE_TRAILER}: {_signing_key(ctx).sign(proof_hash)}\n"
    )


def _signing_key(ctx: StepContext) -> gate.ProofKey:
    """The key outside the repository that signs what lands (made on first use)."""
    try:
        key = gate.load_key(ctx.rt.repo, create=True)
    except (gate.ProofKeyError, OSError) as exc:
        raise PhaseFailure(f"cannot sign the proof: {exc}") from exc
    assert key is not None  # create=True makes one
    return key


def _proof_note(ctx: StepContext) -> str:
    proofs = ctx.rt.run_dir(ctx.run_id) / "proofs"
    documents = []
    for attempt in range(1, ctx.attempt + 1):
        path = proofs / f"{ctx.phase.id}-{attempt}.json"
        if path.exists():
            documents.append(json.loads(path.read_text(encoding="utf-8")))
    approved = proofs / f"{ctx.phase.id}-{ctx.attempt}-approved.json"
    if ctx.pview.approval is not None and approved.exists():
        documents.append(json.loads(approved.read_text(encoding="utf-8")))
    return json.dumps(documents, indent=2, sort_keys=True)
