"""A run's spans, derived from its event log and cassette: pure data, no OpenTelemetry.

Every span has a ``key`` stable across exports (``phase/P/attempt/N/step/S``), a parent
key, explicit start and end times taken from the events' timestamps, and attributes in
the GenAI semantic conventions (model calls, tool calls) or Autopack's own
(``autopack.*``). Deriving the trace from the record rather than timing the code while
it runs means a resumed run is one trace, a replay adds nothing to its original, and
the engine's code carries no instrumentation.

Times the record does not hold are derived and marked: a model call ends at its
``model_called`` event and lasted its ``duration_ms``; the tool calls of one reply ran
between that reply and the next request (or the end of the step), whose interval they
share in order (``autopack.timing = "shared"``); ``finish`` ends the loop and takes none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autopack.events import Event
from autopack.llm.cassette import Redactor
from autopack.projection import RunView, fold

FINISH = "finish"
"""The Builder's tool that ends its loop: nothing runs, so its span has no length."""
AttrValue = str | bool | int | float | list[str]
"""What an OpenTelemetry attribute may hold (the subset Autopack uses)."""


@dataclass
class SpanRecord:
    """One span to export: identity, place in the tree, times (ns since the epoch), facts."""

    key: str
    parent: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    client: bool = False
    """A call out of the process (a model call): span kind CLIENT, else INTERNAL."""
    error: str = ""
    """Set when what the span stands for failed; becomes the span's error status."""
    events: list[tuple[str, int, dict[str, AttrValue]]] = field(default_factory=list)


@dataclass(frozen=True)
class ModelCall:
    """A ``model_called`` event with what the cassette adds, and where it belongs."""

    key: str
    parent: str
    event: Event
    entry: dict[str, Any] | None
    """The cassette exchange that answered it (absent when the cassette is not on this
    machine, e.g. a call another Temporal worker made)."""


def ns(ts: str) -> int:
    """Nanoseconds since the epoch of an event's ISO timestamp."""
    return int(datetime.fromisoformat(ts).timestamp() * 1_000_000) * 1000


def run_spans(
    events: Sequence[Event],
    cassette: Iterable[dict[str, Any]],
    *,
    include_content: bool = False,
    view: RunView | None = None,
) -> list[SpanRecord]:
    """The run's spans, parents before children: run > phase > attempt > step > call.
    ``view`` is the events' fold, when the caller has it already."""
    return _Builder(events, cassette, include_content, view).build()


