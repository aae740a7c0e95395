"""The local executor: the embedded default engine, in this process, with a thread pool.

Its loop is the whole engine: read the projected state, ask the pure decider what to
do, carry the commands out (phase commands in worker threads, one phase at most once
at a time), record each result as an event, repeat. Nothing else changes a run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from autopack.engine import commands, steps
from autopack.engine.approvals import ApprovalPolicy, timed_out
from autopack.engine.attempts import (
    STEP_FUNCTIONS,
    EnvironmentProblem,
    StepRunner,
    call_recorder,
    phase_started,
)
from autopack.engine.decider import (
    Command,
    FailPhase,
    FinishRun,
    RunStep,
    SkipPhase,
    StartAttempt,
    decide,
)
from autopack.engine.runtime import Runtime
from autopack.engine.summary import SUMMARY_FILE, close_run
from autopack.events import (
    RunFinished,
    RunStarted,
)
from autopack.llm.cassette import Cassette
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, Spent
from autopack.llm.limits import LimitTable
from autopack.llm.pricing import PriceTable
from autopack.projection import RunView
from autopack.states import RUN_TERMINAL, RunState
from autopack.workspace import git


class LeaseHeld(RuntimeError):
    """Another live executor holds the run; this one refuses to work on it."""


EXECUTOR_ERROR_FILE = "executor-error.txt"
"""In the run's folder: the traceback of the exception that stopped its executor."""
LEASE_TTL_S = 30.0
"""An executor renews its lease every third of this; one silent for longer is presumed dead."""


