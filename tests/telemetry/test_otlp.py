"""Telemetry over the wire: `autopack run` with ``[telemetry] endpoint`` set sends the
run's trace and metrics as OTLP/HTTP protobuf to a loopback collector, decoded here
with ``opentelemetry-proto``. A header's value comes from the environment variable it
names and goes nowhere but the request headers. A collector that refuses leaves the
run's result alone and says so in ``telemetry.json``. Bad settings exit 2 before any
run is created.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_rig import Collector, demo_repo, run_demo

from autopack.engine.runtime import Runtime
from autopack.telemetry import TELEMETRY_FILE
from autopack.telemetry.export import trace_id_of

pytestmark = [pytest.mark.slow]
TOKEN = "collector-token-3c8e1f0a9d7b"


def _attributes(items: object) -> dict[str, object]:
    found: dict[str, object] = {}
    for item in items:  # type: ignore[attr-defined]
        value = item.value
        kind = value.WhichOneof("value")
        found[item.key] = (
            [v.string_value for v in value.array_value.values]
            if kind == "array_value"
            else getattr(value, kind)
        )
    return found


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_the_run_is_sent_as_otlp_protobuf_to_the_configured_endpoint(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLECTOR_TOKEN", TOKEN)
    telemetry = (
        f'[telemetry]\nendpoint = "{collector.url}"\n'
        'headers = {"x-collector-token" = "COLLECTOR_TOKEN"}\n'
    )
    repo = demo_repo(tmp_path / "demo", telemetry)
    run_id, output = run_demo(repo)

    traces = [ExportTraceServiceRequest.FromString(b) for b in collector.bodies("/v1/traces")]
    spans = [
        span
        for request in traces
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    record = json.loads((repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).read_text())
    assert record["ok"] is True and len(spans) == record["spans"] > 0
    assert {span.trace_id.hex() for span in spans} == {f"{trace_id_of(run_id):032x}"}
    resource = _attributes(traces[0].resource_spans[0].resource.attributes)
    assert resource["service.name"] == "autopack"
    assert resource["service.instance.id"] == run_id
    calls = [_attributes(s.attributes) for s in spans if s.name.startswith("chat ")]
    spend = Runtime.open(repo).store.view(run_id).spend
    assert sum(int(c["gen_ai.usage.input_tokens"]) for c in calls) == spend.input_tokens  # type: ignore[call-overload]

    (metrics_body,) = collector.bodies("/v1/metrics")
    metrics = ExportMetricsServiceRequest.FromString(metrics_body)
    names = {
        metric.name
        for resource in metrics.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"gen_ai.client.token.usage", "autopack.gate.decisions", "autopack.model.cost"} <= names
    assert {"autopack.phase.duration", "autopack.runs"} <= names

    # The header's value reaches the collector as a header, and nowhere else.
    for path, headers, body in collector.requests:
        assert headers.get("x-collector-token") == TOKEN, path
        assert TOKEN.encode() not in body
    run_dir = repo / ".autopack" / "runs" / run_id
    for file in (p for p in run_dir.rglob("*") if p.is_file()):
        assert TOKEN not in file.read_text(errors="replace"), file
    assert TOKEN not in output
    assert all(TOKEN not in json.dumps(e.data) for e in Runtime.open(repo).store.events(run_id))


def test_the_standard_otel_endpoint_variable_turns_telemetry_on(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "builds")
    repo = demo_repo(tmp_path / "demo")
    run_demo(repo)
    (body,) = collector.bodies("/v1/traces")
    resource = _attributes(
        ExportTraceServiceRequest.FromString(body).resource_spans[0].resource.attributes
    )
    assert resource["service.name"] == "builds"
    assert len(collector.bodies("/v1/metrics")) == 1


def test_a_collector_that_refuses_is_recorded_and_the_run_still_succeeds(
    tmp_path: Path, collector: Collector
) -> None:
    collector.status = 400
    repo = demo_repo(tmp_path / "demo", f'[telemetry]\nendpoint = "{collector.url}/"\n')
    run_id, _ = run_demo(repo)
    record = json.loads((repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).read_text())
    assert record["ok"] is False
    assert "did not take the spans" in record["error"] and collector.url in record["error"]
    assert sorted(path for path, _, _ in collector.requests) == ["/v1/metrics", "/v1/traces"]


def test_a_header_variable_that_is_unset_is_recorded_and_nothing_is_sent(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_COLLECTOR_TOKEN", raising=False)
    telemetry = (
        f'[telemetry]\nendpoint = "{collector.url}"\n'
        'headers = {"authorization" = "NO_SUCH_COLLECTOR_TOKEN"}\n'
    )
    repo = demo_repo(tmp_path / "demo", telemetry)
    run_id, _ = run_demo(repo)
    record = json.loads((repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).read_text())
    assert record == {
        "ok": False,
        "error": "TelemetryError: [telemetry] headers: authorization: "
        "$NO_SUCH_COLLECTOR_TOKEN is not set",
    }
    assert collector.requests == []


@pytest.mark.parametrize(
    ("telemetry", "said"),
    [
        ('[telemetry]\nprotocol = "grpc"\n', "autopack.toml: telemetry.protocol:"),
        ('[telemetry]\nendpoint = "localhost:4318"\n', "telemetry.endpoint:"),
        (
            '[telemetry]\nheaders = {"authorization" = "Bearer abc123"}\n',
            "the name of an environment variable",
        ),
        ("[telemetry]\nenabeld = true\n", "telemetry.enabeld: unknown setting"),
    ],
)
def test_bad_telemetry_settings_exit_2_naming_the_key_and_write_nothing(
    tmp_path: Path, telemetry: str, said: str
) -> None:
    repo = demo_repo(tmp_path / "demo", telemetry)
    run_id, output = run_demo(repo, exit_code=2)
    assert said in output and run_id == ""
    assert not (repo / ".autopack" / "runs").exists()
    assert "Bearer abc123" not in output


def test_enabled_false_wins_over_the_otel_endpoint_variable(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    repo = demo_repo(tmp_path / "demo", "[telemetry]\nenabled = false\n")
    run_id, _ = run_demo(repo)
    assert collector.requests == []
    assert not (repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).exists()
