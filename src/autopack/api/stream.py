"""Server-sent events: a run's event log, live, resumable from ``Last-Event-ID``.

The SSE id of an event is its sequence number in the run's log. A stream first
subscribes to live events, then replays the log after the client's last id, then
forwards live events whose number is exactly the next one; a gap is read from the
store. The sequence numbers therefore make loss and repetition impossible, whatever
the timing.

Events appended in this process reach the streams at once. Events appended by another
process (a separate executor, a Temporal worker) are found by one tail per run, shared
by all the run's streams: a cheap read of the run's newest sequence number every
``TAIL_S``, and one read of the new events for all streams, where each stream used to
poll the store on its own. The all-runs notices (``GET /events``, the runs list) have
one such tail too: which runs any writer changed lately, read every ``TAIL_S``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from autopack.events import Event
from autopack.store import Store

IDLE_S = 2.0
"""How long a stream waits for a live event before it sends a ping."""
TAIL_S = 0.25
"""How often a run's tail looks for events appended by another process."""
WINDOW_S = 30.0
"""How far back the all-runs tail looks for changed runs: covers writers' clock skew."""
RETRY_MS = 2000
"""How soon a disconnected EventSource reconnects."""


@dataclass(frozen=True)
class Live:
    """An event as the hub hands it out: serialised once, however many streams send it."""

    event: Event
    message: str


@dataclass(eq=False)
class _Subscription:
    run_id: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Live] = field(default_factory=asyncio.Queue)


class EventHub:
    """Hands every event the store appends in this process to the streams that want it."""

    def __init__(self) -> None:
        self._subscriptions: set[_Subscription] = set()
        self._lock = threading.Lock()
        self._attached: set[int] = set()
        self._published: dict[str, int] = {}
        self._tails: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}
        self._noticed: dict[str, int] = {}

    def attach(self, store: Store) -> None:
        """Listen to ``store`` (once per store)."""
        with self._lock:
            if id(store) not in self._attached:
                self._attached.add(id(store))
                store.subscribe(self._publish)

    def _publish(self, event: Event) -> None:
        """Called in whatever thread appended the event.

        One wake-up per event loop, not per stream: with dozens of streams the loop's
        self-pipe writes, not the sending, were what delayed delivery.
        """
        with self._lock:
            known = self._published.get(event.run_id)
            if known is not None and event.seq > known:
                self._published[event.run_id] = event.seq
            self._noticed[event.run_id] = max(event.seq, self._noticed.get(event.run_id, 0))
            targets = [s for s in self._subscriptions if s.run_id in (None, event.run_id)]
        self._send(targets, event)

    def _send(self, targets: list[_Subscription], event: Event) -> None:
        if not targets:
            return
        live = Live(event, sse(event))
        by_loop: dict[asyncio.AbstractEventLoop, list[_Subscription]] = {}
        for sub in targets:
            by_loop.setdefault(sub.loop, []).append(sub)
        for loop, subs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, subs, live)
            except RuntimeError:  # that loop has closed; its streams are going away
                continue

    @contextmanager
    def subscription(
        self, run_id: str | None, store: Store | None = None
    ) -> Iterator[asyncio.Queue[Live]]:
        """Live events of one run (or of all runs, with ``None``) while the block runs.

        With ``store``, the run's events appended by other processes arrive too.
        """
        sub = _Subscription(run_id, asyncio.get_running_loop())
        key = (sub.loop, run_id or "")
        with self._lock:
            self._subscriptions.add(sub)
            if store is not None and key not in self._tails:
                tail = self._tail(store, run_id) if run_id else self._tail_all(store)
                self._tails[key] = sub.loop.create_task(tail)
        try:
            yield sub.queue
        finally:
            self._unsubscribe(sub, key)

    def _unsubscribe(self, sub: _Subscription, key: tuple[asyncio.AbstractEventLoop, str]) -> None:
        """Forget ``sub``; the last stream of a run on its loop stops the run's tail."""
        with self._lock:
            self._subscriptions.discard(sub)
            if any(s.run_id == sub.run_id and s.loop is sub.loop for s in self._subscriptions):
                return
            tail = self._tails.pop(key, None)
            if not any(tailed == sub.run_id for _, tailed in self._tails):
                self._published.pop(sub.run_id or "", None)
        if tail is not None:
            tail.cancel()

    async def _tail(self, store: Store, run_id: str) -> None:
        """Publish the run's events that this process did not append, for all its streams."""
        with suppress(SQLAlchemyError):  # unread, the first catch-up reads from the start
            newest = await run_in_threadpool(store.last_seq, run_id)
            with self._lock:
                self._published[run_id] = max(newest, self._published.get(run_id, 0))
        while True:
            await asyncio.sleep(TAIL_S)
            with suppress(SQLAlchemyError):  # a busy database: look again next time
                await self._catch_up(store, run_id)

    async def _tail_all(self, store: Store) -> None:
        """Notify the all-runs streams of runs that another process moved on."""
        seen: dict[str, int] = {}  # unread, each recent run is noticed once: harmless
        with suppress(SQLAlchemyError):
            seen = await run_in_threadpool(store.recently_updated, WINDOW_S)
        while True:
            await asyncio.sleep(TAIL_S)
            with suppress(SQLAlchemyError):  # a busy database: look again next time
                seen = await self._notice_moved(store, seen)

    async def _notice_moved(self, store: Store, seen: dict[str, int]) -> dict[str, int]:
        moved = await run_in_threadpool(store.recently_updated, WINDOW_S)
        for run_id, last in moved.items():
            with self._lock:
                after = max(seen.get(run_id, last - 1), self._noticed.get(run_id, 0))
            if last <= after:
                continue
            for event in await run_in_threadpool(store.events, run_id, after):
                with self._lock:
                    self._noticed[run_id] = max(event.seq, self._noticed.get(run_id, 0))
                    targets = [s for s in self._subscriptions if s.run_id is None]
                self._send(targets, event)
        return moved

    async def _catch_up(self, store: Store, run_id: str) -> None:
        after = self._published.get(run_id, 0)
        if store.last_seq(run_id) > after:
            for event in await run_in_threadpool(store.events, run_id, after):
                self._publish(event)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subscriptions)