class LocalExecutor:
    """Carries one run to its end (or to a wait for approval) in this process."""

    def __init__(
        self, rt: Runtime, *, poll_s: float = 0.5, lease_ttl_s: float = LEASE_TTL_S
    ) -> None:
        self.rt = rt
        self.poll_s = poll_s
        self.lease_ttl_s = lease_ttl_s
        self.approvals = ApprovalPolicy.from_settings(rt.settings.approvals)
        self.name = f"local:{socket.gethostname()}:{os.getpid()}"
        self.cancel = threading.Event()
        self._gate_lock = threading.Lock()
        self.steps = StepRunner(rt, self._dispatch, self.cancel)

    def execute(self, run_id: str, *, wait_for_approvals: bool = True) -> RunState:
        """Run until the run ends; returns its final state (or RUNNING when not waiting)."""
        view = self.rt.store.view(run_id)
        if view.state is RunState.SUCCEEDED:
            self._write_lost_summary(view)
            return view.state
        stop_heartbeat = self._take_lease(run_id)
        try:
            worktrees = [self.rt.worktree(run_id, phase) for phase in view.phases]
            git.clear_run_locks(self.rt.repo, view.branch, worktrees)
            if view.state is not RunState.RUNNING or view.last_seq == 1:
                started = RunStarted(executor=self.name, resumed=view.last_seq > 1)
                self.rt.store.append(run_id, started)
            door = self._door(self.rt.store.view(run_id))
            max_parallel = int(self.rt.store.view(run_id).settings.get("max_parallel", 1))
            with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="phase") as pool:
                return self._loop(run_id, door, pool, max_parallel, wait_for_approvals)
        except Exception as exc:
            self._pause_after(run_id, exc)
            raise
        finally:
            stop_heartbeat.set()
            self.rt.store.release_lease(run_id, self.name)

    def _take_lease(self, run_id: str) -> threading.Event:
        """Hold the run's lease, renewed by a heartbeat thread until the returned event is set."""
        holder = self.rt.store.acquire_lease(run_id, self.name, self.lease_ttl_s, time.time())
        if holder is not None and _dead_here(holder):
            self.rt.store.release_lease(run_id, holder)
            holder = self.rt.store.acquire_lease(run_id, self.name, self.lease_ttl_s, time.time())
        if holder is not None:
            raise LeaseHeld(f"run {run_id} is being executed by {holder}; try again later")
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease_ttl_s / 3):
                self.rt.store.acquire_lease(run_id, self.name, self.lease_ttl_s, time.time())

        threading.Thread(target=beat, name=f"lease-{run_id}", daemon=True).start()
        return stop

    def _pause_after(self, run_id: str, exc: Exception) -> None:
        """The executor stopped on an exception: record the run PAUSED with the reason (its
        worktrees and branch stay, for ``autopack resume``) and keep the traceback."""
        if self.rt.store.view(run_id).state is not RunState.RUNNING:
            return
        kind = "environment" if isinstance(exc, EnvironmentProblem) else type(exc).__name__
        reason = f"{kind}: {exc}".strip()
        run_dir = self.rt.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        trace = "".join(traceback.format_exception(exc))
        (run_dir / EXECUTOR_ERROR_FILE).write_text(trace, encoding="utf-8")
        commands.pause(self.rt.store, run_id, reason)

    def _write_lost_summary(self, view: RunView) -> None:
        """A crash right after the run's last event lost its summary; write it now."""
        if not (self.rt.run_dir(view.run_id) / SUMMARY_FILE).exists():
            close_run(self.rt, view, view.updated_at)

    def _loop(
        self,
        run_id: str,
        door: ModelDoor,
        pool: ThreadPoolExecutor,
        max_parallel: int,
        wait_for_approvals: bool,
    ) -> RunState:
        in_flight: dict[str, Future[None]] = {}
        try:
            return self._steer(run_id, door, pool, max_parallel, wait_for_approvals, in_flight)
        except KeyboardInterrupt:
            self.cancel.set()
            wait(list(in_flight.values()))
            reason = "interrupted (Ctrl-C)"
            commands.request_cancel(self.rt.store, run_id, reason)
            self._finish(self.rt.store.view(run_id), FinishRun(RunState.CANCELLED, reason))
            raise

    def _steer(
        self,
        run_id: str,
        door: ModelDoor,
        pool: ThreadPoolExecutor,
        max_parallel: int,
        wait_for_approvals: bool,
        in_flight: dict[str, Future[None]],
    ) -> RunState:
        while True:
            view = self.rt.store.view(run_id)
            if view.state in RUN_TERMINAL:
                return view.state
            if view.cancel_requested:
                self.cancel.set()  # running commands stop; nothing new starts
            self._enforce_clock(view)
            commands = [] if self.cancel.is_set() and in_flight else decide(view, max_parallel)
            if self.steps.budget_stop and not in_flight:
                commands = [FinishRun(RunState.FAILED, self.steps.budget_stop)]
            finish = next((c for c in commands if isinstance(c, FinishRun)), None)
            if finish is not None and not in_flight:
                self._finish(view, finish)
                continue
            for command in commands:
                phase_id = getattr(command, "phase_id", None)
                if phase_id is None or phase_id in in_flight or self.steps.budget_stop:
                    continue
                in_flight[phase_id] = pool.submit(self._carry_out, run_id, command, door)
            if not in_flight:
                if not wait_for_approvals:
                    return view.state
                time.sleep(self.poll_s)  # only approvals are pending
                continue
            done, _ = wait(list(in_flight.values()), self.poll_s, return_when=FIRST_COMPLETED)
            for phase_id, future in list(in_flight.items()):
                if future in done:
                    del in_flight[phase_id]
                    self._raise_environment(future, in_flight)

    def _enforce_clock(self, view: RunView) -> None:
        """What depends on time stays out of the decider: the run's wall-time budget and
        approval timeouts become events here, and the decider reads those."""
        now = datetime.now(UTC)
        limit = view.plan.run.budget.wall_seconds
        started = datetime.fromisoformat(view.created_at) if view.created_at else now
        if limit is not None and (now - started).total_seconds() > limit:
            self.steps.budget_stop = f"run budget exhausted (wall_seconds: {limit:g} s)"
            self.cancel.set()
        for phase_id, attempt in timed_out(view, self.approvals, now):
            note = f"no approval within {self.approvals.timeout_s:g} s"
            with contextlib.suppress(commands.NotWaiting):  # a person answered meanwhile
                commands.reject(
                    self.rt.store,
                    view.run_id,
                    phase_id,
                    by="timeout",
                    note=note,
                    fail=True,
                    attempt=attempt,
                )

    def _raise_environment(self, future: Future[None], in_flight: dict[str, Future[None]]) -> None:
        error = future.exception()
        if error is None:
            return
        self.cancel.set()
        wait(list(in_flight.values()))
        raise error

    def _finish(self, view: RunView, finish: FinishRun) -> None:
        self._cleanup_worktrees(view)
        ended = RunFinished(state=finish.state.value, reason=finish.reason)
        event = self.rt.store.append(view.run_id, ended)
        close_run(self.rt, self.rt.store.view(view.run_id), ended_at=event.ts)

    def _cleanup_worktrees(self, view: RunView) -> None:
        for phase_id in view.phases:
            path = self.rt.worktree(view.run_id, phase_id)
            if path.exists():
                git.remove_worktree(self.rt.repo, path)

    # -- carrying out one command ---------------------------------------------------

    def _carry_out(self, run_id: str, command: Command, door: ModelDoor) -> None:
        if isinstance(command, SkipPhase | FailPhase):
            steps.record_phase_end(self.rt.store, run_id, command)
        elif isinstance(command, StartAttempt):
            self._start_attempt(run_id, command)
        elif isinstance(command, RunStep):
            self.steps.run(run_id, command, door)

    def _start_attempt(self, run_id: str, command: StartAttempt) -> None:
        view = self.rt.store.view(run_id)
        head = git.rev_parse(self.rt.repo, f"refs/heads/{view.branch}")
        if head is None:
            raise EnvironmentProblem(f"the run branch {view.branch} is gone from {self.rt.repo}")
        self.rt.store.append(run_id, phase_started(view, command, head))

    def _dispatch(self, ctx: steps.StepContext, step: str) -> dict[str, Any]:
        if step == "gate":
            with self._gate_lock:  # the proof chain is one sequence per run
                prev = self.rt.store.view(ctx.run_id).last_proof_hash
                return steps.gate_step(ctx, prev)
        return STEP_FUNCTIONS[step](ctx)

    def _door(self, view: RunView) -> ModelDoor:
        run_budget = view.plan.run.budget
        phase_caps = {pid: Caps.of(view.plan.phase(pid).budget) for pid in view.phases}
        spent_phases = {pid: _spent(p.spend) for pid, p in view.phases.items()}
        ledger = BudgetLedger(Caps.of(run_budget), phase_caps, _spent(view.spend), spent_phases)
        run_dir = self.rt.run_dir(view.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        return ModelDoor(
            run_id=view.run_id,
            ledger=ledger,
            prices=PriceTable.default(self.rt.settings.prices),
            on_call=call_recorder(self.rt.store, view.run_id),
            cassette=Cassette(run_dir / "cassette.jsonl"),
            cancel=self.cancel,
            on_retry=call_recorder(self.rt.store, view.run_id),
            limits=LimitTable.default(self.rt.settings.models.model_dump()["limits"]),
        )


def cancel_orphan(rt: Runtime, run_id: str, reason: str) -> bool:
    """End a run nobody executes as CANCELLED at once; ``False`` when an executor may be
    carrying it (it stops at its next safe point, having read the cancel request).

    A queued or paused run has no executor. A RUNNING one has none when it was last
    started by a local executor whose lease is free now (expired, or its process is gone);
    the lease is held while the run is ended, so no executor can take it meanwhile. A run
    started elsewhere (a Temporal worker) is left to its workflow.
    """
    view = rt.store.view(run_id)
    if view.state in RUN_TERMINAL:
        return False
    owner = f"cancel:{socket.gethostname()}:{os.getpid()}"
    if view.state is RunState.RUNNING and not _started_locally(rt, run_id):
        return False
    holder = rt.store.acquire_lease(run_id, owner, LEASE_TTL_S, time.time())
    if holder is not None and _dead_here(holder):
        rt.store.release_lease(run_id, holder)
        holder = rt.store.acquire_lease(run_id, owner, LEASE_TTL_S, time.time())
    if holder is not None:
        return False
    try:
        commands.end_cancelled(rt.store, run_id, reason)
    finally:
        rt.store.release_lease(run_id, owner)
    return True


def _started_locally(rt: Runtime, run_id: str) -> bool:
    starts = [e for e in rt.store.events(run_id) if e.type == RunStarted.TYPE]
    return bool(starts) and str(starts[-1].data.get("executor", "")).startswith("local:")


def _dead_here(holder: str) -> bool:
    """Whether a lease holder is an executor of this machine whose process is gone."""
    kind, _, rest = holder.partition(":")
    host, _, pid = rest.rpartition(":")
    if kind != "local" or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _spent(spend: Any) -> Spent:
    return Spent(tokens=spend.tokens, cost_usd=spend.cost_usd, model_calls=spend.model_calls)