class _Builder:
    def __init__(
        self,
        events: Sequence[Event],
        cassette: Iterable[dict[str, Any]],
        include_content: bool,
        view: RunView | None,
    ) -> None:
        self.events = list(events)
        self.view = view if view is not None and view.last_seq == events[-1].seq else fold(events)
        self.exchanges = _exchanges(cassette)
        self.include_content = include_content
        self.redactor = Redactor()
        self.spans: dict[str, SpanRecord] = {}

    def build(self) -> list[SpanRecord]:
        run = self._run_span()
        for event in self.events:
            self._place(event)
        self._close_open_steps()
        calls = self._model_calls()
        for call in calls:
            self.spans[call.key] = self._call_span(call)
        self._tool_spans(calls)
        self._stretch(run.key)
        return [self._redacted(span) for span in self.spans.values()]

    # -- the tree --------------------------------------------------------------------

    def _run_span(self) -> SpanRecord:
        view = self.view
        first, last = self.events[0], self.events[-1]
        spend = view.spend
        span = SpanRecord(
            key="run",
            parent=None,
            name=f"autopack run {view.run_id}",
            start_ns=ns(first.ts),
            end_ns=ns(last.ts),
            attributes={
                "autopack.run.id": view.run_id,
                "autopack.run.state": view.state.value,
                "autopack.run.reason": view.reason,
                "autopack.run.branch": view.branch,
                "autopack.run.base_commit": view.base_commit,
                "autopack.run.phases": len(view.phases),
                "autopack.run.input_tokens": spend.input_tokens,
                "autopack.run.output_tokens": spend.output_tokens,
                "autopack.run.cache_read_tokens": spend.cache_read_tokens,
                "autopack.run.cache_write_tokens": spend.cache_write_tokens,
                "autopack.run.cost_usd": spend.cost_usd,
                "autopack.run.model_calls": spend.model_calls,
            },
            error=view.reason if view.state.value == "FAILED" else "",
        )
        self.spans[span.key] = span
        return span

    def _place(self, event: Event) -> None:
        data, at = event.data, ns(event.ts)
        phase_id, attempt = event.phase_id, data.get("attempt")
        if event.type == "phase_started":
            self._phase(phase_id or "", at)
            self._attempt(phase_id or "", int(data["attempt"]), at)
        elif event.type == "phase_skipped":
            self._phase(phase_id or "", at)
        elif event.type == "step_started":
            self._step_started(phase_id or "", int(data["attempt"]), data["step"], at)
        elif event.type == "step_completed":
            self._step_completed(phase_id or "", int(data["attempt"]), data["step"], data, at)
        elif event.type == "model_retrying":
            owner = self._owner(phase_id, attempt, at)
            facts = {k: data[k] for k in ("role", "model", "retry", "delay_s", "reason")}
            self.spans[owner].events.append(("model_retrying", at, facts))
        elif event.type in ("phase_failed", "approval_granted", "approval_rejected"):
            key = _attempt_key(phase_id or "", int(data["attempt"]))
            if key in self.spans:
                self.spans[key].events.append((event.type, at, _event_facts(data)))
                if event.type == "phase_failed":
                    self.spans[key].error = str(data.get("reason", ""))
        elif event.type in ("run_started", "run_paused", "cancel_requested"):
            self.spans["run"].events.append((event.type, at, _event_facts(data)))
        if phase_id and attempt is not None and _attempt_key(phase_id, attempt) in self.spans:
            self._extend(_attempt_key(phase_id, attempt), at)
        if phase_id and f"phase/{phase_id}" in self.spans:
            self._extend(f"phase/{phase_id}", at)

    def _phase(self, phase_id: str, at: int) -> None:
        key = f"phase/{phase_id}"
        if key in self.spans:
            return
        phase = self.view.phases.get(phase_id)
        attributes: dict[str, AttrValue] = {"autopack.phase.id": phase_id}
        error = ""
        if phase is not None:
            attributes |= {
                "autopack.phase.state": phase.state.value,
                "autopack.phase.attempts": phase.attempt,
                "autopack.phase.commit": phase.commit,
                "autopack.phase.reason": phase.reason,
                "autopack.phase.input_tokens": phase.spend.input_tokens,
                "autopack.phase.output_tokens": phase.spend.output_tokens,
                "autopack.phase.cost_usd": phase.spend.cost_usd,
            }
            error = phase.reason if phase.state.value == "FAILED" else ""
        self.spans[key] = SpanRecord(
            key, "run", f"phase {phase_id}", at, at, attributes, error=error
        )

    def _attempt(self, phase_id: str, attempt: int, at: int) -> None:
        key = _attempt_key(phase_id, attempt)
        if key in self.spans:
            return
        attributes: dict[str, AttrValue] = {
            "autopack.phase.id": phase_id,
            "autopack.attempt": attempt,
        }
        self.spans[key] = SpanRecord(
            key, f"phase/{phase_id}", f"attempt {phase_id}#{attempt}", at, at, attributes
        )

    def _step_started(self, phase_id: str, attempt: int, step: str, at: int) -> None:
        key = f"{_attempt_key(phase_id, attempt)}/step/{step}"
        span = self.spans.get(key)
        if span is not None:  # a resume carried out again a step that had not completed
            span.events.append(("step_restarted", at, {}))
            return
        attributes: dict[str, AttrValue] = {
            "autopack.phase.id": phase_id,
            "autopack.attempt": attempt,
            "autopack.step": step,
        }
        parent = _attempt_key(phase_id, attempt)
        self.spans[key] = SpanRecord(key, parent, f"step {step}", at, -1, attributes)

    def _step_completed(
        self, phase_id: str, attempt: int, step: str, data: dict[str, Any], at: int
    ) -> None:
        key = f"{_attempt_key(phase_id, attempt)}/step/{step}"
        if key not in self.spans:  # a result recorded without its start (older logs)
            self._step_started(phase_id, attempt, step, at)
        span = self.spans[key]
        span.end_ns = at
        facts = step_facts(step, data.get("result") or {})
        span.attributes |= facts
        self.spans[_attempt_key(phase_id, attempt)].attributes |= facts

    def _close_open_steps(self) -> None:
        """A step that never completed (the run stopped in it) ends with its attempt."""
        for span in list(self.spans.values()):
            if span.end_ns == -1:
                span.end_ns = self.spans[span.parent or "run"].end_ns
                span.error = "the step did not complete"

    def _extend(self, key: str, at: int) -> None:
        span = self.spans[key]
        span.end_ns = max(span.end_ns, at)

    def _stretch(self, key: str) -> None:
        """Every span ends no earlier than its children (a derived time may overhang)."""
        children = [s for s in self.spans.values() if s.parent == key]
        for child in children:
            self._stretch(child.key)
        span = self.spans[key]
        for child in children:
            span.start_ns = min(span.start_ns, child.start_ns)
            span.end_ns = max(span.end_ns, child.end_ns)

    def _owner(self, phase_id: str | None, attempt: int | None, at: int) -> str:
        """The innermost span open at ``at`` for this phase attempt (a step, else the attempt,
        else the run)."""
        if phase_id is None or attempt is None:
            return "run"
        prefix = _attempt_key(phase_id, attempt)
        steps = [
            s
            for s in self.spans.values()
            if s.key.startswith(f"{prefix}/step/") and s.start_ns <= at and at <= _open(s.end_ns)
        ]
        if steps:
            return steps[-1].key
        return prefix if prefix in self.spans else "run"

    # -- model and tool calls --------------------------------------------------------

    def _model_calls(self) -> list[ModelCall]:
        count: dict[tuple[str, str], int] = defaultdict(int)
        calls = []
        for event in self.events:
            if event.type != "model_called":
                continue
            role, phase_id = str(event.data["role"]), event.phase_id or ""
            index = count[(role, phase_id)]
            count[(role, phase_id)] += 1
            key = f"call/{role}/{phase_id or '-'}/{index}"
            parent = self._owner(event.phase_id, event.data.get("attempt"), ns(event.ts))
            entry = self.exchanges.get((role, phase_id, index))
            calls.append(ModelCall(key, parent, event, entry))
        return calls

    def _call_span(self, call: ModelCall) -> SpanRecord:
        data = call.event.data
        provider, _, model = str(data["model"]).partition(":")
        end = ns(call.event.ts)
        attributes: dict[str, AttrValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": model or provider,
            "gen_ai.usage.input_tokens": int(data["input_tokens"]),
            "gen_ai.usage.output_tokens": int(data["output_tokens"]),
            "gen_ai.usage.cache_read.input_tokens": int(data.get("cache_read_tokens", 0)),
            "gen_ai.usage.cache_creation.input_tokens": int(data.get("cache_write_tokens", 0)),
            "autopack.cost_usd": float(data["cost_usd"]),
            "autopack.role": str(data["role"]),
        }
        if data.get("usage_fault"):
            attributes["autopack.usage_fault"] = str(data["usage_fault"])
        if call.entry is not None:
            attributes |= self._exchange_facts(call.entry)
        start = end - int(data.get("duration_ms", 0)) * 1_000_000
        name = f"chat {attributes['gen_ai.request.model']}"
        return SpanRecord(call.key, call.parent, name, start, end, attributes, client=True)

    def _exchange_facts(self, entry: dict[str, Any]) -> dict[str, AttrValue]:
        request, response = entry.get("request", {}), entry.get("response", {})
        facts: dict[str, AttrValue] = {
            "gen_ai.response.model": str(response.get("model", "")),
            "gen_ai.response.finish_reasons": [str(response.get("stop_reason", ""))],
            "gen_ai.request.max_tokens": int(request.get("max_tokens", 0)),
            "gen_ai.request.temperature": float(request.get("temperature", 0.0)),
        }
        if self.include_content:
            facts["gen_ai.input.messages"] = json.dumps(request.get("messages", []))
            output = {"text": response.get("text", ""), "tool_calls": response.get("tool_calls")}
            facts["gen_ai.output.messages"] = json.dumps([{"role": "assistant", **output}])
        return facts

    def _tool_spans(self, calls: list[ModelCall]) -> None:
        """Each tool call a reply asked for, between that reply and the next request."""
        following: dict[str, ModelCall | None] = {}
        by_thread: dict[tuple[str, str], list[ModelCall]] = defaultdict(list)
        for call in calls:
            by_thread[(str(call.event.data["role"]), call.event.phase_id or "")].append(call)
        for thread in by_thread.values():
            for here, after in zip(thread, [*thread[1:], None], strict=True):
                following[here.key] = after
        for call in calls:
            tool_calls = (call.entry or {}).get("response", {}).get("tool_calls") or []
            if not tool_calls:
                continue
            after = following[call.key]
            begin = self.spans[call.key].end_ns
            until = self.spans[after.key].start_ns if after else self.spans[call.parent].end_ns
            results = _tool_results(after.entry if after else None)
            working = [t for t in tool_calls if t.get("name") != FINISH]
            share = max(until - begin, 0) // max(len(working), 1)
            start = begin
            for n, tool in enumerate(tool_calls):
                end = start if tool.get("name") == FINISH else start + share
                self.spans[f"{call.key}/tool/{n}"] = self._tool_span(
                    call, n, tool, start, end, results.get(str(tool.get("id")))
                )
                start = end

    def _tool_span(
        self,
        call: ModelCall,
        n: int,
        tool: dict[str, Any],
        start: int,
        end: int,
        result: str | None,
    ) -> SpanRecord:
        name = str(tool.get("name", ""))
        attributes: dict[str, AttrValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": str(tool.get("id", "")),
            "gen_ai.tool.type": "function",
            "autopack.role": str(call.event.data["role"]),
            "autopack.timing": "shared",
        }
        if self.include_content:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(tool.get("arguments", {}))
            if result is not None:
                attributes["gen_ai.tool.call.result"] = result
        key = f"{call.key}/tool/{n}"
        return SpanRecord(key, call.parent, f"execute_tool {name}", start, end, attributes)

    def _redacted(self, span: SpanRecord) -> SpanRecord:
        """Secrets of the environment out of every string, as in the cassette and logs."""
        for name, value in span.attributes.items():
            if isinstance(value, str):
                span.attributes[name] = self.redactor.text(value)
            elif isinstance(value, list):
                span.attributes[name] = [self.redactor.text(v) for v in value]
        span.error = self.redactor.text(span.error)
        span.events = [
            (
                kind,
                at,
                {k: self.redactor.text(v) if isinstance(v, str) else v for k, v in f.items()},
            )
            for kind, at, f in span.events
        ]
        return span


