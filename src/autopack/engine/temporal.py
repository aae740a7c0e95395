"""The Temporal driver: a run is a workflow, each command of the decider an activity.

The workflow body holds the run's projected state (folded from the events the
activities return), calls the same pure :func:`~autopack.engine.decider.decide` as the
local executor, and schedules one activity per command. It does no I/O itself, so it
passes Temporal's sandbox and replays deterministically. Activities do the work on
any worker: they read the store, carry out the command with the same step functions
as the local executor, record the result as events and hand the new events back.

One activity carries out a stretch of one phase attempt: its first command, then each
further step the decider asks for in the same attempt (up to the audit, or through the
gate and the commit when the workflow lets it gate). A round trip through the cluster
costs more than most steps, and the steps of one attempt share a worktree.

Every activity is safe to retry: before each command it asks the decider again whether
the command is still due (a retry after the first try recorded a result finds the next
one instead), and steps start from what earlier steps recorded. Approvals are signals, the approval
timeout a durable timer, cancellation is workflow cancellation, progress a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

with workflow.unsafe.imports_passed_through():
    from autopack.engine.decider import (
        Command,
        FailPhase,
        FinishRun,
        RunStep,
        SkipPhase,
        StartAttempt,
        decide,
    )
    from autopack.events import Event
    from autopack.projection import RunView, apply
    from autopack.states import RUN_TERMINAL, RunState

NON_RETRYABLE = ["EnvironmentProblem"]


@dataclass
class RunInput:
    """What a run workflow is started with; everything else it reads from the store."""

    run_id: str
    max_parallel: int = 1
    approval_timeout_s: float | None = None
    """A phase waiting longer for a person fails (a durable timer); ``None`` waits forever."""
    heartbeat_timeout_s: float = 30.0
    """A worker silent this long is presumed dead; its step is retried on another."""
    step_timeout_s: float = 4 * 3600.0
    """Longest one step may take, retries not included."""


@dataclass
class CommandInput:
    """One decider command for an activity, and the sequence number the workflow knows."""

    run_id: str
    kind: str
    phase_id: str
    after: int
    max_parallel: int
    attempt: int = 0
    step: str = ""
    reason: str = ""
    through_gate: bool = False
    """Whether the activity may go on through the gate and the commit; the workflow lets
    one activity of a run at a time gate, since the proofs form one chain per run."""


@dataclass
class Verdict:
    """A person's answer to a waiting phase (the ``verdict`` signal)."""

    phase_id: str
    attempt: int
    approve: bool
    note: str = ""
    by: str = ""
    fail: bool = False


@dataclass
class Outcome:
    """The events an activity saw after the workflow's last one, and a run budget stop."""

    events: list[dict[str, Any]] = field(default_factory=list)
    budget_stop: str = ""


@dataclass
class Ending:
    run_id: str
    state: str
    reason: str
    after: int


