"""A priced run through the real Anthropic provider, its Builder working through tools.

The official SDK talks to the model layer's loopback server (``tests/llm/fakeserver.py``),
which answers the demo plan's Builder with the script's edits as ``write_file``/``edit``
tool calls then ``finish``, and the Auditor with the script's verdicts, and retries one
call after a 429. The trace must carry each tool call as a span beside the model call
that asked for it, a non-zero cost that adds up to the store's, the retry as an event,
and the prompt cache's reads and writes, and never the provider key, even with
``include_content``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))

from fakeserver import FakeServer, Fault, Item, Reply
from otel_rig import ancestry, demo_repo, tree

from autopack.cli import app
from autopack.cli.demo import demo_files
from autopack.engine.runtime import Runtime
from autopack.telemetry.export import capture

pytestmark = [pytest.mark.slow]
KEY = "canary-anthropic-key-telemetry-9e2d4c"
"""In no well-known key shape: only the redaction of the environment can hide it."""
_BLOCK = re.compile(
    r"^([^\n]+)\n<<<<<<< SEARCH\n(.*?)^=======\n(.*?)^>>>>>>> REPLACE$", re.MULTILINE | re.DOTALL
)


def conversation() -> list[Item]:
    _, _, script = demo_files()
    replies: dict[str, dict[str, list[Any]]] = yaml.safe_load(script.read_text())["replies"]
    items: list[Item] = [Fault(429, retry_after="0", message="rate limited: slow down")]
    for phase in ("slugify", "word-frequencies", "cli"):
        for n, text in enumerate(replies[phase]["builder"]):
            note = text.split("\n\n", 1)[0].strip()
            calls: list[tuple[str, dict[str, Any] | str]] = [
                ("edit", {"path": path, "old": old, "new": new})
                if old
                else ("write_file", {"path": path, "content": new})
                for path, old, new in _BLOCK.findall(text)
            ]
            items += [
                Reply(text=note, tool_calls=calls, input_tokens=900, output_tokens=300),
                Reply(
                    tool_calls=[("finish", {"summary": note})],
                    input_tokens=300,
                    cache_read=800,
                    cache_write=100,
                ),
            ]
            if phase != "word-frequencies" or n == 1:  # attempt 1 fails before the audit
                verdict = json.dumps(replies[phase]["auditor"][0])
                items.append(Reply(text=verdict, output_tokens=40))
    return items


def test_tool_calls_are_spans_and_the_priced_spend_adds_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    _, plan, _ = demo_files()
    with FakeServer(api_key=KEY) as server:
        telemetry = (
            "[telemetry]\nenabled = true\ninclude_content = true\n"
            f'[models.providers.anthropic]\nbase_url = "{server.anthropic_url}"\n'
        )
        repo = demo_repo(tmp_path / "repo", telemetry)
        server.enqueue("anthropic", *conversation())
        with capture() as captured:
            done = CliRunner().invoke(
                app,
                ["run", str(plan), "-C", str(repo), "--model", "anthropic:claude-sonnet-4-6"],
            )
        assert done.exit_code == 0, done.output
        assert server.pending("anthropic") == 0
    (row,) = Runtime.open(repo).store.list_runs()
    spend = Runtime.open(repo).store.view(row.id).spend
    spans = list(captured.spans.get_finished_spans())
    by_id = tree(spans)

    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    names = [str((s.attributes or {})["gen_ai.tool.name"]) for s in tools]
    assert names.count("finish") == 4 and names.count("write_file") >= 4 and "edit" in names
    for span in tools:
        assert ancestry(span, by_id) == ["autopack", "phase", "attempt", "step", "execute_tool"]
        assert by_id[span.parent.span_id].name == "step build"  # type: ignore[union-attr]
    for span in tools:  # with include_content: what the tool was asked, what it answered
        facts = span.attributes or {}
        arguments = json.loads(str(facts["gen_ai.tool.call.arguments"]))
        if facts["gen_ai.tool.name"] == "finish":
            assert arguments["summary"] and "gen_ai.tool.call.result" not in facts
            assert span.start_time == span.end_time  # it ends the loop; nothing runs
        else:
            assert arguments["path"] in str(facts["gen_ai.tool.call.result"])

    calls = [s.attributes or {} for s in spans if s.name.startswith("chat ")]
    assert {str(c["gen_ai.request.model"]) for c in calls} == {"claude-sonnet-4-6"}
    assert {str(c["gen_ai.provider.name"]) for c in calls} == {"anthropic"}
    reasons = {str(r) for c in calls for r in c["gen_ai.response.finish_reasons"]}  # type: ignore[union-attr]
    assert reasons == {"tool_use", "end_turn"}
    assert spend.cost_usd > 0
    assert sum(float(c["autopack.cost_usd"]) for c in calls) == pytest.approx(spend.cost_usd)
    assert sum(int(c["gen_ai.usage.input_tokens"]) for c in calls) == spend.input_tokens  # type: ignore[call-overload]
    cached = sum(int(c["gen_ai.usage.cache_read.input_tokens"]) for c in calls)  # type: ignore[call-overload]
    assert cached == spend.cache_read_tokens == 4 * 800
    written = sum(int(c["gen_ai.usage.cache_creation.input_tokens"]) for c in calls)  # type: ignore[call-overload]
    assert written == spend.cache_write_tokens == 4 * 100
    retried = [e for s in spans for e in s.events if e.name == "model_retrying"]
    assert len(retried) == 1 and "rate limited" in str((retried[0].attributes or {})["reason"])

    exported = "\n".join(span.to_json() for span in spans)
    assert KEY not in exported