def step_facts(step: str, result: dict[str, Any]) -> dict[str, AttrValue]:
    """What a step's recorded result says, as Autopack attributes (no content)."""
    facts: dict[str, AttrValue] = {}
    if step == "gate":
        facts["autopack.gate.decision"] = str(result.get("decision", ""))
        facts["autopack.gate.reasons"] = [str(r) for r in result.get("reasons", [])]
        facts["autopack.gate.rules"] = [str(r) for r in result.get("rules", [])]
        facts["autopack.proof.hash"] = str(result.get("proof_hash", ""))
    elif step == "verify":
        counts = result.get("counts") or {}
        for which, prefix in (("baseline", "autopack.tests.baseline"), ("full", "autopack.tests")):
            for outcome, number in (counts.get(which) or {}).items():
                facts[f"{prefix}.{outcome}"] = int(number)
        facts["autopack.verify.passed"] = bool(result.get("passed", False))
    elif step == "audit":
        facts["autopack.audit.verdict"] = str(result.get("verdict", ""))
        facts["autopack.audit.issues"] = len(result.get("issues") or [])
    elif step == "build":
        facts["autopack.build.stop_reason"] = str(result.get("stop_reason", ""))
        facts["autopack.build.steps"] = int(result.get("steps", 0))
    elif step == "apply":
        report = result.get("report") or {}
        facts["autopack.apply.applied"] = bool(result.get("applied", False))
        facts["autopack.apply.changed_files"] = len(report.get("changed_files") or [])
    elif step == "commit":
        facts["autopack.commit"] = str(result.get("commit", ""))
        if result.get("proof_hash"):
            facts["autopack.proof.hash"] = str(result["proof_hash"])
    return facts