def sandbox_runner() -> SandboxedWorkflowRunner:
    """Temporal's sandbox, with Autopack's modules shared rather than re-imported: the
    workflow only calls the pure decider and projection, which do no I/O."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules("autopack")
    return SandboxedWorkflowRunner(restrictions=restrictions)


def workflow_id(run_id: str) -> str:
    return f"autopack-{run_id}"


_KINDS = {StartAttempt: "start", RunStep: "step", FailPhase: "fail", SkipPhase: "skip"}


def to_input(
    command: Command, run_id: str, after: int, max_parallel: int, through_gate: bool = False
) -> CommandInput:
    """A phase command as activity input (``FinishRun`` is the workflow's own business)."""
    if isinstance(command, FinishRun):
        raise TypeError(f"{command!r} is not a phase command")
    return CommandInput(
        run_id=run_id,
        kind=_KINDS[type(command)],
        phase_id=command.phase_id,
        after=after,
        max_parallel=max_parallel,
        attempt=getattr(command, "attempt", 0),
        step=getattr(command, "step", ""),
        reason=getattr(command, "reason", ""),
        through_gate=through_gate,
    )


def to_command(data: CommandInput) -> Command:
    if data.kind == "start":
        return StartAttempt(data.phase_id, data.attempt)
    if data.kind == "step":
        return RunStep(data.phase_id, data.attempt, data.step)
    if data.kind == "fail":
        return FailPhase(data.phase_id, data.attempt, data.reason)
    return SkipPhase(data.phase_id, data.reason)


# -- the workflow ---------------------------------------------------------------------


@workflow.defn(name="AutopackRun")
class RunWorkflow:
    """One run: decide, schedule the commands as activities, fold their events, repeat."""

    def __init__(self) -> None:
        self._view: RunView | None = None
        self._verdicts: list[Verdict] = []
        self._refresh = False
        self._deadlines: dict[tuple[str, int], float] = {}
        self._in_flight: dict[str, asyncio.Task[Outcome]] = {}
        self._gating: str | None = None
        self._budget_stop = ""
        self._spec = RunInput(run_id="")

    @workflow.signal
    def verdict(self, answer: Verdict) -> None:
        """Approve or reject a phase waiting for a person."""
        self._verdicts.append(answer)

    @workflow.signal
    def refresh(self) -> None:
        """Events were appended outside the workflow (an approval through the API)."""
        self._refresh = True

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """The run's state and each phase's state, attempt and step, as the workflow knows."""
        view = self._view
        if view is None:
            return {"state": "QUEUED", "phases": {}, "last_seq": 0}
        phases = {
            pid: {"state": p.state.value, "attempt": p.attempt, "step": p.step}
            for pid, p in view.phases.items()
        }
        return {"state": view.state.value, "phases": phases, "last_seq": view.last_seq}

    @workflow.run
    async def run(self, spec: RunInput) -> str:
        self._spec = spec
        try:  # a cancellation while the run begins still records the cancel
            self._absorb(await self._act("begin", spec.run_id))
            return await self._drive()
        except asyncio.CancelledError:
            await self._stop_in_flight()
            reason = "cancelled (workflow cancellation)"
            ending = Ending(spec.run_id, RunState.CANCELLED.value, reason, self._seq())
            self._absorb(await self._act("cancel", ending))
            raise

    async def _drive(self) -> str:
        while True:
            view = self._current()
            if view.state is not RunState.RUNNING:
                return view.state.value
            if self._refresh:
                self._refresh = False
                self._absorb(await self._act("events_since", self._spec.run_id, self._seq()))
                continue
            if self._verdicts:
                await self._record_verdict(self._verdicts.pop(0))
                continue
            if view.cancel_requested and self._in_flight:
                await self._stop_in_flight()
            if await self._finish_if_due(view):
                continue
            self._schedule(view)
            failure = await self._wait()
            if failure is not None:
                await self._stop_in_flight()
                ending = Ending(self._spec.run_id, RunState.PAUSED.value, failure, self._seq())
                self._absorb(await self._act("pause", ending))

    async def _finish_if_due(self, view: RunView) -> bool:
        commands = decide(view, self._spec.max_parallel)
        if self._budget_stop:
            commands = [FinishRun(RunState.FAILED, self._budget_stop)]
        finish = next((c for c in commands if isinstance(c, FinishRun)), None)
        if finish is None or self._in_flight:
            return False
        ending = Ending(self._spec.run_id, finish.state.value, finish.reason, self._seq())
        self._absorb(await self._act("finish", ending))
        return True

    def _schedule(self, view: RunView) -> None:
        if view.cancel_requested or self._budget_stop:
            return
        for command in decide(view, self._spec.max_parallel):
            phase_id = getattr(command, "phase_id", None)
            if phase_id is None or phase_id in self._in_flight:
                continue
            gating = isinstance(command, RunStep) and command.step == "gate"
            if gating and self._gating is not None:
                continue  # the proof chain is one sequence per run
            # With one phase at a time an attempt runs in one activity, gate included;
            # parallel phases stop before the gate and queue for it.
            attempt_work = isinstance(command, StartAttempt | RunStep)
            alone = self._spec.max_parallel == 1
            through_gate = attempt_work and self._gating is None and (gating or alone)
            if through_gate:
                self._gating = phase_id
            data = to_input(
                command, view.run_id, view.last_seq, self._spec.max_parallel, through_gate
            )
            self._in_flight[phase_id] = asyncio.ensure_future(self._act("carry_out", data))

    async def _wait(self) -> str | None:
        """Until an activity ends, a signal comes or an approval times out; a failure's text."""
        waiting = asyncio.ensure_future(self._signalled(self._next_deadline()))
        tasks: list[asyncio.Future[Any]] = [waiting, *self._in_flight.values()]
        await workflow.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
        await self._expire_approvals()
        for phase_id, task in list(self._in_flight.items()):
            if not task.done():
                continue
            del self._in_flight[phase_id]
            if self._gating == phase_id:
                self._gating = None
            try:
                outcome = task.result()
            except ActivityError as exc:
                return f"a worker could not carry out a step of {phase_id}: {exc.cause or exc}"
            self._budget_stop = self._budget_stop or outcome.budget_stop
            self._absorb(outcome)
        return None

    async def _signalled(self, timeout: float | None) -> None:
        try:
            await workflow.wait_condition(
                lambda: bool(self._verdicts) or self._refresh, timeout=timeout
            )
        except TimeoutError:
            return

    def _next_deadline(self) -> float | None:
        if not self._deadlines:
            return None
        now = workflow.now().timestamp()
        return max(0.0, min(self._deadlines.values()) - now)

    async def _expire_approvals(self) -> None:
        now = workflow.now().timestamp()
        for (phase_id, attempt), deadline in sorted(self._deadlines.items()):
            if deadline <= now:
                limit = self._spec.approval_timeout_s or 0.0
                note = f"no approval within {limit:g} s"
                answer = Verdict(phase_id, attempt, False, note, by="timeout", fail=True)
                await self._record_verdict(answer)

    async def _record_verdict(self, answer: Verdict) -> None:
        self._absorb(await self._act("record_verdict", self._spec.run_id, answer, self._seq()))

    async def _stop_in_flight(self) -> None:
        for task in self._in_flight.values():
            task.cancel()
        for phase_id, task in list(self._in_flight.items()):
            with contextlib.suppress(asyncio.CancelledError, ActivityError):
                self._absorb(await task)
            del self._in_flight[phase_id]
        self._gating = None

    def _act(self, name: str, *args: Any) -> Any:
        spec = self._spec
        return workflow.execute_activity(
            name,
            args=list(args),
            result_type=Outcome,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=timedelta(seconds=spec.step_timeout_s),
            heartbeat_timeout=timedelta(seconds=spec.heartbeat_timeout_s),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=30),
                non_retryable_error_types=NON_RETRYABLE,
            ),
        )

    def _absorb(self, outcome: Outcome) -> None:
        for data in outcome.events:
            event = Event.model_validate(data)
            if event.seq <= self._seq():
                continue
            self._view = apply(self._view, event)
        self._track_approvals()

    def _track_approvals(self) -> None:
        view = self._current()
        waiting = {
            (p.id, p.attempt) for p in view.phases.values() if p.state.value == "AWAITING_APPROVAL"
        }
        for key in list(self._deadlines):
            if key not in waiting:
                del self._deadlines[key]
        timeout = self._spec.approval_timeout_s
        if timeout is None:
            return
        now = workflow.now().timestamp()
        for key in sorted(waiting - set(self._deadlines)):
            self._deadlines[key] = now + timeout

    def _current(self) -> RunView:
        assert self._view is not None, "the run's first events are absorbed before anything"
        return self._view

    def _seq(self) -> int:
        return self._view.last_seq if self._view is not None else 0


