"""``autopack serve`` and pull requests, when ``[pr]`` asks for it.

``open_on_finish``: when a run this server sees end, its pull request is opened or
updated. ``sync_approvals``: every ``poll_s`` seconds the reviews of the open pull request
of each run with a waiting phase are read and answer it (see
:mod:`autopack.forge.approvals`), and the run's host is told. A failure is logged (its
message never holds the token) and tried again at the next poll; it never stops a run.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from autopack.config import PrSettings
from autopack.engine.runtime import Runtime
from autopack.forge.publish import NoBranch, connect, publish_and_sync, sync
from autopack.forge.target import TargetOptions
from autopack.states import RUN_TERMINAL, RunState

log = logging.getLogger(__name__)
TERMINAL = {state.value for state in RUN_TERMINAL}


class Answerable(Protocol):
    def answered(self, run_id: str) -> None: ...


class PrWatcher:
    """A thread that publishes ended runs and syncs approvals, by ``[pr]``."""

    def __init__(self, rt: Runtime, host: Answerable, settings: PrSettings) -> None:
        self.rt, self.host, self.settings = rt, host, settings
        self._stop = threading.Event()
        self._done: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Runs that ended before the server started are not published."""
        self._done = {r.id for r in self.rt.store.list_runs(limit=1000) if r.state in TERMINAL}
        self._thread = threading.Thread(target=self._loop, name="autopack-pr", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.poll_s):
            self.tick()

    def tick(self) -> None:
        for row in self.rt.store.list_runs(limit=100):
            try:
                if self.settings.sync_approvals and row.pending_approvals > 0:
                    self._sync(row.id)
                if (
                    self.settings.open_on_finish
                    and row.state in TERMINAL
                    and row.id not in self._done
                ):
                    self._publish(row.id, RunState(row.state))
            except NoBranch as exc:  # nothing landed: no pull request to open, ever
                self._done.add(row.id)
                log.info("no pull request for run %s: %s", row.id, exc)
            except Exception as exc:  # logged and tried again; the run goes on
                log.warning("pull request of run %s: %s", row.id, exc)

    def _sync(self, run_id: str) -> None:
        _, forge = connect(self.rt, self.settings, TargetOptions())
        done = sync(self.rt, run_id, forge)
        for answered in done.answered:
            verb = "approved" if answered.approved else "sent back"
            log.info(
                "%s %s of %s by review %s", verb, answered.phase_id, run_id, answered.review.id
            )
        if done.answered:
            self.host.answered(run_id)

    def _publish(self, run_id: str, state: RunState) -> None:
        done = publish_and_sync(self.rt, run_id, TargetOptions(), base=self.settings.base)
        self._done.add(run_id)
        log.info("run %s %s: %s", run_id, state.value, done.pull.url)
