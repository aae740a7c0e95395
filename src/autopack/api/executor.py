"""What executes the runs of ``autopack serve``: the :class:`RunHost` protocol and the
embedded executor, which runs them in threads of this process.

The other host, :class:`~autopack.engine.temporal_host.TemporalHost`, starts them as
workflows on Temporal workers. Either way the API reads runs from the store, so only
the action routes (start, cancel, resume, approve, reject) talk to the host.

The embedded executor runs one thread per executing run, each driving a
:class:`LocalExecutor` (which waits for approvals instead of returning, so an approval
in the dashboard lets the run go on). Only this host decides whether a run is
executing in this process, so it is also where a cancel of a run nobody executes is
carried out at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from autopack.engine import commands
from autopack.engine.create import create_run
from autopack.engine.local import LocalExecutor, cancel_orphan
from autopack.engine.runtime import Runtime
from autopack.plan import Plan
from autopack.states import RunState

log = logging.getLogger(__name__)


class RunBusy(RuntimeError):
    """The run is executing in this process already, or cannot be executed again."""


class RunHost(Protocol):
    """Whatever executes the served runs. Refusals raise :class:`RunBusy`,
    :class:`~autopack.engine.local.LeaseHeld` (executing elsewhere already) or
    :class:`~autopack.states.IllegalTransition` (the run has ended)."""

    def start(self) -> None:
        """Begin picking up queued runs."""

    def stop(self) -> None:
        """Stop picking up runs (at shutdown)."""

    def submit(self, plan: Plan, plan_source: str) -> str:
        """Store a queued run of ``plan`` and have it started; returns its id."""
        ...

    def executing(self, run_id: str) -> bool:
        """Whether the run is being executed now."""
        ...

    def resume(self, run_id: str) -> None:
        """Execute a stopped run again; recorded steps are not redone."""

    def cancel(self, run_id: str, reason: str) -> RunState:
        """Ask the run to stop; returns its state after the request."""
        ...

    def answered(self, run_id: str) -> None:
        """A person's answer to a waiting phase is now in the run's log: let the run read
        it. Called after the answer is recorded."""


class EmbeddedExecutor:
    """Starts queued runs in threads; resumes and cancels on request."""

    def __init__(self, rt: Runtime, *, poll_s: float = 1.0) -> None:
        self.rt = rt
        self.poll_s = poll_s
        self._running: dict[str, LocalExecutor] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._pick_up, name="autopack-pickup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop picking up runs and ask executing ones to stop their commands."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            for executor in self._running.values():
                executor.cancel.set()

    def submit(self, plan: Plan, plan_source: str) -> str:
        run_id = create_run(self.rt, plan, plan_source=plan_source)
        self.wake()
        return run_id

    def wake(self) -> None:
        """Look for queued runs now (a run was just started)."""
        self._wake.set()

    def executing(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._running

    def resume(self, run_id: str) -> None:
        """Execute a stopped run again; recorded steps are not redone."""
        state = self.rt.store.view(run_id).state
        if state is RunState.SUCCEEDED:
            raise RunBusy(f"run {run_id} succeeded; there is nothing to resume")
        if not self._launch(run_id):
            raise RunBusy(f"run {run_id} is executing already")

    def cancel(self, run_id: str, reason: str) -> RunState:
        """Ask a run to stop; a run nobody executes is cancelled at once. Returns its state."""
        with self._lock:
            executing = run_id in self._running
            state = commands.cancel(self.rt.store, run_id, reason, executed=executing)
            if (
                not executing
                and state is RunState.RUNNING
                and cancel_orphan(self.rt, run_id, reason)
            ):
                return RunState.CANCELLED  # RUNNING, but its executor is gone
            return state

    def answered(self, run_id: str) -> None:
        """Nothing to do: the executing :class:`LocalExecutor` polls the log."""

    def _pick_up(self) -> None:
        while not self._stop.is_set():
            for row in self.rt.store.list_runs(RunState.QUEUED, limit=100):
                self._launch(row.id, queued_only=True)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _launch(self, run_id: str, *, queued_only: bool = False) -> bool:
        with self._lock:
            if run_id in self._running or self._stop.is_set():
                return False
            if queued_only and self.rt.store.run(run_id).state != RunState.QUEUED.value:
                return False  # cancelled between the listing and now
            executor = LocalExecutor(self.rt)
            self._running[run_id] = executor
        thread = threading.Thread(
            target=self._execute, args=(run_id, executor), name=f"run-{run_id}", daemon=True
        )
        thread.start()
        return True

    def _execute(self, run_id: str, executor: LocalExecutor) -> None:
        try:
            executor.execute(run_id, wait_for_approvals=True)
        except Exception as exc:  # the run must not look alive after its executor died
            log.exception("run %s stopped", run_id)
            self._pause(run_id, f"executor stopped: {exc}")
        finally:
            with self._lock:
                self._running.pop(run_id, None)

    def _pause(self, run_id: str, reason: str) -> None:
        commands.pause(self.rt.store, run_id, reason)