# -- the activities -------------------------------------------------------------------

# Imported after the workflow: nothing below runs inside the workflow sandbox.
with workflow.unsafe.imports_passed_through():
    import json
    from pathlib import Path

    from temporalio.client import Client, WorkflowHandle
    from temporalio.common import WorkflowIDReusePolicy

    from autopack.config import Settings, load_settings
    from autopack.engine import commands, steps
    from autopack.engine.approvals import ApprovalPolicy
    from autopack.engine.attempts import (
        STEP_FUNCTIONS,
        EnvironmentProblem,
        StepRunner,
        call_recorder,
        phase_started,
    )
    from autopack.engine.budget_ledger import StoreBudgetLedger
    from autopack.engine.create import RepoProblem, new_run_id, run_created
    from autopack.engine.runtime import Runtime
    from autopack.engine.summary import TIDY_FILE, close_run
    from autopack.engine.worker import DEFAULT_TASK_QUEUE, RepoCache
    from autopack.events import (
        RunFinished,
        RunStarted,
    )
    from autopack.llm.cassette import Cassette
    from autopack.llm.door import Caps, ModelDoor
    from autopack.llm.limits import LimitTable
    from autopack.llm.pricing import PriceTable
    from autopack.plan import Plan
    from autopack.store import Store
    from autopack.store.files import RunFiles
    from autopack.workspace import git
    from autopack.workspace.runner import sandbox_for


