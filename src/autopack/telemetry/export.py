"""Send one ended run's trace and metrics over OTLP/HTTP (or, under :func:`capture`, to
memory), with ids derived from the run id.

The trace id is a hash of the run id and each span id a hash of the run id and the
span's key, so the trace of a run is the same whoever exports it and however often:
on Temporal the worker that finishes the run exports it once from the shared store,
and an export repeated after a crash sends the same spans again, not a second trace.
OpenTelemetry's global providers are left alone: an application embedding Autopack
keeps its own.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from autopack.events import Event
from autopack.projection import RunView
from autopack.telemetry import Destination, TelemetryError
from autopack.telemetry.spans import SpanRecord, run_spans

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
    from opentelemetry.sdk.metrics.export import MetricsData as MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # the base install; telemetry needs the extra
    raise TelemetryError(
        "telemetry is on but OpenTelemetry is not installed: pip install 'autopack[telemetry]'"
    ) from exc

SCOPE = "autopack"
TOKEN_BUCKETS = [4**n for n in range(14)]
"""The GenAI conventions' advised boundaries for ``gen_ai.client.token.usage``."""
SECONDS_BUCKETS = [0.01 * 2**n for n in range(14)]
"""The GenAI conventions' advised boundaries for ``gen_ai.client.operation.duration``."""
PHASE_BUCKETS = [1.0, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200]


@dataclass
class Captured:
    """Every export made while :func:`capture` is active: spans and metrics, in memory."""

    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    metrics: list[MetricsData] = field(default_factory=list)


_capturing: list[Captured] = []


@contextmanager
def capture() -> Iterator[Captured]:
    """Send this process's exports to memory instead of OTLP while the block runs (tests,
    and applications that forward the spans themselves); telemetry must still be on."""
    captured = Captured()
    _capturing.append(captured)
    try:
        yield captured
    finally:
        _capturing.remove(captured)


def trace_id_of(run_id: str) -> int:
    """The run's trace id: the first 16 bytes of SHA-256 of the run id (never zero)."""
    return int.from_bytes(hashlib.sha256(f"autopack-trace:{run_id}".encode()).digest()[:16]) or 1


def span_id_of(run_id: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_id}/{key}".encode()).digest()[:8]) or 1


class _DerivedIds(IdGenerator):
    """Hands the SDK the ids derived for the span about to start."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.next_span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.next_span_id


class _Collect(SpanProcessor):
    """Keeps every ended span, to be exported in one go (no queue that could drop any)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def export_run(
    events: Sequence[Event],
    cassette: Sequence[dict[str, Any]],
    where: Destination,
    view: RunView | None = None,
) -> dict[str, Any]:
    """Export an ended run (its events, its cassette entries, its view when the caller has
    it folded already); returns what to record."""
    started = time.perf_counter()
    run_id = events[0].run_id
    records = run_spans(events, cassette, include_content=where.include_content, view=view)
    resource = _resource(run_id)
    spans = _sdk_spans(run_id, records, resource)
    metrics = _metrics(records, resource)
    if _capturing:
        _capturing[-1].spans.export(spans)
        _capturing[-1].metrics.append(metrics)
    else:
        _send(where, spans, metrics)
    return {
        "trace_id": f"{trace_id_of(run_id):032x}",
        "spans": len(spans),
        "endpoint": "memory" if _capturing else where.shown(),
        "seconds": round(time.perf_counter() - started, 6),
    }


@functools.cache
def _release() -> str:
    try:
        return version("autopack")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        return "0"


def _resource(run_id: str) -> Resource:
    attributes = {"service.version": _release(), "service.instance.id": run_id}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "autopack"
    return Resource.create(attributes)


def _sdk_spans(run_id: str, records: list[SpanRecord], resource: Resource) -> list[ReadableSpan]:
    ids = _DerivedIds(trace_id_of(run_id))
    collect = _Collect()
    provider = TracerProvider(resource=resource, id_generator=ids, shutdown_on_exit=False)
    provider.add_span_processor(collect)
    tracer = provider.get_tracer(SCOPE, _resource_version(resource))
    live: dict[str, trace.Span] = {}
    for record in records:  # parents come first
        ids.next_span_id = span_id_of(run_id, record.key)
        parent = live.get(record.parent) if record.parent else None
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        span = tracer.start_span(
            record.name,
            context=context,
            kind=SpanKind.CLIENT if record.client else SpanKind.INTERNAL,
            attributes=record.attributes,
            start_time=record.start_ns,
        )
        for name, at, facts in record.events:
            span.add_event(name, facts, timestamp=at)
        if record.error:
            span.set_status(Status(StatusCode.ERROR, record.error))
        live[record.key] = span
    for record in reversed(records):
        live[record.key].end(end_time=max(record.end_ns, record.start_ns))
    provider.shutdown()
    return collect.spans


