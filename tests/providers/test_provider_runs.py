"""The demo plan, run end to end through the real Anthropic and OpenAI providers.

The official SDKs talk to the loopback fake server (``tests/llm/fakeserver.py``). It
answers the Builder with the demo script's edits (as ``write_file``/``edit`` tool calls
for Anthropic, so the tool loop runs end to end; as text for OpenAI) and the Auditor
with the script's verdicts, and injects a 429 with ``retry-after``, a 500, a timeout
or a cut-off body, and a malformed tool call along the way. Each run is then searched
for its provider key, replayed offline, and replayed from a tampered cassette.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakeserver import FakeServer, Fault, Item, Reply
from typer.testing import CliRunner

from autopack.cli import app
from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.engine.runtime import Runtime
from autopack.events import Event
from autopack.llm.cassette import request_hash
from autopack.states import RunState
from autopack.workspace import git

pytestmark = [pytest.mark.slow]

SPECS = {"anthropic": "anthropic:claude-sonnet-4-6", "openai": "openai:gpt-4.1"}
KEY_ENVS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
CANARIES = {
    "anthropic": "canary-anthropic-key-5f1e0c7a9b3d4e2f8a6c",
    "openai": "canary-openai-key-0d9c8b7a6f5e4d3c2b1a",
}
"""Keys in no well-known key shape: only the redaction of the environment can hide them."""
TIMEOUT_S = 4
"""The providers' client timeout; the injected hang outlasts it."""
_BLOCK = re.compile(
    r"^([^\n]+)\n<<<<<<< SEARCH\n(.*?)^=======\n(.*?)^>>>>>>> REPLACE$", re.MULTILINE | re.DOTALL
)


@dataclass
class ProviderRun:
    """One finished run through a provider, and what it left behind."""

    provider: str
    repo: Path
    run_id: str
    output: str
    logs: list[str]
    server: FakeServer
    items: list[Item]

    def events(self, kind: str) -> list[Event]:
        return [e for e in Runtime.open(self.repo).store.events(self.run_id) if e.type == kind]

    def cassette(self) -> Path:
        return self.repo / ".autopack" / "runs" / self.run_id / "cassette.jsonl"


class LogCapture(logging.Handler):
    """Every log record of every logger, down to DEBUG, formatted as a user would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def demo_replies() -> dict[str, dict[str, list[Any]]]:
    _, _, script = demo_files()
    replies: dict[str, dict[str, list[Any]]] = yaml.safe_load(script.read_text())["replies"]
    return replies


def builder_turns(text: str, *, tools: bool) -> list[Reply]:
    """One Builder attempt: the script's text, or its edits as tool calls and then ``finish``."""
    if not tools:
        return [Reply(text=text, input_tokens=900, output_tokens=300)]
    note = text.split("\n\n", 1)[0].strip()
    calls: list[tuple[str, dict[str, Any] | str]] = [
        ("edit", {"path": path, "old": old, "new": new})
        if old
        else ("write_file", {"path": path, "content": new})
        for path, old, new in _BLOCK.findall(text)
    ]
    return [Reply(text=note, tool_calls=calls), Reply(tool_calls=[("finish", {"summary": note})])]


MALFORMED: dict[str, Reply] = {
    # Anthropic: a tool_use whose input is not an object; OpenAI: arguments cut mid-JSON.
    "anthropic": Reply(text="Creating the module.", tool_calls=[("write_file", "slug.py")]),
    "openai": Reply(tool_calls=[("write_file", '{"path": "src/textkit/slug.py", "content": "')]),
}
ENV_PROBE = Reply(
    text="Checking what the sandbox can see.",
    tool_calls=[("run", {"command": "printenv ANTHROPIC_API_KEY OPENAI_API_KEY"})],
)
"""A Builder command that would copy the keys into the next prompt if the sandbox passed them."""
BROKEN_TRANSPORT: dict[str, Fault] = {
    "anthropic": Fault(kind="hang", seconds=60),
    "openai": Fault(kind="truncate"),
}


