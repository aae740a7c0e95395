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

Every iteration is recorded as JSON lines in ``.autopack/autopilot/<id>/events.jsonl``;
each run it starts is an ordinary run in the store (``autopack status RUN``). After a
crash, :meth:`Autopilot.resume` goes on from that journal and the branch.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopack.autopilot.constraints import violations
from autopack.autopilot.gaps import Gap, Scan, scan
from autopack.autopilot.intention import Intention
from autopack.config import STATE_DIR
from autopack.events import ModelCalled
from autopack.llm.errors import BudgetExceeded
from autopack.plan import Budget, Plan, globs_overlap, path_matches, plan_to_yaml
from autopack.states import RunState

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


def _keys(scanned: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(k[0], k[1], k[2]) for k in scanned.get("keys", [])}


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


class Journal:
    """The autopilot's events: one JSON object per line, appended and flushed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def record(self, event: str, **data: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"event": event, **data}, sort_keys=True) + "\n")


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

    def __post_init__(self) -> None:
        from autopack.engine.runtime import Runtime

        if not re.fullmatch(r"[0-9a-f]{8}", self.autopilot_id):
            raise AutopilotProblem(f"{self.autopilot_id!r} is not an autopilot id (8 hex digits)")
        self.rt = Runtime.open(self.root, model_override=self.model_spec)
        self.folder = self.root / STATE_DIR / "autopilot" / self.autopilot_id
        self.journal = Journal(self.folder / "events.jsonl")
        self.branch = f"autopack/autopilot-{self.autopilot_id}"
        self.spent = Spent()
        self._planner_calls = itertools.count()

    def run(self) -> Outcome:
        """A new autopilot from HEAD."""
        from autopack.workspace import git

        tip = git.rev_parse(self.root, "HEAD") or ""
        git.create_branch(self.root, self.branch, tip)
        self.journal.record("started", branch=self.branch, base=tip)
        outcome = Outcome(self.autopilot_id, self.branch, stop="iterations spent")
        return self._loop(1, tip, None, outcome)

    def resume(self) -> Outcome:
        """Go on from the journal after a crash: the branch tip is where the work stands;
        a run the crash interrupted is resumed (its recorded steps are not redone)."""
        from autopack.workspace import git

        events = self.journal.read()
        if not events:
            raise AutopilotProblem(f"no autopilot {self.autopilot_id} in this repository")
        ended = next((e for e in events if e["event"] == "stopped"), None)
        if ended is not None:
            raise AutopilotProblem(f"autopilot {self.autopilot_id} has ended: {ended['stop']}")
        tip = git.rev_parse(self.root, self.branch) or ""
        outcome = Outcome(self.autopilot_id, self.branch, stop="iterations spent")
        for event in events:
            if event["event"] in ("planned", "run_finished"):
                self.spent.add(event["tokens"], event["cost_usd"], event["model_calls"])
            elif event["event"] == "run_started":
                outcome.runs.append(event["run_id"])
        calls = sum(e["model_calls"] for e in events if e["event"] == "planned")
        self._planner_calls = itertools.count(calls)
        finished = {e["iteration"] for e in events if e["event"] == "run_finished"}
        scans = {e["iteration"]: e for e in events if e["event"] == "scanned"}
        started = {e["iteration"]: e["run_id"] for e in events if e["event"] == "run_started"}
        self.journal.record("resumed", tip=tip)
        number = max(scans, default=1)
        outcome.iterations = max(finished, default=0)
        before = _keys(scans[number - 1]) if number - 1 in scans else None
        if number in started and number not in finished:  # the crash hit this run
            self.say(f"iteration {number}: resuming run {started[number]}")
            try:
                new_tip = self._finish_run(number, started[number], tip, outcome)
            except KeyboardInterrupt:
                return self._stop(outcome, "stopped by a person", outcome.iterations)
            if new_tip is None:
                return outcome
            if new_tip == tip:
                return self._stop(outcome, "no progress", number, "the run landed nothing")
            self._advance(tip, new_tip)
            tip, before, number = new_tip, _keys(scans[number]), number + 1
        return self._loop(number, tip, before, outcome)

    def _loop(
        self, first: int, tip: str, before: set[tuple[str, str, str]] | None, outcome: Outcome
    ) -> Outcome:
        try:
            for number in range(first, self.intention.budgets.iterations + 1):
                result = scan(self.root, self.intention, self.rt.settings, ref=tip)
                keys = {gap.key() for gap in result.gaps}
                self.journal.record(
                    "scanned", iteration=number, tip=tip, counts=result.counts(),
                    keys=sorted(keys),
                )  # fmt: skip
                self.say(f"iteration {number}: {len(result.gaps)} gaps at {tip[:12]}")
                if criteria_met(result, self.intention):
                    return self._stop(outcome, "criteria met", number - 1)
                if before is not None and not before - keys:
                    return self._stop(outcome, "no progress", number - 1, "no gap closed")
                before = keys
                left = self.spent.remaining(self.intention.budgets.total)
                if left is None:
                    return self._stop(outcome, "budget spent", number - 1)
                new_tip = self._iterate(number, result, tip, left, outcome)
                if new_tip is None:
                    return outcome  # stopped for a person
                if new_tip == tip:
                    return self._stop(outcome, "no progress", number, "the run landed nothing")
                self._advance(tip, new_tip)
                tip = new_tip
            final = scan(self.root, self.intention, self.rt.settings, ref=tip)
            if criteria_met(final, self.intention):
                return self._stop(outcome, "criteria met", self.intention.budgets.iterations)
            return self._stop(outcome, "iterations spent", self.intention.budgets.iterations)
        except KeyboardInterrupt:
            return self._stop(outcome, "stopped by a person", outcome.iterations)

    def _advance(self, old: str, new: str) -> None:
        from autopack.workspace import git

        git.move_branch(self.root, self.branch, new, old)

    def _iterate(
        self, number: int, result: Scan, tip: str, left: Budget, outcome: Outcome
    ) -> str | None:
        """Plan, approve, run; the new tip, or ``None`` when a person must decide."""
        from autopack.engine.create import create_run

        before = Spent(self.spent.tokens, self.spent.cost_usd, self.spent.model_calls)
        try:
            plan = self._draft(goal_for(result.gaps, self.intention), left)
        except BudgetExceeded as exc:
            self._stop(outcome, "budget spent", number - 1, str(exc))
            return None
        self.journal.record(
            "planned", iteration=number, tokens=self.spent.tokens - before.tokens,
            cost_usd=round(self.spent.cost_usd - before.cost_usd, 6),
            model_calls=self.spent.model_calls - before.model_calls,
        )  # fmt: skip
        after_planner = self.spent.remaining(self.intention.budgets.total)
        if after_planner is None:  # the Planner's call used what was left
            self._stop(outcome, "budget spent", number - 1, "nothing left to run a plan")
            return None
        left = after_planner
        run_id = f"autopilot-{self.autopilot_id}-{number}"
        goal = f"{plan.run.goal} {self.intention.brief()}"
        run = plan.run.model_copy(update={"id": run_id, "budget": left, "goal": goal})
        plan = plan.model_copy(update={"run": run})
        path = self.folder / f"plan-{number}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan_to_yaml(plan), encoding="utf-8")
        problems = plan_problems(plan, self.intention)
        if problems or not self.auto_approve:
            why = "; ".join(problems) or "auto-approval is off"
            self.journal.record("needs_person", iteration=number, plan=str(path), reasons=why)
            outcome.plan_for_review = path
            self._stop(outcome, "needs a person", number - 1, why)
            return None
        self.journal.record("approved", iteration=number, plan=str(path), by="policy")
        run_id = create_run(self.rt, plan, plan_source=str(path), base=tip)
        outcome.runs.append(run_id)
        self.journal.record("run_started", iteration=number, run_id=run_id)
        return self._finish_run(number, run_id, tip, outcome)

    def _finish_run(self, number: int, run_id: str, tip: str, outcome: Outcome) -> str | None:
        """Execute (or resume) an iteration's run; the new tip, or ``None`` for a person."""
        from autopack.engine.local import LocalExecutor
        from autopack.workspace import git

        state = LocalExecutor(self.rt).execute(run_id, wait_for_approvals=False)
        view = self.rt.store.view(run_id)
        spend = view.spend
        self.spent.add(spend.tokens, spend.cost_usd, spend.model_calls)
        self.journal.record(
            "run_finished", iteration=number, run_id=run_id, state=state.value,
            model_calls=spend.model_calls, cost_usd=spend.cost_usd, tokens=spend.tokens,
        )  # fmt: skip
        self.say(f"iteration {number}: run {run_id} {state.value}")
        outcome.iterations = number
        if state is RunState.RUNNING:  # a phase waits for approval: the gate asked a person
            why = f"run {run_id} waits for approval (autopack approve {run_id} PHASE)"
            self._stop(outcome, "needs a person", number, why)
            return None
        if state is not RunState.SUCCEEDED:
            return tip
        landed = git.rev_parse(self.root, view.branch) or tip
        broken = violations(self.root, self.intention.constraints, tip, landed)
        if broken:  # the run's branch stays for a person to look at; ours does not move
            why = f"run {run_id} breaks the intention: " + "; ".join(broken)
            self.journal.record("constraint_violated", iteration=number, run_id=run_id, why=why)
            self._stop(outcome, "needs a person", number, why)
            return None
        return landed

    def _draft(self, goal: str, left: Budget) -> Plan:
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
            self.spent.add(call.input_tokens + call.output_tokens, call.cost_usd, 1)

        door = ModelDoor(
            run_id=f"autopilot-{self.autopilot_id}",
            ledger=BudgetLedger(Caps.of(left), {}, DoorSpent(), {}),
            prices=PriceTable.default(settings.prices),
            on_call=count,
        )
        return draft_plan(
            goal,
            self.root,
            door=door,
            model=model,
            call_counter=lambda role: next(self._planner_calls),
            intention=self.intention.prompt_text(),
        )

    def _stop(self, outcome: Outcome, stop: str, iterations: int, detail: str = "") -> Outcome:
        outcome.stop, outcome.detail = stop, detail
        outcome.iterations = max(outcome.iterations, iterations)
        self.journal.record("stopped", stop=stop, detail=detail, iterations=outcome.iterations)
        return outcome
