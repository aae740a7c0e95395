"""The run host of ``autopack serve --engine temporal``: each run is a workflow on workers.

The API keeps reading the shared store (the workers append every event there), so its
reads, event streams and the dashboard are the same as with the embedded executor.
Only the executing moves: this host starts a workflow for each queued run, cancels by
workflow cancellation, tells a workflow about an approval with its ``refresh`` signal
and answers "is the run executing?" from the workflow's description.

The Temporal client is asynchronous and the API's action routes are not, so the host
keeps its own event loop in a thread and the routes wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import CancelledError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from autopack.config import Settings
from autopack.engine import commands
from autopack.engine.create import RepoProblem
from autopack.engine.local import LeaseHeld
from autopack.engine.temporal import (
    RunWorkflow,
    create_distributed_run,
    run_input,
    start_run,
    workflow_id,
)
from autopack.engine.worker import DEFAULT_TASK_QUEUE, RepoCache
from autopack.events import (
    RunStarted,
)
from autopack.plan import Plan
from autopack.states import RUN_TERMINAL, IllegalTransition, RunState
from autopack.store import Store
from autopack.workspace import git

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_TTL_S = 1.0
"""How old a workflow's described status may be before it is described again."""
RPC_TIMEOUT_S = 30.0
"""Longest a route waits for the Temporal cluster."""


