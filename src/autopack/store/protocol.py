"""The ``Store`` protocol: what the engine, the API, the CLI and the MCP server ask of
the store. :class:`~autopack.store.log.SqlStore` implements it on SQLAlchemy.

Only the store's own modules (``files``, ``sot``, ``keys``, budget holds) take its
``engine`` and speak SQL; everyone else calls these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Select

from autopack.events import Event, Payload, RunCreated
from autopack.projection import RunView
from autopack.rows import RunRow
from autopack.states import RunState
from autopack.store.autopilots import AutopilotLog
from autopack.store.queries import Figures
from autopack.store.snapshots import RunSnapshot


class Store(Protocol):
    """A run's event log and its projections, shared by every process of a deployment."""

    url: str
    runs_dir: Path | None
    engine: Engine
    """For the store's own modules (run files, ledger entries, keys, budget holds)."""
    autopilots: AutopilotLog
    """The autopilots' event logs, beside the runs' (:mod:`autopack.store.autopilots`)."""

    def close(self) -> None: ...

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event this process appends."""

    # writing: only the engine (its steps and ``engine/commands.py``) appends
    def create_run(self, run_id: str, created: RunCreated) -> Event: ...

    def append(self, run_id: str, payload: Payload) -> Event:
        """Append one event and update the projections in the same transaction."""

    # the log and its projections
    def events(self, run_id: str, after: int = 0) -> list[Event]: ...

    def view(self, run_id: str) -> RunView:
        """The run folded from its events (the state the decider reads)."""

    def snapshot(self, run_id: str) -> RunSnapshot:
        """The run as its projection rows show it, with no fold."""

    def last_seq(self, run_id: str) -> int: ...

    def recently_updated(self, seconds: float) -> dict[str, int]: ...

    def read_first(self, statement: Select[Any], **params: Any) -> tuple[Any, ...] | None:
        """The first row of a prebuilt statement of the store's modules, read fast."""

    # queries
    def run(self, run_id: str) -> RunRow: ...

    def list_runs(
        self, state: RunState | None = None, limit: int = 50, offset: int = 0
    ) -> list[RunRow]: ...

    def count_runs(self, state: RunState | None = None) -> int: ...

    def phase_rows(self, run_id: str) -> list[dict[str, Any]]: ...

    def awaiting_approval(self) -> list[str]: ...

    def figures(self) -> Figures: ...

    # executor leases and verification baselines
    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, now: float) -> str | None: ...

    def release_lease(self, run_id: str, owner: str) -> None: ...

    def baseline_get(self, key: str) -> dict[str, Any] | None: ...

    def baseline_put(self, key: str, value: dict[str, Any]) -> None: ...
