"""A run killed mid-way (kill -9) and resumed with `autopack resume` is one trace.

The first executor (``tests/crash/crash_executor.py``) dies right after the event that
starts the first phase's verify step, and exports nothing. The resume exports
once, at the run's end, from the whole event log: the first executor's phase is in the
same trace as the resumed executor's, the step it was killed in is one span with a
``step_restarted`` event.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from otel_rig import ancestry, demo_repo, tree
from typer.testing import CliRunner

from autopack.cli import app
from autopack.cli.demo import demo_files
from autopack.engine.create import create_run
from autopack.engine.runtime import Runtime
from autopack.plan import load_plan
from autopack.telemetry import TELEMETRY_FILE
from autopack.telemetry.export import capture, trace_id_of

pytestmark = [pytest.mark.slow]
CRASH = Path(__file__).parents[1] / "crash" / "crash_executor.py"


def test_a_run_killed_and_resumed_is_one_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    repo = demo_repo(tmp_path / "demo", "[telemetry]\nenabled = true\n")
    _, plan, script = demo_files()
    rt = Runtime.open(repo, model_override=f"scripted:{script}")
    run_id = create_run(rt, load_plan(plan), plan_source=str(plan))
    events = rt.store.events(run_id)
    with capture() as captured:
        killed = subprocess.run(
            [sys.executable, str(CRASH), str(repo), run_id, "event", "9"], check=False
        )
        assert killed.returncode == -9
        assert not (repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).exists()
        events = rt.store.events(run_id)
        assert events[-1].type == "step_started" and events[-1].data["step"] == "verify"
        done = CliRunner().invoke(app, ["resume", run_id, "-C", str(repo)])
    assert done.exit_code == 0, done.output

    spans = list(captured.spans.get_finished_spans())
    assert {s.context.trace_id for s in spans} == {trace_id_of(run_id)}
    by_id = tree(spans)
    assert {s.name for s in spans if s.name.startswith("phase ")} == {
        "phase slugify",
        "phase word-frequencies",
        "phase cli",
    }
    verifies = [s for s in spans if s.name == "step verify" and "slugify#1" in _attempt(s, by_id)]
    assert len(verifies) == 1
    assert [e.name for e in verifies[0].events] == ["step_restarted"]
    assert verifies[0].status.is_ok and verifies[0].attributes["autopack.tests.passed"] == 6  # type: ignore[index]
    (root,) = [s for s in spans if s.parent is None]
    assert root.attributes is not None and root.attributes["autopack.run.state"] == "SUCCEEDED"
    for call in (s for s in spans if s.name.startswith("chat ")):
        assert ancestry(call, by_id) == ["autopack", "phase", "attempt", "step", "chat"]
    record = json.loads((repo / ".autopack" / "runs" / run_id / TELEMETRY_FILE).read_text())
    assert record["ok"] is True and record["spans"] == len(spans)


def _attempt(span: object, by_id: dict[int, object]) -> str:
    parent = span.parent  # type: ignore[attr-defined]
    return by_id[parent.span_id].name if parent is not None else ""  # type: ignore[attr-defined]
