"""The store: the event log and its projections, in one SQL database.

``Store`` is the protocol the rest of Autopack uses (``protocol.py``); ``SqlStore`` is its
implementation (``log.py``), composed of one module per job: ``db`` (engine and
migrations), ``log`` (append and fold), ``snapshots`` (projection rows read without a
fold), ``queries`` (the API's and metrics' reads), ``leases``, ``baselines``, ``keys``,
``files`` (run files for remote workers), ``sot`` (ledger entries). See README.md.
"""

from __future__ import annotations

from autopack.rows import PhaseRow as PhaseRow
from autopack.rows import RunRow as RunRow
from autopack.store import tables as tables
from autopack.store.db import make_engine as make_engine
from autopack.store.db import migrate as migrate
from autopack.store.db import utcnow as utcnow
from autopack.store.log import RunExists as RunExists
from autopack.store.log import SqlStore as SqlStore
from autopack.store.protocol import Store as Store
from autopack.store.queries import RunNotFound as RunNotFound
from autopack.store.snapshots import RunSnapshot as RunSnapshot