def conversation(provider: str) -> list[Item]:
    """Everything the server answers, in the order the run asks: replies and faults."""
    script = demo_replies()
    tools = provider == "anthropic"
    builds = {
        phase: [builder_turns(text, tools=tools) for text in script[phase]["builder"]]
        for phase in script
    }

    def verdict(phase: str) -> Reply:
        return Reply(text=json.dumps(script[phase]["auditor"][0]), output_tokens=40)

    slugify = builds["slugify"][0]
    if tools:
        slugify = [slugify[0], ENV_PROBE, *slugify[1:]]
    return [
        Fault(429, retry_after="0", message="rate limited: slow down"),
        MALFORMED[provider],
        *slugify,
        Fault(500, message="internal error"),
        verdict("slugify"),
        BROKEN_TRANSPORT[provider],
        *builds["word-frequencies"][0],
        *builds["word-frequencies"][1],
        verdict("word-frequencies"),
        *builds["cli"][0],
        verdict("cli"),
    ]


def configure(repo: Path, provider: str, server: FakeServer) -> None:
    """Point the provider at the loopback server in the demo repository's settings."""
    url = server.anthropic_url if provider == "anthropic" else server.openai_url
    config = repo / "autopack.toml"
    section = f'[models.providers.{provider}]\nbase_url = "{url}"\ntimeout_seconds = {TIMEOUT_S}\n'
    config.write_text(f"{config.read_text()}\n{section}")
    git.git(repo, "commit", "-q", "-am", f"autopack: {provider} at the loopback server")


def run_plan(repo: Path, model: str) -> tuple[str, str]:
    """``autopack run`` of the demo plan; the run id and the CLI's output."""
    _, plan, _ = demo_files()
    result = CliRunner().invoke(app, ["run", str(plan), "-C", str(repo), "--model", model])
    assert result.exit_code == 0, result.output
    (row,) = Runtime.open(repo).store.list_runs()
    return row.id, result.output


def gate_decisions(repo: Path, run_id: str) -> dict[str, list[str]]:
    """Per phase, the gate's decision on each attempt, in order."""
    decisions: dict[str, list[str]] = {}
    for event in Runtime.open(repo).store.events(run_id):
        if event.type == "step_completed" and event.data["step"] == "gate":
            phase, decision = event.data["phase_id"], event.data["result"]["decision"]
            decisions.setdefault(phase, []).append(decision)
    return decisions


def attempts_started(repo: Path, run_id: str) -> Counter[str]:
    events = Runtime.open(repo).store.events(run_id)
    return Counter(e.data["phase_id"] for e in events if e.type == "phase_started")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same plan with the demo's scripted model: what the provider runs must match."""
    repo = prepare_demo_repo(tmp_path_factory.mktemp("scripted") / "repo")
    _, _, script = demo_files()
    run_id, _ = run_plan(repo, f"scripted:{script}")
    return repo, run_id


@pytest.fixture(scope="module", params=list(SPECS))
def provider_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProviderRun]:
    """The demo plan through one provider, its key a canary; the server stops afterwards."""
    provider: str = request.param
    repo = prepare_demo_repo(tmp_path_factory.mktemp(provider) / "repo")
    items = conversation(provider)
    capture, root = LogCapture(), logging.getLogger()
    level = root.level
    with pytest.MonkeyPatch.context() as env, FakeServer(api_key=CANARIES[provider]) as server:
        for name, key_env in KEY_ENVS.items():
            env.setenv(key_env, CANARIES[name])
        configure(repo, provider, server)
        server.enqueue(provider, *items)
        root.addHandler(capture)
        root.setLevel(logging.DEBUG)
        try:
            run_id, output = run_plan(repo, SPECS[provider])
        finally:
            root.removeHandler(capture)
            root.setLevel(level)
    yield ProviderRun(provider, repo, run_id, output, capture.lines, server, items)


def test_each_provider_lands_the_demo_with_the_scripted_attempts(
    provider_run: ProviderRun, scripted: tuple[Path, str]
) -> None:
    run = provider_run
    view = Runtime.open(run.repo).store.view(run.run_id)
    assert view.state is RunState.SUCCEEDED
    assert len(git.log_commits(run.repo, view.base_commit, view.branch)) == 3
    # Faults and the unreadable tool call cost no attempt: attempts and gate decisions are the
    # scripted run's (word-frequencies is sent back once for breaking an existing test).
    assert gate_decisions(run.repo, run.run_id) == gate_decisions(*scripted)
    assert attempts_started(run.repo, run.run_id) == attempts_started(*scripted)
    assert gate_decisions(*scripted)["word-frequencies"] == ["RETRY", "PASS"]