def _resource_version(resource: Resource) -> str:
    return str(resource.attributes.get("service.version", ""))


def _metrics(records: list[SpanRecord], resource: Resource) -> MetricsData:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
    meter = provider.get_meter(SCOPE, _resource_version(resource))
    tokens = meter.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Tokens of each model call, by type (input, output).",
        explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
    )
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration",
        unit="s",
        description="Duration of each model call.",
        explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
    )
    cost = meter.create_counter(
        "autopack.model.cost", unit="{USD}", description="What model calls cost, in US dollars."
    )
    phases = meter.create_histogram(
        "autopack.phase.duration",
        unit="s",
        description="Wall time of each phase, first attempt to its end.",
        explicit_bucket_boundaries_advisory=PHASE_BUCKETS,
    )
    gates = meter.create_counter(
        "autopack.gate.decisions", unit="{decision}", description="Gate decisions, by decision."
    )
    runs = meter.create_counter("autopack.runs", unit="{run}", description="Ended runs, by state.")
    for record in records:
        facts = record.attributes
        if facts.get("gen_ai.operation.name") == "chat":
            model = {
                key: facts[key]
                for key in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
            } | {"autopack.role": facts["autopack.role"]}
            for kind in ("input", "output"):
                amount = int(facts[f"gen_ai.usage.{kind}_tokens"])  # type: ignore[arg-type]
                tokens.record(amount, model | {"gen_ai.token.type": kind})
            duration.record((record.end_ns - record.start_ns) / 1e9, model)
            cost.add(float(facts["autopack.cost_usd"]), model)  # type: ignore[arg-type]
        elif record.key.startswith("phase/") and "autopack.phase.state" in facts:
            state = {"autopack.phase.state": facts["autopack.phase.state"]}
            phases.record((record.end_ns - record.start_ns) / 1e9, state)
        elif facts.get("autopack.step") == "gate" and "autopack.gate.decision" in facts:
            gates.add(1, {"autopack.gate.decision": facts["autopack.gate.decision"]})
        elif record.key == "run":
            runs.add(1, {"autopack.run.state": facts["autopack.run.state"]})
    data = reader.get_metrics_data()
    provider.shutdown()
    if data is None:  # pragma: no cover - the reader always has the instruments above
        raise TelemetryError("no metrics were collected")
    return data


def _send(where: Destination, spans: list[ReadableSpan], metrics: MetricsData) -> None:
    """Spans, then metrics; both are tried (a refused trace still leaves the metrics)."""
    problems = []
    try:
        _send_spans(where, spans)
    except TelemetryError as exc:
        problems.append(str(exc))
    try:
        _send_metrics(where, metrics)
    except TelemetryError as exc:
        problems.append(str(exc))
    if problems:
        raise TelemetryError("; ".join(problems))


def _send_spans(where: Destination, spans: list[ReadableSpan]) -> None:
    exporter: SpanExporter = OTLPSpanExporter(endpoint=where.traces_url, headers=where.headers)
    try:
        for start in range(0, len(spans), 512):
            if exporter.export(spans[start : start + 512]) is not SpanExportResult.SUCCESS:
                raise TelemetryError(f"the OTLP endpoint {where.shown()} did not take the spans")
    finally:
        exporter.shutdown()


def _send_metrics(where: Destination, metrics: MetricsData) -> None:
    exporter = OTLPMetricExporter(endpoint=where.metrics_url, headers=where.headers)
    try:
        if exporter.export(metrics) is not MetricExportResult.SUCCESS:
            shown = where.shown(where.metrics_url)
            raise TelemetryError(f"the OTLP endpoint {shown} did not take the metrics")
    finally:
        exporter.shutdown()


def read_cassette(run_dir: Path) -> list[dict[str, Any]]:
    """The run's cassette entries on this machine (none when it has none)."""
    from autopack.llm.cassette import Cassette

    return Cassette(run_dir / "cassette.jsonl").entries()