PRE_GATE = frozenset({"build", "apply", "verify", "audit"})
"""Steps an activity runs on past its first command without leave to gate."""


class RunActivities:
    """The activities of run workflows, for one worker process."""

    def __init__(
        self, store: Store, repos: RepoCache, pool: ThreadPoolExecutor, heartbeat_s: float = 2.0
    ) -> None:
        self.store = store
        self.repos = repos
        self.pool = pool
        self.heartbeat_s = heartbeat_s
        self._runtimes: dict[str, Runtime] = {}
        self._guard = threading.Lock()

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.begin,
            self.carry_out,
            self.record_verdict,
            self.events_since,
            self.finish,
            self.cancel,
            self.pause,
        ]

    # Each activity runs its blocking body in the pool while heartbeating, so a worker
    # killed in the middle of a step is noticed within the heartbeat timeout.

    async def _threaded(self, body: Callable[[threading.Event], Outcome]) -> Outcome:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, body, cancel)
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=self.heartbeat_s)
                if done:
                    return future.result()
                activity.heartbeat()
        except asyncio.CancelledError:
            cancel.set()  # running commands are killed; the step is not recorded
            await asyncio.wait({future})
            raise

    @activity.defn(name="begin")
    async def begin(self, run_id: str) -> Outcome:
        executor = f"temporal:{activity.info().workflow_id}"
        return await self._threaded(lambda _: self._begin(run_id, executor))

    @activity.defn(name="carry_out")
    async def carry_out(self, data: CommandInput) -> Outcome:
        return await self._threaded(lambda cancel: self._carry_out(data, cancel))

    @activity.defn(name="record_verdict")
    async def record_verdict(self, run_id: str, answer: Verdict, after: int) -> Outcome:
        return await self._threaded(lambda _: self._record_verdict(run_id, answer, after))

    @activity.defn(name="events_since")
    async def events_since(self, run_id: str, after: int) -> Outcome:
        return await self._threaded(lambda _: self._events(run_id, after))

    @activity.defn(name="finish")
    async def finish(self, ending: Ending) -> Outcome:
        return await self._threaded(lambda _: self._finish(ending))

    @activity.defn(name="cancel")
    async def cancel(self, ending: Ending) -> Outcome:
        return await self._threaded(lambda _: self._cancel(ending))

    @activity.defn(name="pause")
    async def pause(self, ending: Ending) -> Outcome:
        return await self._threaded(lambda _: self._pause(ending))

    # -- bodies ---------------------------------------------------------------------

    def _events(self, run_id: str, after: int, budget_stop: str = "") -> Outcome:
        events = [e.model_dump(mode="json") for e in self.store.events(run_id, after)]
        return Outcome(events=events, budget_stop=budget_stop)

    def _begin(self, run_id: str, executor: str) -> Outcome:
        view = self.store.view(run_id)
        if view.state in RUN_TERMINAL:
            return self._events(run_id, 0)
        self.runtime(view.repo)  # a remote this worker cannot reach fails here, not later
        if view.state is not RunState.RUNNING or view.last_seq == 1:
            self.store.append(run_id, RunStarted(executor=executor, resumed=view.last_seq > 1))
        return self._events(run_id, 0)

    def _record_verdict(self, run_id: str, answer: Verdict, after: int) -> Outcome:
        # An answer to a phase that no longer waits (answered twice, or the activity
        # retried after recording it) is dropped: the commands refuse it.
        with contextlib.suppress(commands.CommandRefused):
            if answer.approve:
                commands.approve(
                    self.store,
                    run_id,
                    answer.phase_id,
                    by=answer.by,
                    note=answer.note,
                    attempt=answer.attempt,
                )
            else:
                commands.reject(
                    self.store,
                    run_id,
                    answer.phase_id,
                    by=answer.by,
                    note=answer.note,
                    fail=answer.fail,
                    attempt=answer.attempt,
                )
        return self._events(run_id, after)

    def _finish(self, ending: Ending) -> Outcome:
        view = self.store.view(ending.run_id)
        if view.state not in RUN_TERMINAL:
            rt = self.runtime(view.repo)
            for phase_id in view.phases:
                path = rt.worktree(view.run_id, phase_id)
                if path.exists():
                    git.remove_worktree(rt.repo, path)
            head = None
            if rt.settings.tidy_on_finish:  # tidy commits onto the branch as the remote has it
                # Fetched before the end is recorded: a failed fetch retries the activity
                # while the run is still open, so the summary and tidy are not skipped.
                head = self.repos.fetch_branch(view.repo, rt.repo, view.branch)
            event = self.store.append(
                ending.run_id, RunFinished(state=ending.state, reason=ending.reason)
            )
            run_dir = rt.run_dir(view.run_id)
            run_dir.mkdir(parents=True, exist_ok=True)  # this worker may have run no step
            close_run(rt, self.store.view(view.run_id), event.ts)
            if head is not None:
                self._push_tidy(rt, view, run_dir / TIDY_FILE, head)
            RunFiles(self.store.engine, view.run_id, run_dir).push()
        return self._events(ending.run_id, ending.after)

    def _push_tidy(self, rt: Runtime, view: RunView, record: Path, head: str) -> None:
        """Land the docs commit tidy made in this worker's clone on the remote run branch;
        a refusal is recorded beside tidy's own outcome, never raised (the run has ended)."""
        outcome = json.loads(record.read_text(encoding="utf-8"))
        commit = outcome.get("commit")
        if not outcome.get("ok") or not commit:
            return
        try:
            pushed = self.repos.push_branch(view.repo, rt.repo, view.branch, commit, head)
        except git.GitError as exc:
            pushed, outcome["error"] = False, str(exc)
        if not pushed:
            outcome["ok"] = False
            outcome.setdefault("error", f"the run branch on {view.repo} moved; docs not pushed")
            record.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n", "utf-8")

    def _cancel(self, ending: Ending) -> Outcome:
        with contextlib.suppress(commands.RunEnded):
            commands.request_cancel(self.store, ending.run_id, ending.reason)
        return self._finish(ending)

    def _pause(self, ending: Ending) -> Outcome:
        commands.pause(self.store, ending.run_id, ending.reason)
        return self._events(ending.run_id, ending.after)

    # -- carrying out a stretch of one attempt ----------------------------------------

    def runtime(self, url: str) -> Runtime:
        """Live parts for the clone of ``url`` in this worker's cache."""
        with self._guard:
            found = self._runtimes.get(url)
        if found is not None:
            return found
        try:
            repo = self.repos.checkout(url)
        except git.GitError as exc:
            raise EnvironmentProblem(f"cannot clone {url}: {exc}") from exc
        settings = load_settings(repo)
        rt = Runtime(repo, settings, self.store, sandbox_for(settings))
        with self._guard:
            return self._runtimes.setdefault(url, rt)

    def _carry_out(self, data: CommandInput, cancel: threading.Event) -> Outcome:
        command = _due(self.store.view(data.run_id), data)
        if command is None:
            return self._events(data.run_id, data.after)  # done by an earlier try
        if isinstance(command, SkipPhase | FailPhase):
            steps.record_phase_end(self.store, data.run_id, command)
            return self._events(data.run_id, data.after)
        try:
            stop = self._attempt(data, command, cancel)
        except EnvironmentProblem as exc:  # no retry helps; the run pauses
            raise ApplicationError(str(exc), type="EnvironmentProblem", non_retryable=True) from exc
        return self._events(data.run_id, data.after, stop)

    def _attempt(self, data: CommandInput, command: Command, cancel: threading.Event) -> str:
        """Carry out ``command`` and the attempt's further steps this activity may run;
        returns why the run must stop for budget, or ``""``."""
        view = self.store.view(data.run_id)
        rt = self.runtime(view.repo)
        files = RunFiles(self.store.engine, view.run_id, rt.run_dir(view.run_id))
        started = isinstance(command, StartAttempt)
        runner = StepRunner(rt, functools.partial(self._dispatch, files, started), cancel)
        door = self._door(rt, view)
        if isinstance(command, StartAttempt):
            self._start_attempt(rt, view, command)
        else:  # a worker that did not start the attempt may lack its base commit
            base = view.phases[data.phase_id].base_commit
            self.repos.ensure_commit(view.repo, rt.repo, view.branch, base)
        files.pull()  # earlier attempts' proofs go into the commit's note
        next_command: Command | None = command
        while next_command is not None and not cancel.is_set() and not runner.budget_stop:
            if isinstance(next_command, RunStep):
                runner.run(view.run_id, next_command, door)
            next_command = _due(self.store.view(view.run_id), data, following=True)
        return runner.budget_stop

    def _start_attempt(self, rt: Runtime, view: RunView, command: StartAttempt) -> None:
        head = self.repos.fetch_branch(view.repo, rt.repo, view.branch)
        if head is None:
            raise EnvironmentProblem(f"the run branch {view.branch} is gone from {view.repo}")
        self.store.append(view.run_id, phase_started(view, command, head))

    def _dispatch(
        self, files: RunFiles, started: bool, ctx: steps.StepContext, step: str
    ) -> dict[str, Any]:
        """One step; the files it wrote go to the store before its result is recorded, so
        the next step finds them on any worker. ``started``: this activity fetched the
        run branch when it started the attempt."""
        try:
            if step == "gate":  # the workflow lets one activity of a run gate at a time
                return steps.gate_step(ctx, self.store.view(ctx.run_id).last_proof_hash)
            if step == "commit":
                return self._commit(ctx, fetched=started)
            return STEP_FUNCTIONS[step](ctx)
        finally:
            files.push()

    def _commit(self, ctx: steps.StepContext, *, fetched: bool) -> dict[str, Any]:
        """Commit in the clone, then push with a lease on the base; a refused push means
        another worker landed first, and committing again finds its commit (or a conflict).
        A branch ``fetched`` moments ago is trusted for the first try: the lease catches
        a move since, and the fetch it saves is a round trip to the remote per phase."""
        url, repo, branch = ctx.view.repo, ctx.rt.repo, ctx.view.branch
        for tries in range(3):
            if fetched and tries == 0:
                before = git.rev_parse(repo, f"refs/heads/{branch}")
            else:
                before = self.repos.fetch_branch(url, repo, branch)
            result = steps.commit(ctx)
            sha = result.get("commit")
            if sha is None or sha == before:
                return result
            assert before is not None
            if self.repos.push_branch(url, repo, branch, sha, before):
                self.repos.push_notes(url, repo)
                return result
        raise EnvironmentProblem(f"the run branch on {url} kept moving during the commit")

    def _door(self, rt: Runtime, view: RunView) -> ModelDoor:
        phase_caps = {pid: Caps.of(view.plan.phase(pid).budget) for pid in view.phases}
        ledger = StoreBudgetLedger(
            self.store.engine, view.run_id, Caps.of(view.plan.run.budget), phase_caps
        )
        run_dir = rt.run_dir(view.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        return ModelDoor(
            run_id=view.run_id,
            ledger=ledger,
            prices=PriceTable.default(rt.settings.prices),
            on_call=call_recorder(self.store, view.run_id),
            cassette=Cassette(run_dir / "cassette.jsonl"),
            limits=LimitTable.default(rt.settings.models.model_dump()["limits"]),
        )


def _due(view: RunView, data: CommandInput, *, following: bool = False) -> Command | None:
    """The command of ``data``'s phase the decider wants now, if this activity is the one
    to carry it out: its first command, or (``following`` it, or retrying after an
    earlier try got further) a later step of the same attempt it may run."""
    if view.state is not RunState.RUNNING or view.cancel_requested:
        return None
    first = to_command(data)
    commands = decide(view, data.max_parallel)
    wanted = next((c for c in commands if getattr(c, "phase_id", "") == data.phase_id), None)
    if wanted == first and not following:
        return wanted
    if not isinstance(first, StartAttempt | RunStep) or not isinstance(wanted, RunStep):
        return None
    if wanted.attempt != first.attempt:
        return None
    return wanted if wanted.step in PRE_GATE or data.through_gate else None


# -- starting runs --------------------------------------------------------------------


def create_distributed_run(
    store: Store,
    plan: Plan,
    repo_url: str,
    repos: RepoCache,
    *,
    plan_source: str,
    run_id: str | None = None,
    base: str = "HEAD",
    max_parallel: int = 1,
    model_override: str | None = None,
) -> str:
    """Store a run of ``plan`` on the remote ``repo_url`` and push its branch there.

    Workers find everything in the store and the remote: the run names the URL, not a
    folder of this machine.
    """
    clone = repos.checkout(repo_url)
    git.git(clone, "fetch", "-q", "--no-tags", "origin")
    listed = git.git(clone, "ls-remote", "origin", base).split()
    base_commit = listed[0] if listed else git.rev_parse(clone, base)
    if base_commit is None:
        raise RepoProblem(f"{repo_url}: no commit at {base!r}")
    run_id = run_id or plan.run.id or new_run_id()
    branch = f"autopack/{run_id}"
    created = run_created(
        plan,
        plan_source=plan_source,
        repo=repo_url,
        base_commit=base_commit,
        branch=branch,
        settings={"max_parallel": max_parallel, "model_override": model_override},
    )
    store.create_run(run_id, created)
    if not repos.push_branch(repo_url, clone, branch, base_commit, ""):
        raise RepoProblem(f"{repo_url} already has a branch {branch}")
    return run_id


def run_input(store: Store, run_id: str, settings: Settings, **timeouts: float) -> RunInput:
    """The workflow input for a stored run, with the approval timeout of ``settings``."""
    view = store.view(run_id)
    policy = ApprovalPolicy.from_settings(settings.approvals)
    timeout = policy.timeout_s if policy.fail_on_timeout else None
    max_parallel = int(view.settings.get("max_parallel", 1))
    return RunInput(run_id, max_parallel=max_parallel, approval_timeout_s=timeout, **timeouts)


async def start_run(
    client: Client, spec: RunInput, *, task_queue: str = DEFAULT_TASK_QUEUE
) -> WorkflowHandle[Any, str]:
    """Start the run's workflow; a run that already has a live workflow keeps it."""
    return await client.start_workflow(
        RunWorkflow.run,
        spec,
        id=workflow_id(spec.run_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
