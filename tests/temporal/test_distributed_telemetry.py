"""Telemetry on Temporal: the demo carried out by two worker processes is one trace,
sent once, by the worker that finishes the run, to the OTLP endpoint the repository's
``[telemetry]`` names (a loopback collector, decoded with ``opentelemetry-proto``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).parents[1] / "telemetry"))

from otel_rig import Collector, collector

from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.config import load_settings
from autopack.engine.temporal import create_distributed_run, run_input, start_run
from autopack.engine.worker import RepoCache
from autopack.plan import load_plan
from autopack.store import SqlStore
from autopack.telemetry.export import trace_id_of
from autopack.workspace import git

pytestmark = [pytest.mark.services, pytest.mark.slow]
__all__ = ["collector"]


def test_a_run_on_two_workers_is_one_trace_sent_once(
    tmp_path: Path,
    temporal: str,
    postgres: Any,
    workers: Any,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    origin = prepare_demo_repo(tmp_path / "origin")
    config = origin / "autopack.toml"
    config.write_text(f'{config.read_text()}\n[telemetry]\nendpoint = "{collector.url}"\n')
    git.git(origin, "commit", "-q", "-am", "telemetry to the loopback collector")
    remote = tmp_path / "remote.git"
    git.git(tmp_path, "clone", "-q", "--bare", str(origin), str(remote))
    db = postgres.database()
    store = SqlStore(db)
    _, plan_path, script = demo_files()
    run_id = create_distributed_run(
        store,
        load_plan(plan_path),
        str(remote),
        RepoCache(tmp_path / "submit"),
        plan_source=str(plan_path),
        model_override=f"scripted:{script}",
    )
    workers(2, db=db, task_queue="otel")

    async def main() -> None:
        client = await Client.connect(temporal)
        spec = run_input(store, run_id, load_settings(remote), heartbeat_timeout_s=5)
        handle = await start_run(client, spec, task_queue="otel")
        assert await asyncio.wait_for(handle.result(), 240) == "SUCCEEDED"

    asyncio.run(main())
    (body,) = collector.bodies("/v1/traces")  # one export, from the finishing worker
    spans = [
        span
        for resource in ExportTraceServiceRequest.FromString(body).resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert {span.trace_id.hex() for span in spans} == {f"{trace_id_of(run_id):032x}"}
    names = [span.name for span in spans]
    assert {n for n in names if n.startswith("phase ")} == {
        "phase slugify",
        "phase word-frequencies",
        "phase cli",
    }
    assert sum(n.startswith("chat ") for n in names) == 7
    assert names.count("step commit") == 3
    spend = store.view(run_id).spend
    tokens = 0
    for span in spans:
        for item in span.attributes:
            if item.key == "gen_ai.usage.input_tokens":
                tokens += item.value.int_value
    assert tokens == spend.input_tokens > 0
    assert len(collector.bodies("/v1/metrics")) == 1
