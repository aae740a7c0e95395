"""``autopack autopilot``: scan, plan for the top gaps, approve by policy, run, scan again.

Each iteration works on the autopilot's own branch (``autopack/autopilot-<id>``): the
scan reads its tip, the run starts from it, and a run that succeeds moves it to the
run's branch head. The person's branch and working copy are never touched; they merge
the autopilot branch when they are content.

It stops when the success criteria hold, the iterations or the total budget are spent,
an iteration makes no progress (the branch did not move, or no gap closed), or a plan
needs a person: only a plan whose every phase is low risk and writes only inside the
allowed paths (never an out-of-scope or frozen one) is approved by policy, and only when
auto-approval is switched on. Any other plan is written for a person and the loop stops.

Every step is an event in the store's log of the autopilot (:mod:`autopack.events`:
started, iteration began, plan drafted, approval requested, approved or rejected, run
finished, iteration ended, stop requested, stopped); each run it starts is an ordinary run
in the store (``autopack status RUN``). The loop is driven by that log: each pass reads
the autopilot's projected state and does the one next step, so a new autopilot and one
resumed after a crash (:meth:`Autopilot.resume`) go through the same code. A plan the
policy does not approve waits, as a recorded state, for a person's answer
(:mod:`autopack.autopilot.commands`, from the CLI, the API or the dashboard).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopack.autopilot.constraints import violations
from autopack.autopilot.gaps import Gap, Scan, scan
from autopack.autopilot.intention import Intention
from autopack.autopilot_projection import AutopilotView, IterationView
from autopack.config import STATE_DIR
from autopack.events import (
    AutopilotStarted,
    AutopilotStopped,
    IterationBegan,
    IterationEnded,
    IterationRunFinished,
    ModelCalled,
    Payload,
    PlanApprovalRequested,
    PlanDrafted,
)
from autopack.llm.errors import BudgetExceeded
from autopack.plan import Budget, Plan, globs_overlap, path_matches, plan_to_yaml
from autopack.states import RunState
from autopack.store.autopilots import AutopilotNotFound

TOP_GAPS = 5
"""Gaps the Planner is asked to close per iteration, most urgent first."""


@dataclass
class Spent:
    """What the autopilot's model calls cost so far: the Planner's and every run's."""

    tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0

    def add(self, tokens: int, cost_usd: float, calls: int) -> None:
        self.tokens += tokens
        self.cost_usd = round(self.cost_usd + cost_usd, 6)
        self.model_calls += calls

    def remaining(self, total: Budget) -> Budget | None:
        """The caps still free, or ``None`` when one is used up."""
        left: dict[str, Any] = {}
        for name, used in (
            ("tokens", self.tokens),
            ("cost_usd", self.cost_usd),
            ("model_calls", self.model_calls),
        ):
            cap = getattr(total, name)
            if cap is not None:
                if used >= cap:
                    return None
                left[name] = type(cap)(cap - used)
        return Budget(**left, wall_seconds=total.wall_seconds)


class AutopilotProblem(ValueError):
    """An autopilot that cannot be resumed: unknown, or already ended."""


@dataclass
class Outcome:
    """How the autopilot ended."""

    autopilot_id: str
    branch: str
    stop: str
    """criteria met | iterations spent | budget spent | no progress | needs a person |
    stopped by a person"""
    detail: str = ""
    iterations: int = 0
    runs: list[str] = field(default_factory=list)
    plan_for_review: Path | None = None

    @property
    def finished(self) -> bool:
        return self.stop == "criteria met"


def plan_problems(plan: Plan, intention: Intention) -> list[str]:
    """Why a plan cannot be approved by policy (empty: it can)."""
    problems = []
    fenced = [*intention.out_of_scope, *intention.constraints.frozen_paths]
    for _, phase in plan.phases():
        if phase.risk != "low":
            problems.append(f"phase {phase.id} is {phase.risk} risk")
        for pattern in phase.scope.paths:
            inside = any(path_matches(pattern, allowed) for allowed in intention.allowed_paths)
            clash = next((f for f in fenced if globs_overlap(pattern, f)), None)
            if not inside:
                problems.append(f"phase {phase.id} writes {pattern}, outside the allowed paths")
            elif clash is not None:
                problems.append(f"phase {phase.id} writes {pattern}, which overlaps {clash}")
    return problems