def _open(end_ns: int) -> int:
    """A step still open (-1) contains every later time."""
    return end_ns if end_ns != -1 else 2**63


def _attempt_key(phase_id: str, attempt: int) -> str:
    return f"phase/{phase_id}/attempt/{attempt}"


def _event_facts(data: dict[str, Any]) -> dict[str, AttrValue]:
    """The scalar fields of an event, for a span event (notes are a person's words: kept,
    as they are in the event log; no model content is among them)."""
    return {k: v for k, v in data.items() if isinstance(v, str | bool | int | float)}


def _exchanges(cassette: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Answered exchanges by (role, phase, call index); a retried call's last answer wins."""
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for entry in cassette:
        request = entry.get("request") or {}
        if "response" not in entry:
            continue
        key = (str(request.get("role")), request.get("phase_id") or "", request.get("call_index"))
        found[(key[0], key[1], int(key[2] or 0))] = entry
    return found


def _tool_results(entry: dict[str, Any] | None) -> dict[str, str]:
    """The tool results a request sent back, by tool call id."""
    if entry is None:
        return {}
    messages = entry.get("request", {}).get("messages", [])
    return {
        str(m["tool_call_id"]): str(m.get("content", ""))
        for m in messages
        if m.get("role") == "tool" and m.get("tool_call_id")
    }
