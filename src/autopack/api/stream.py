"""Server-sent events: a run's event log, live, resumable from ``Last-Event-ID``.

The SSE id of an event is its sequence number in the run's log. A stream first
subscribes to live events, then replays the log after the client's last id, then
forwards live events whose number is exactly the next one; anything else (a gap, an
event appended by another process) is read from the store. The sequence numbers
therefore make loss and repetition impossible, whatever the timing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from autopack.events import Event
from autopack.store import Store

IDLE_S = 2.0
"""How long a stream waits for a live event before it checks the store and sends a ping."""
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
            targets = [s for s in self._subscriptions if s.run_id in (None, event.run_id)]
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
    def subscription(self, run_id: str | None) -> Iterator[asyncio.Queue[Live]]:
        """Live events of one run (or of all runs, with ``None``) while the block runs."""
        sub = _Subscription(run_id, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(sub)
        try:
            yield sub.queue
        finally:
            with self._lock:
                self._subscriptions.discard(sub)

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
    with hub.subscription(run_id) as queue:
        yield f"retry: {RETRY_MS}\n\n"
        last = after
        for event in await run_in_threadpool(store.events, run_id, last):
            yield sse(event)
            last = event.seq
        while True:
            live = await _next(queue, IDLE_S)
            if live is not None and live.event.seq <= last:
                continue
            if live is not None and live.event.seq == last + 1:
                yield live.message
                last = live.event.seq
                continue
            backlog = await run_in_threadpool(store.events, run_id, last)
            for event in backlog:
                yield sse(event)
                last = event.seq
            if not backlog:
                yield ": ping\n\n"


async def all_events(hub: EventHub) -> AsyncIterator[str]:
    """Notices of every run's new events (which run, which event), for live lists."""
    with hub.subscription(None) as queue:
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