def goal_for(gaps: list[Gap], intention: Intention) -> str:
    lines = [f"Close these gaps toward: {intention.north_star}"]
    lines += [f"- [{g.kind}] {g.where()}: {g.message}" for g in gaps[:TOP_GAPS]]
    return "\n".join(lines)


def criteria_met(result: Scan, intention: Intention) -> bool:
    """No unmet criterion; without criteria, no gap at all."""
    criteria = intention.success_criteria
    if criteria.tests or criteria.commands or criteria.files:
        return not any(gap.kind == "criterion" for gap in result.gaps)
    return not result.gaps


@dataclass
class Autopilot:
    """One autopilot: the repository, its intention, the model and the policy."""

    root: Path
    intention: Intention
    model_spec: str | None
    auto_approve: bool
    say: Callable[[str], None] = print
    autopilot_id: str = field(default_factory=lambda: secrets.token_hex(4))
    intention_source: Path | None = None
    wait: bool = True
    """Wait for a person's answer to a plan (or a run's phase); else leave it waiting."""
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        from autopack.engine.runtime import Runtime

        if not re.fullmatch(r"[0-9a-f]{8}", self.autopilot_id):
            raise AutopilotProblem(f"{self.autopilot_id!r} is not an autopilot id (8 hex digits)")
        self.rt = Runtime.open(self.root, model_override=self.model_spec)
        self.store = self.rt.store
        self.folder = self.root / STATE_DIR / "autopilot" / self.autopilot_id
        self.branch = f"autopack/autopilot-{self.autopilot_id}"
        self._scans: dict[str, Scan] = {}
        self._told_waiting = False

    # -- entry points ------------------------------------------------------------------

    def run(self) -> Outcome:
        """A new autopilot from HEAD."""
        from autopack.workspace import git

        tip = git.rev_parse(self.root, "HEAD") or ""
        git.create_branch(self.root, self.branch, tip)
        source = self.intention_source
        text = source.read_bytes() if source is not None and source.is_file() else b""
        budget = self.intention.budgets.total.model_dump(mode="json", exclude_none=True)
        started = AutopilotStarted(
            repo=str(self.root),
            branch=self.branch,
            base_commit=tip,
            intention_source=str(source or ""),
            intention_digest=hashlib.sha256(text).hexdigest(),
            budget=budget,
            iterations=self.intention.budgets.iterations,
            auto_approve=self.auto_approve,
            model=self.model_spec,
        )
        self.store.autopilots.create(self.autopilot_id, started)
        self.say(f"autopilot {self.autopilot_id} on {self.branch}")
        return self._drive()

    def resume(self) -> Outcome:
        """Go on from the store's log after a crash: a run the crash interrupted is resumed
        (its recorded steps are not redone); a plan that waited for a person still waits."""
        view = self.view()
        if view.stop_reason:
            raise AutopilotProblem(f"autopilot {self.autopilot_id} has ended: {view.stop_reason}")
        return self._drive()

    def view(self) -> AutopilotView:
        try:
            return self.store.autopilots.view(self.autopilot_id)
        except AutopilotNotFound:
            raise AutopilotProblem(f"no autopilot {self.autopilot_id} in this repository") from None

    # -- the loop: one step per pass, chosen from the recorded state ---------------------

    def _drive(self) -> Outcome:
        try:
            while True:
                view = self.view()
                if view.stop_reason:
                    return self._outcome(view)
                left_waiting = self._step(view)
                if left_waiting is not None:
                    return left_waiting
        except KeyboardInterrupt:
            return self._stop("stopped by a person", "interrupted")

    def _step(self, view: AutopilotView) -> Outcome | None:
        """Do the next step; an outcome when the autopilot leaves a person to answer."""
        it = view.current
        if it is None or it.ended:
            self._begin(view, it)
        elif it.plan is None:
            self._draft_plan(view, it)
        elif it.approval == "":
            self._ask(it)
        elif it.approval == "waiting":
            return self._wait(view, it)
        elif it.approval == "rejected":
            why = f"plan {it.number} rejected by {it.decided_by}: {it.note}"
            self._stop("stopped by a person", why)
        elif it.run_state in ("", RunState.RUNNING.value):
            return self._run(view, it)
        else:
            self._end(view, it)
        return None

    def _begin(self, view: AutopilotView, previous: IterationView | None) -> None:
        number = previous.number + 1 if previous is not None else 1
        tip = previous.tip_after if previous is not None else view.started.base_commit
        if view.stop_requested_by:
            self._stop("stopped by a person", f"stop requested by {view.stop_requested_by}")
            return
        result = self._scan(tip)
        self.say(f"iteration {number}: {len(result.gaps)} gaps at {tip[:12]}")
        if criteria_met(result, self.intention):
            self._stop("criteria met")
        elif number > view.started.iterations:
            self._stop("iterations spent")
        elif self._left(view) is None:
            self._stop("budget spent")
        else:
            self._append(
                IterationBegan(
                    iteration=number, tip=tip, gaps=len(result.gaps), counts=result.counts(),
                    keys=[list(gap.key()) for gap in result.gaps],
                )
            )  # fmt: skip

    def _draft_plan(self, view: AutopilotView, it: IterationView) -> None:
        left = self._left(view)
        if left is None:
            self._stop("budget spent")
            return
        planner = Spent()
        try:
            plan = self._draft(goal_for(self._scan(it.tip).gaps, self.intention), left, planner)
        except BudgetExceeded as exc:
            self._stop("budget spent", str(exc))
            return
        after = self._left(view, planner)
        run_id = f"autopilot-{self.autopilot_id}-{it.number}"
        goal = f"{plan.run.goal} {self.intention.brief()}"
        run = plan.run.model_copy(update={"id": run_id, "budget": after or left, "goal": goal})
        plan = plan.model_copy(update={"run": run})
        path = self.folder / f"plan-{it.number}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan_to_yaml(plan), encoding="utf-8")
        self._append(
            PlanDrafted(
                iteration=it.number, plan=plan.model_dump(mode="json"),
                plan_digest=plan.digest(), plan_path=str(path), run_id=run_id,
                tokens=planner.tokens, cost_usd=planner.cost_usd,
                model_calls=planner.model_calls,
            )
        )  # fmt: skip
        if after is None:  # the Planner's call used what was left
            self._stop("budget spent", "nothing left to run a plan")

    def _ask(self, it: IterationView) -> None:
        from autopack.autopilot import commands

        plan = Plan.model_validate(it.plan)
        problems = plan_problems(plan, self.intention)
        if self.auto_approve and not problems:
            commands.approve_by_policy(self.store, self.autopilot_id, it.number)
            return
        reasons = problems or ["auto-approval is off"]
        self._append(PlanApprovalRequested(iteration=it.number, reasons=reasons))

    def _wait(self, view: AutopilotView, it: IterationView) -> Outcome | None:
        """A person answers the plan (approve, reject, stop) from anywhere; until then the
        autopilot polls its log, or leaves it waiting when it does not wait."""
        if view.stop_requested_by:
            self._stop("stopped by a person", f"stop requested by {view.stop_requested_by}")
            return None
        why = "; ".join(it.reasons)
        if not self.wait:
            outcome = self._outcome(view, "needs a person", why)
            outcome.plan_for_review = Path(it.plan_path)
            return outcome
        if not self._told_waiting:
            self.say(
                f"iteration {it.number}: plan {it.plan_path} waits for a person ({why}): "
                f"autopack autopilot approve {self.autopilot_id}, or reject it with a note"
            )
            self._told_waiting = True
        time.sleep(self.poll_s)
        return None

    def _run(self, view: AutopilotView, it: IterationView) -> Outcome | None:
        """Execute (or resume) the iteration's run; an outcome when a phase of it waits
        for a person and the autopilot does not wait."""
        from autopack.engine.create import create_run
        from autopack.engine.local import LocalExecutor
        from autopack.states import RUN_TERMINAL
        from autopack.store import RunNotFound

        if view.stop_requested_by and not it.run_state:
            self._stop("stopped by a person", f"stop requested by {view.stop_requested_by}")
            return None
        try:
            state = self.store.view(it.run_id).state
            self.say(f"iteration {it.number}: resuming run {it.run_id}")
        except RunNotFound:
            plan = Plan.model_validate(it.plan)
            create_run(self.rt, plan, plan_source=it.plan_path, run_id=it.run_id, base=it.tip)
            state = RunState.QUEUED
        if state not in RUN_TERMINAL:
            state = LocalExecutor(self.rt).execute(it.run_id, wait_for_approvals=self.wait)
        spend = self.store.view(it.run_id).spend
        self._append(
            IterationRunFinished(
                iteration=it.number, run_id=it.run_id, state=state.value, tokens=spend.tokens,
                cost_usd=spend.cost_usd, model_calls=spend.model_calls,
            )
        )  # fmt: skip
        self.say(f"iteration {it.number}: run {it.run_id} {state.value}")
        if state is RunState.RUNNING:  # a phase waits: the gate asked a person
            why = f"run {it.run_id} waits for approval (autopack approve {it.run_id} PHASE)"
            return self._outcome(self.view(), "needs a person", why)
        return None

    def _end(self, view: AutopilotView, it: IterationView) -> None:
        """Move the autopilot branch to what the run landed, scan it, record the progress."""
        from autopack.workspace import git

        landed, broken = it.tip, []
        if it.run_state == RunState.SUCCEEDED.value:
            head = git.rev_parse(self.root, self.store.view(it.run_id).branch) or it.tip
            broken = violations(self.root, self.intention.constraints, it.tip, head)
            landed = it.tip if broken else head
        if landed != it.tip and git.rev_parse(self.root, self.branch) == it.tip:
            git.move_branch(self.root, self.branch, landed, it.tip)
        result = self._scan(landed)
        keys = [list(gap.key()) for gap in result.gaps]
        closed = len({tuple(k) for k in it.keys} - {tuple(k) for k in keys})
        detail = f"run {it.run_id} breaks the intention: " + "; ".join(broken) if broken else ""
        self._append(
            IterationEnded(
                iteration=it.number, tip=landed, landed=landed != it.tip, closed=closed,
                gaps=len(result.gaps), counts=result.counts(), keys=keys, detail=detail,
            )
        )  # fmt: skip
        self.say(f"iteration {it.number}: {closed} gaps closed")
        if broken:  # the run's branch stays for a person to look at; ours did not move
            self._stop("needs a person", detail)
        elif criteria_met(result, self.intention):
            self._stop("criteria met")
        elif landed == it.tip:
            self._stop("no progress", "the run landed nothing")
        elif closed == 0:
            self._stop("no progress", "no gap closed")

    # -- parts ---------------------------------------------------------------------------

    def _scan(self, tip: str) -> Scan:
        """The scan of a commit, once per commit in this process (it is deterministic)."""
        if tip not in self._scans:
            self._scans[tip] = scan(self.root, self.intention, self.rt.settings, ref=tip)
        return self._scans[tip]

    def _left(self, view: AutopilotView, extra: Spent | None = None) -> Budget | None:
        spent = Spent(view.tokens, view.cost_usd, view.model_calls)
        if extra is not None:
            spent.add(extra.tokens, extra.cost_usd, extra.model_calls)
        return spent.remaining(self.intention.budgets.total)

    def _append(self, payload: Payload) -> None:
        self.store.autopilots.append(self.autopilot_id, payload)

    def _draft(self, goal: str, left: Budget, spent: Spent) -> Plan:
        from autopack.config import load_settings
        from autopack.llm.door import BudgetLedger, Caps, ModelDoor, choose_model, resolve_model
        from autopack.llm.door import Spent as DoorSpent
        from autopack.llm.pricing import PriceTable
        from autopack.roles import draft_plan

        settings = load_settings(self.root)
        models = settings.models.model_dump()
        spec = choose_model("planner", "low", 1, models, self.model_spec)
        model = resolve_model(spec, settings=models)

        def count(call: ModelCalled) -> None:
            spent.add(call.input_tokens + call.output_tokens, call.cost_usd, 1)

        door = ModelDoor(
            run_id=f"autopilot-{self.autopilot_id}",
            ledger=BudgetLedger(Caps.of(left), {}, DoorSpent(), {}),
            prices=PriceTable.default(settings.prices),
            on_call=count,
        )
        calls = itertools.count(sum(i.planner_spend[2] for i in self.view().iterations))
        return draft_plan(
            goal,
            self.root,
            door=door,
            model=model,
            call_counter=lambda role: next(calls),
            intention=self.intention.prompt_text(),
        )

    def _stop(self, reason: str, detail: str = "") -> Outcome:
        ended = sum(1 for it in self.view().iterations if it.ended)
        payload = AutopilotStopped(reason=reason, detail=detail, iterations=ended)
        self._append(payload)
        return self._outcome(self.view())

    def _outcome(self, view: AutopilotView, stop: str = "", detail: str = "") -> Outcome:
        return Outcome(
            self.autopilot_id,
            self.branch,
            stop=stop or view.stop_reason,
            detail=detail or view.stop_detail,
            iterations=sum(1 for it in view.iterations if it.ended),
            runs=view.runs,
        )
