"""The demo run's trace and metrics, captured in memory with OpenTelemetry's SDK.

`autopack run` drives the demo plan (scripted model) with ``[telemetry] enabled``; the
run's export is captured by ``autopack.telemetry.export.capture`` into the SDK's
``InMemorySpanExporter`` and ``InMemoryMetricReader`` data. What is checked is what an
operator would look at: one trace per run, spans nested run > phase > attempt > step >
call, spend on the spans that adds up to what the store recorded, the gate's evidence
on the attempts, and no prompt or reply text unless it was asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from otel_rig import ancestry, demo_repo, run_demo, tree
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.gate.proof import proof_hash
from autopack.telemetry import TELEMETRY_FILE
from autopack.telemetry.export import Captured, capture, trace_id_of

pytestmark = [pytest.mark.slow]


class DemoRun:
    def __init__(self, repo: Path, run_id: str, captured: Captured) -> None:
        self.repo, self.run_id = repo, run_id
        self.spans: list[ReadableSpan] = list(captured.spans.get_finished_spans())
        self.metrics: list[MetricsData] = captured.metrics

    def named(self, kind: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name.split(" ")[0] == kind]

    def attempt(self, phase: str, number: int) -> ReadableSpan:
        (found,) = [s for s in self.named("attempt") if s.name == f"attempt {phase}#{number}"]
        return found

    def run_dir(self) -> Path:
        return self.repo / ".autopack" / "runs" / self.run_id

    def metric_points(self, name: str) -> list[Any]:
        points = []
        for data in self.metrics:
            for resource in data.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == name:
                            points.extend(metric.data.data_points)
        return points


def captured_run(where: Path, telemetry: str, monkeypatch: pytest.MonkeyPatch) -> DemoRun:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    repo = demo_repo(where, telemetry)
    with capture() as captured:
        run_id, _ = run_demo(repo)
    return DemoRun(repo, run_id, captured)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    with pytest.MonkeyPatch.context() as env:
        return captured_run(
            tmp_path_factory.mktemp("otel") / "demo", "[telemetry]\nenabled = true\n", env
        )


def test_the_demo_run_is_one_trace_nested_run_phase_attempt_step_call(demo: DemoRun) -> None:
    assert {s.context.trace_id for s in demo.spans} == {trace_id_of(demo.run_id)}
    by_id = tree(demo.spans)
    (root,) = [s for s in demo.spans if s.parent is None]
    assert root.name == f"autopack run {demo.run_id}"
    assert root.attributes is not None and root.attributes["autopack.run.state"] == "SUCCEEDED"
    calls = demo.named("chat")
    assert len(calls) == 7  # 4 Builder and 3 Auditor calls: the demo's script
    for call in calls:
        assert ancestry(call, by_id) == ["autopack", "phase", "attempt", "step", "chat"]
    for step in demo.named("step"):
        assert ancestry(step, by_id) == ["autopack", "phase", "attempt", "step"]
    assert {p.name for p in demo.named("phase")} == {
        "phase slugify",
        "phase word-frequencies",
        "phase cli",
    }
    # a span never starts before its parent nor ends after it
    for span in demo.spans:
        if span.parent is not None:
            parent = by_id[span.parent.span_id]
            assert parent.start_time is not None and span.start_time is not None
            assert parent.start_time <= span.start_time
            assert span.end_time is not None and parent.end_time is not None
            assert span.end_time <= parent.end_time
    record = json.loads((demo.run_dir() / TELEMETRY_FILE).read_text())
    assert record["ok"] is True and record["spans"] == len(demo.spans)
    assert record["trace_id"] == f"{trace_id_of(demo.run_id):032x}"


def test_tokens_and_cost_on_the_calls_add_up_to_the_recorded_spend(demo: DemoRun) -> None:
    spend = Runtime.open(demo.repo).store.view(demo.run_id).spend
    calls = [s.attributes or {} for s in demo.named("chat")]
    assert sum(int(c["gen_ai.usage.input_tokens"]) for c in calls) == spend.input_tokens > 0
    assert sum(int(c["gen_ai.usage.output_tokens"]) for c in calls) == spend.output_tokens > 0
    assert sum(float(c["autopack.cost_usd"]) for c in calls) == pytest.approx(spend.cost_usd)
    (root,) = [s for s in demo.spans if s.parent is None]
    assert root.attributes is not None
    assert root.attributes["autopack.run.input_tokens"] == spend.input_tokens
    for call in calls:
        assert call["gen_ai.operation.name"] == "chat"
        assert call["gen_ai.provider.name"] == call["gen_ai.system"] == "scripted"
        assert str(call["gen_ai.request.model"]).endswith("script.yaml")
        assert tuple(call["gen_ai.response.finish_reasons"]) == ("end_turn",)  # type: ignore[arg-type]
    # the metrics say the same
    tokens = demo.metric_points("gen_ai.client.token.usage")
    by_type = {"input": 0, "output": 0}
    for point in tokens:
        by_type[str(point.attributes["gen_ai.token.type"])] += point.sum
    assert by_type == {"input": spend.input_tokens, "output": spend.output_tokens}
    cost = sum(p.value for p in demo.metric_points("autopack.model.cost"))
    assert cost == pytest.approx(spend.cost_usd)


def test_the_gate_evidence_is_on_the_attempts(demo: DemoRun) -> None:
    events = Runtime.open(demo.repo).store.events(demo.run_id)
    gates = {
        (e.data["phase_id"], e.data["attempt"]): e.data["result"]
        for e in events
        if e.type == "step_completed" and e.data["step"] == "gate"
    }
    sent_back = demo.attempt("word-frequencies", 1).attributes or {}
    assert sent_back["autopack.gate.decision"] == "RETRY"
    reasons = list(sent_back["autopack.gate.reasons"])  # type: ignore[arg-type]
    assert any("tests that passed before now fail" in r for r in reasons)
    assert sent_back["autopack.proof.hash"] == gates[("word-frequencies", 1)]["proof_hash"]
    assert sent_back["autopack.tests.baseline.passed"] == 6
    landed = demo.attempt("word-frequencies", 2).attributes or {}
    assert landed["autopack.gate.decision"] == "PASS"
    assert landed["autopack.tests.passed"] == 9
    assert landed["autopack.audit.verdict"] == "approve"
    proof = json.loads((demo.run_dir() / "proofs" / "word-frequencies-2.json").read_text())
    assert landed["autopack.proof.hash"] == gates[("word-frequencies", 2)]["proof_hash"]
    assert landed["autopack.proof.hash"] == proof_hash(proof)
    decisions = {
        str(p.attributes["autopack.gate.decision"]): p.value
        for p in demo.metric_points("autopack.gate.decisions")
    }
    assert decisions == {"PASS": 3, "RETRY": 1}
    phases = demo.metric_points("autopack.phase.duration")
    assert sum(p.count for p in phases) == 3


def _exported_text(spans: list[ReadableSpan]) -> str:
    return "\n".join(json.dumps(json.loads(span.to_json())) for span in spans)


def test_no_prompt_or_reply_text_is_exported_by_default(demo: DemoRun) -> None:
    prompt = (demo.run_dir() / "phases" / "slugify" / "1" / "prompt.txt").read_text()
    exported = _exported_text(demo.spans)
    for line in prompt.splitlines():
        if len(line) > 30:
            assert line not in exported
    assert "Adding the slug module" not in exported  # the Builder's reply
    assert "gen_ai.input.messages" not in exported and "gen_ai.output.messages" not in exported


def test_prompt_and_reply_text_are_exported_when_include_content_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-canary0telemetry0key0abcdef0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("AUTOPACK_CANARY_TOKEN", "canary-token-7f3e9d1c5b")
    telemetry = "[telemetry]\nenabled = true\ninclude_content = true\n"
    run = captured_run(tmp_path / "demo", telemetry, monkeypatch)
    calls = [s.attributes or {} for s in run.named("chat")]
    prompts = [json.loads(str(c["gen_ai.input.messages"])) for c in calls]
    assert any("# Phase slugify (attempt 1)" in m["content"] for p in prompts for m in p)
    replies = " ".join(str(c["gen_ai.output.messages"]) for c in calls)
    assert "Adding the slug module and its tests." in replies
    exported = _exported_text(run.spans)
    assert key not in exported and "canary-token-7f3e9d1c5b" not in exported


def test_nothing_is_exported_when_telemetry_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = captured_run(tmp_path / "default", "", monkeypatch)
    assert run.spans == [] and run.metrics == []
    assert not (run.run_dir() / TELEMETRY_FILE).exists()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    repo = demo_repo(tmp_path / "disabled", "[telemetry]\nenabled = true\n")
    with capture() as captured:
        run_id, _ = run_demo(repo)
    assert captured.spans.get_finished_spans() == () and captured.metrics == []
    assert not (repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).exists()


def test_a_replay_exports_nothing(demo: DemoRun) -> None:
    with capture() as captured:
        done = CliRunner().invoke(app, ["replay", demo.run_id, "-C", str(demo.repo)])
    assert done.exit_code == 0, done.output
    assert captured.spans.get_finished_spans() == () and captured.metrics == []
