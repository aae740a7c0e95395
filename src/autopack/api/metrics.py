"""``GET /metrics``: Prometheus text exposition, computed from the store on each scrape.

Computed, not counted in memory, so the numbers cover runs executed by any process
(the CLI too) and survive restarts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from autopack.api.auth import READ, Caller
from autopack.api.errors import documented
from autopack.api.runs import Ctx
from autopack.states import RunState
from autopack.store import Store

router = APIRouter(tags=["metrics"], responses=documented(401, 403, 429))
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
"""Phase duration buckets in seconds: a scripted phase takes seconds, a real one minutes."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(ctx: Ctx, _: Annotated[Caller, Depends(READ)]) -> PlainTextResponse:
    """Runs by state, phase durations, tokens and cost, gate decisions."""
    text = "".join(f"{line}\n" for line in exposition(ctx.rt.store))
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


def exposition(store: Store) -> Iterator[str]:
    found = store.figures()
    by_state = found.runs_by_state
    yield "# HELP autopack_runs Runs by state."
    yield "# TYPE autopack_runs gauge"
    for state in RunState:
        yield f'autopack_runs{{state="{state.value}"}} {by_state.get(state.value, 0)}'
    yield from _counter("autopack_tokens_total", "Tokens used by model calls.", found.tokens)
    read, written = found.cache_read_tokens, found.cache_write_tokens
    prompt = found.input_tokens
    yield "# HELP autopack_input_tokens_total Prompt tokens of model calls, by prompt cache tier."
    yield "# TYPE autopack_input_tokens_total counter"
    yield f'autopack_input_tokens_total{{cache="uncached"}} {prompt - read - written}'
    yield f'autopack_input_tokens_total{{cache="read"}} {read}'
    yield f'autopack_input_tokens_total{{cache="write"}} {written}'
    yield from _counter("autopack_cost_usd_total", "Spend on model calls in USD.", found.cost_usd)
    yield from _counter("autopack_model_calls_total", "Model calls made.", found.model_calls)
    yield "# HELP autopack_gate_decisions_total Gate decisions by outcome."
    yield "# TYPE autopack_gate_decisions_total counter"
    for name, count in sorted(found.gate_decisions):
        yield f'autopack_gate_decisions_total{{decision="{_escape(name)}"}} {count}'
    yield from _histogram(_durations(found.timeline))


def _counter(name: str, help_text: str, value: float) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} counter"
    yield f"{name} {value}"


def _durations(rows: Sequence[Any]) -> dict[str, list[float]]:
    """Seconds from each attempt's start to its commit ("complete") or failure ("failed")."""
    started: dict[tuple[str, str], datetime] = {}
    found: dict[str, list[float]] = defaultdict(list)
    for run_id, phase_id, kind, ts, step in rows:
        if phase_id is None:
            continue
        key = (run_id, phase_id)
        if kind == "phase_started":
            started[key] = datetime.fromisoformat(ts)
            continue
        outcome = "failed" if kind == "phase_failed" else "complete" if step == "commit" else None
        if outcome is not None and key in started:
            seconds = (datetime.fromisoformat(ts) - started.pop(key)).total_seconds()
            found[outcome].append(max(seconds, 0.0))
    return found


def _histogram(durations: dict[str, list[float]]) -> Iterator[str]:
    name = "autopack_phase_duration_seconds"
    yield f"# HELP {name} Phase attempts from start to commit or failure."
    yield f"# TYPE {name} histogram"
    for outcome in ("complete", "failed"):
        values = durations.get(outcome, [])
        for bound in BUCKETS:
            count = sum(v <= bound for v in values)
            yield f'{name}_bucket{{outcome="{outcome}",le="{bound}"}} {count}'
        yield f'{name}_bucket{{outcome="{outcome}",le="+Inf"}} {len(values)}'
        yield f'{name}_sum{{outcome="{outcome}"}} {round(sum(values), 3)}'
        yield f'{name}_count{{outcome="{outcome}"}} {len(values)}'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