def test_faults_are_retried_by_the_door_as_the_same_call(provider_run: ProviderRun) -> None:
    run = provider_run
    requests = run.server.requests
    assert run.server.pending(run.provider) == 0
    assert len(requests) == len(run.items)  # every reply and fault asked for exactly once
    faults = [i for i, item in enumerate(run.items) if isinstance(item, Fault)]
    assert len(faults) == 3
    for index in faults:
        assert requests[index + 1].body == requests[index].body  # retried, not rebuilt
    # Only answered calls are model calls; a fault is neither a call nor an attempt.
    replies = sum(isinstance(item, Reply) for item in run.items)
    called = run.events("model_called")
    assert len(called) == replies
    assert {e.data["model"] for e in called} == {SPECS[run.provider]}
    assert sum(e.data["input_tokens"] for e in called) == sum(
        item.input_tokens for item in run.items if isinstance(item, Reply)
    )


def test_unreadable_tool_arguments_cost_a_step_not_an_attempt(
    provider_run: ProviderRun,
) -> None:
    """A tool call whose arguments are not a JSON object is answered with a tool error that
    says why; the model's next step goes on with the same attempt."""
    run = provider_run
    entries = [json.loads(line) for line in run.cassette().read_text().splitlines()]
    assert not [e for e in entries if e.get("error", {}).get("type") == "MalformedReply"]
    first = next(e for e in entries if e["request"]["phase_id"] == "slugify")
    assert (first["request"]["role"], first["request"]["call_index"]) == ("builder", 0)
    (bad,) = first["response"]["tool_calls"]
    assert bad["name"] == "write_file" and bad["error"].startswith("they are not")
    follow = next(
        e["request"]
        for e in entries
        if e["request"]["phase_id"] == "slugify" and e["request"]["call_index"] == 1
    )
    assert follow["attempt"] == 1
    answer = follow["messages"][-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == bad["id"]
    assert answer["content"].startswith("error: the arguments of this write_file call")
    builds = [e for e in run.events("step_completed") if e.data["step"] == "build"]
    slug = next(e.data for e in builds if e.data["phase_id"] == "slugify")
    assert slug["attempt"] == 1 and "error" not in slug["result"]
    if run.provider == "anthropic":  # the tool loop wrote the files and finished
        assert slug["result"]["wrote_through_tools"] is True
        assert slug["result"]["stop_reason"] == "finish"


def test_no_file_log_event_or_output_holds_the_provider_key(provider_run: ProviderRun) -> None:
    run = provider_run
    canary = CANARIES[run.provider].encode()
    # The key was in use: the server refuses (401) any call without it.
    assert all(CANARIES[run.provider] in json.dumps(r.headers) for r in run.server.requests)
    # ... and never in a prompt, even after the Builder ran printenv in the sandbox.
    assert [r for r in run.server.requests if canary.decode() in json.dumps(r.body)] == []
    if run.provider == "anthropic":
        asked = [json.dumps(r.body) for r in run.server.requests]
        assert any("printenv" in body and "exit code 1" in body for body in asked)
    files = [p for p in (run.repo / ".autopack").rglob("*") if p.is_file()]
    assert any(p.name == "autopack.db" for p in files)
    assert any(p.name == "cassette.jsonl" for p in files)
    assert [p for p in files if canary in p.read_bytes()] == []
    assert [line for line in run.logs if CANARIES[run.provider] in line] == []
    assert run.logs  # the SDKs and the engine did log, down to DEBUG
    assert CANARIES[run.provider] not in run.output
    events = Runtime.open(run.repo).store.events(run.run_id)
    assert all(CANARIES[run.provider] not in e.model_dump_json() for e in events)
    other = next(key for name, key in CANARIES.items() if name != run.provider).encode()
    assert [p for p in files if other in p.read_bytes()] == []


def test_replay_offline_lands_the_same_tree_in_every_phase(provider_run: ProviderRun) -> None:
    run = provider_run  # its server has stopped: nothing answers at its URL any more
    result = CliRunner().invoke(app, ["replay", run.run_id, "-C", str(run.repo)])
    assert result.exit_code == 0, result.output
    assert "every phase's tree hash equals the original's" in " ".join(result.output.split())
    for phase in ("slugify", "word-frequencies", "cli"):
        assert re.search(rf"^{phase}: \w{{12}} -> \w{{12}} same$", result.output, re.MULTILINE)


def test_replay_of_a_tampered_request_stops_with_the_diff(provider_run: ProviderRun) -> None:
    run = provider_run
    cassette = run.cassette()
    original = cassette.read_text()
    entries = [json.loads(line) for line in original.splitlines()]
    audit = next(e for e in entries if e["request"]["role"] == "auditor")
    audit["request"]["messages"][0]["content"] += "\nTAMPERED: this line was never asked."
    audit["hash"] = request_hash(audit["request"])
    cassette.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    try:
        result = CliRunner().invoke(app, ["replay", run.run_id, "-C", str(run.repo)])
    finally:
        cassette.write_text(original)
    assert result.exit_code == 3  # a diverged replay is an environment error
    assert "the request differs from the recording" in result.output
    assert "--- recorded" in result.output and "+++ requested" in result.output
    assert re.search(r"^-.*TAMPERED: this line was never asked", result.output, re.MULTILINE)
    assert "every phase's tree hash equals" not in result.output
    replays = [
        row
        for row in Runtime.open(run.repo).store.list_runs()
        if row.id.startswith(f"{run.run_id}-replay-")
    ]
    assert replays and all(row.state != RunState.RUNNING.value for row in replays)
    diverged = [row for row in replays if row.state == RunState.FAILED.value]
    assert diverged and "replay diverged" in diverged[0].reason
    assert not git.git(run.repo, "branch", "--list", f"autopack/{diverged[0].id}").strip()


ONE_PHASE_PLAN = """\
run: {goal: Bump the value}
tiers:
  - id: only
    phases:
      - id: bump
        goal: Set VALUE to 2
        scope: {paths: [value.py]}
        tests: {command: "true"}
"""
BUMP = "value.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 2\n>>>>>>> REPLACE\n"


def configure_new(repo: Path, server: FakeServer) -> None:
    """A fresh repository whose settings point OpenAI at the loopback server."""
    (repo / "autopack.toml").write_text(
        f'[models.providers.openai]\nbase_url = "{server.openai_url}"\n'
    )
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")


def test_unreadable_arguments_twice_cost_two_steps_not_the_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "value.py").write_text("VALUE = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    plan = tmp_path / "plan.yaml"
    plan.write_text(ONE_PHASE_PLAN)
    monkeypatch.setenv("OPENAI_API_KEY", CANARIES["openai"])
    approve = {"verdict": "approve", "summary": "VALUE is 2.", "issues": []}
    with FakeServer(api_key=CANARIES["openai"]) as server:
        configure_new(repo, server)
        server.enqueue(
            "openai",
            MALFORMED["openai"],
            MALFORMED["openai"],  # the same mistake again: another tool error, another step
            Reply(text=BUMP),
            Reply(text=json.dumps(approve)),
        )
        result = CliRunner().invoke(
            app, ["run", str(plan), "-C", str(repo), "--model", SPECS["openai"]]
        )
        assert result.exit_code == 0, result.output
        assert server.pending("openai") == 0
        third = server.requests[2].body["messages"]
    (row,) = Runtime.open(repo).store.list_runs()
    assert gate_decisions(repo, row.id) == {"bump": ["PASS"]}
    assert attempts_started(repo, row.id) == {"bump": 1}
    tool_errors = [m for m in third if m["role"] == "tool"]
    assert len(tool_errors) == 2
    assert all("could not be read: they are not JSON" in m["content"] for m in tool_errors)
    events = Runtime.open(repo).store.events(row.id)
    calls = [e.data for e in events if e.type == "model_called"]
    assert [(c["attempt"], c["role"]) for c in calls] == [
        (1, "builder"),
        (1, "builder"),
        (1, "builder"),
        (1, "auditor"),
    ]
    assert (repo / "value.py").read_text() == "VALUE = 1\n"  # main is untouched
    assert git.git(repo, "show", f"autopack/{row.id}:value.py") == "VALUE = 2"