class TemporalHost:
    """Starts queued runs as workflows; resumes, cancels and passes approvals on."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        address: str,
        repo_url: str,
        clones: Path,
        task_queue: str = DEFAULT_TASK_QUEUE,
        namespace: str = "default",
        model_override: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.address = address
        self.repo_url = repo_url
        self.repos = RepoCache(clones)
        self.task_queue = task_queue
        self.namespace = namespace
        self.model_override = model_override
        self.poll_s = poll_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="autopack-temporal", daemon=True
        )
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._pickup: asyncio.Task[None] | None = None
        self._watched: dict[str, asyncio.Task[None]] = {}
        """Workflows this host started or found running, until they close (loop only)."""
        self._described: dict[str, tuple[bool, float]] = {}
        self._status_lock = threading.Lock()
        self._submitting = threading.Lock()
        """One submission at a time: they fetch into and push from the same clone."""

    # -- lifetime -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the cluster (raises when it cannot be reached) and pick up runs."""
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    def stop(self) -> None:
        """Stop picking up runs. The workflows go on: they are the workers' business."""
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _open(self) -> None:
        self._client = await Client.connect(self.address, namespace=self.namespace)
        await self._adopt_running()
        self._pickup = asyncio.create_task(self._pick_up())

    async def _close(self) -> None:
        tasks = [t for t in (self._pickup, *self._watched.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(RPC_TIMEOUT_S)

    @property
    def client(self) -> Client:
        assert self._client is not None, "start() connects before anything else"
        return self._client

    # -- what the API asks ------------------------------------------------------------

    def submit(self, plan: Plan, plan_source: str) -> str:
        """Store a run of ``plan`` on the repository URL and push its branch there."""
        with self._submitting:
            try:
                run_id = create_distributed_run(
                    self.store,
                    plan,
                    self.repo_url,
                    self.repos,
                    plan_source=plan_source,
                    max_parallel=self.settings.max_parallel,
                    model_override=self.model_override,
                )
            except git.GitError as exc:
                raise RepoProblem(redact_url(f"{self.repo_url}: {exc}", self.repo_url)) from exc
        self.wake()
        return run_id

    def wake(self) -> None:
        """Look for queued runs now (a run was just submitted)."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def executing(self, run_id: str) -> bool:
        """Whether the run's workflow is running, from its latest description.

        The answer is the one known, and a stale one is renewed in the background: the
        run's page asks on the API's event loop, which must not wait for the cluster. A
        run asked about for the first time is answered from its log meanwhile (RUNNING).
        """
        with self._status_lock:
            known = self._described.get(run_id)
        if known is None:  # guessed from the log while the cluster is asked, never waited for
            guess = run_id in self._watched or self.store.run(run_id).state == "RUNNING"
            known = (guess, 0.0)
        if time.monotonic() - known[1] >= STATUS_TTL_S:
            self._remember(run_id, known[0])  # one renewal at a time
            asyncio.run_coroutine_threadsafe(self._renew(run_id), self._loop)
        return known[0]

    def resume(self, run_id: str) -> None:
        """Start the run's workflow again; it folds the log, so recorded steps are not redone.

        The workflow's first activity only starts a run that has not ended, so a failed or
        cancelled run is marked started here, as the local executor marks it.
        """
        view = self.store.view(run_id)
        if view.state is RunState.SUCCEEDED:
            raise IllegalTransition(f"run {run_id} succeeded; there is nothing to resume")
        if self._call(self._running(run_id, fresh=True)):
            raise LeaseHeld(f"run {run_id} is executing already ({workflow_id(run_id)})")
        marked = view.state in RUN_TERMINAL
        if marked:
            started = RunStarted(executor=f"temporal:{workflow_id(run_id)}", resumed=True)
            self.store.append(run_id, started)
        try:
            self._call(self._launch(run_id))
        except RPCError as exc:
            if marked:
                commands.pause(self.store, run_id, f"its workflow did not start: {exc}")
            raise

    def cancel(self, run_id: str, reason: str) -> RunState:
        """Cancel the run's workflow; a run without one is cancelled at once.

        The request is recorded first, so the reason shows and a workflow that misses
        the cancellation still stops at its next step.
        """
        commands.request_cancel(self.store, run_id, reason)
        if self._call(self._cancel_workflow(run_id)):
            return self.store.view(run_id).state
        return commands.end_cancelled(self.store, run_id, reason)

    def answered(self, run_id: str) -> None:
        """Signal the workflow to read the answer the API recorded. A signal that does not
        arrive is logged, not raised: the answer is kept, and the workflow reads it with
        the next events it is sent."""
        try:
            self._call(self._refresh(run_id))
        except (RPCError, TimeoutError) as exc:
            log.warning("run %s: the workflow was not told of an answer: %s", run_id, exc)

    # -- on the host's loop -------------------------------------------------------------

    async def _pick_up(self) -> None:
        while True:
            try:
                queued = await asyncio.to_thread(self.store.list_runs, RunState.QUEUED, limit=100)
                for row in queued:
                    if row.id not in self._watched:
                        await self._launch(row.id)
            except Exception:  # the cluster or the database is away: the next round retries
                log.exception("could not start the queued runs")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def _launch(self, run_id: str) -> None:
        spec = await asyncio.to_thread(run_input, self.store, run_id, self.settings)
        handle: WorkflowHandle[Any, Any]
        try:
            handle = await start_run(self.client, spec, task_queue=self.task_queue)
        except WorkflowAlreadyStartedError:  # another API process was quicker
            handle = self.client.get_workflow_handle(workflow_id(run_id))
        self._watch(run_id, handle)

    async def _adopt_running(self) -> None:
        """Watch the workflows of runs started before this process (an API restart)."""
        running = await asyncio.to_thread(self.store.list_runs, RunState.RUNNING, limit=1000)
        for row in running:
            if await self._running(row.id, fresh=True):
                self._watch(row.id, self.client.get_workflow_handle(workflow_id(row.id)))

    def _watch(self, run_id: str, handle: WorkflowHandle[Any, Any]) -> None:
        self._remember(run_id, True)
        self._watched[run_id] = asyncio.create_task(self._until_closed(run_id, handle))

    async def _until_closed(self, run_id: str, handle: WorkflowHandle[Any, Any]) -> None:
        """Wait for the workflow to close; a run it left unfinished must not look alive."""
        reason, cancelled = "", False
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cancelled = isinstance(exc.cause, CancelledError)
            reason = f"its workflow ended: {exc.cause or exc}"
        except RPCError as exc:
            reason = f"its workflow is gone: {exc}"
        finally:
            current = self._watched.get(run_id) is asyncio.current_task()
            if current:  # a resume may have started and watched a new workflow meanwhile
                self._watched.pop(run_id, None)
                self._remember(run_id, False)
        if reason and current:
            await asyncio.to_thread(self._settle, run_id, reason, cancelled)

    def _settle(self, run_id: str, reason: str, cancelled: bool) -> None:
        view = self.store.view(run_id)
        if view.state in RUN_TERMINAL or view.state is RunState.PAUSED:
            return
        with contextlib.suppress(IllegalTransition):  # a worker settled it meanwhile
            if cancelled:
                commands.end_cancelled(self.store, run_id, reason)
            elif view.state is RunState.QUEUED:  # a queued run cannot pause
                commands.end_failed(self.store, run_id, reason)
            else:
                commands.pause(self.store, run_id, reason)

    async def _running(self, run_id: str, *, fresh: bool = False) -> bool:
        if run_id in self._watched and not fresh:
            return True
        try:
            described = await self.client.get_workflow_handle(workflow_id(run_id)).describe()
            running = described.status is WorkflowExecutionStatus.RUNNING
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            running = False
        self._remember(run_id, running)
        return running

    async def _renew(self, run_id: str) -> None:
        try:
            await self._running(run_id, fresh=True)
        except RPCError as exc:
            log.warning("cannot describe the workflow of run %s: %s", run_id, exc)

    async def _cancel_workflow(self, run_id: str) -> bool:
        """Request cancellation; ``False`` when no workflow of the run is running."""
        if not await self._running(run_id, fresh=True):
            return False
        try:
            await self.client.get_workflow_handle(workflow_id(run_id)).cancel()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False  # it closed in between
        return True

    async def _refresh(self, run_id: str) -> None:
        """Signal the workflow; one that is not running reads the log when started again."""
        try:
            await self.client.get_workflow_handle(workflow_id(run_id)).signal(RunWorkflow.refresh)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise

    def _remember(self, run_id: str, running: bool) -> None:
        with self._status_lock:
            self._described[run_id] = (running, time.monotonic())


def cluster_problem(address: str, namespace: str = "default", timeout_s: float = 10.0) -> str:
    """Why the Temporal cluster at ``address`` cannot be used, or ``""`` when it can.

    ``serve`` asks before it starts, so an unreachable cluster is one clear line, not a
    traceback from the server's start-up.
    """

    async def probe() -> None:
        await asyncio.wait_for(Client.connect(address, namespace=namespace), timeout_s)

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect is reported the same way
        reason = str(exc) or type(exc).__name__
        return f"cannot reach Temporal at {address} (namespace {namespace}): {reason}"
    return ""


def redact_url(text: str, url: str) -> str:
    """``text`` without the credentials ``url`` may carry (``https://user:token@host/...``):
    an error message goes to API responses and logs, a token must not."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return text
    host = parts.hostname or ""
    bare = urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))
    text = text.replace(url, bare)
    for secret in (parts.password, parts.username):
        if secret:
            text = text.replace(secret, "***")
    return text