def _deliver(subs: list[_Subscription], live: Live) -> None:
    for sub in subs:
        sub.queue.put_nowait(live)


def sse(event: Event) -> str:
    """One event as an SSE message; its id is the run-local sequence number."""
    return f"id: {event.seq}\ndata: {event.model_dump_json()}\n\n"


async def _next(queue: asyncio.Queue[Live], seconds: float) -> Live | None:
    """The next live event, or ``None`` after ``seconds`` without one."""
    try:
        async with asyncio.timeout(seconds):
            return await queue.get()
    except TimeoutError:
        return None


async def run_events(hub: EventHub, store: Store, run_id: str, after: int) -> AsyncIterator[str]:
    """A run's events after ``after``, then live ones, each exactly once, in order."""
    with hub.subscription(run_id, store) as queue:
        yield f"retry: {RETRY_MS}\n\n"
        last = after
        for event in await run_in_threadpool(store.events, run_id, last):
            yield sse(event)
            last = event.seq
        while True:
            live = await _next(queue, IDLE_S)
            if live is None:
                yield ": ping\n\n"
                continue
            fresh = sorted(
                {i.event.seq: i for i in (live, *_waiting(queue)) if i.event.seq > last}.items()
            )
            if not fresh:
                continue
            if fresh[-1][0] - last == len(fresh):  # exactly the next ones
                yield "".join(item.message for _, item in fresh)
                last = fresh[-1][0]
                continue
            backlog = await run_in_threadpool(store.events, run_id, last)
            if backlog:
                yield "".join(sse(event) for event in backlog)
                last = backlog[-1].seq


def _waiting(queue: asyncio.Queue[Live]) -> list[Live]:
    """What else is queued: a stream that fell behind sends it in one write, not many."""
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def all_events(hub: EventHub, store: Store | None = None) -> AsyncIterator[str]:
    """Notices of every run's new events (which run, which event), for live lists.

    With ``store``, events other processes append are noticed too (within ``TAIL_S``).
    """
    with hub.subscription(None, store) as queue:
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            live = await _next(queue, IDLE_S * 5)
            if live is None:
                yield ": ping\n\n"
                continue
            event = live.event
            notice = {
                "run_id": event.run_id,
                "seq": event.seq,
                "type": event.type,
                "phase_id": event.phase_id,
            }
            yield f"data: {json.dumps(notice)}\n\n"
