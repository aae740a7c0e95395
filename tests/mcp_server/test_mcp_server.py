"""Autopack as an MCP server, driven by the official SDK's client over stdio
(``autopack mcp``) and over Streamable HTTP (``/mcp`` of the API): every tool and
resource, refusals by scope and by key, malformed arguments, no secret in any result."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_helpers import (
    PLAN,
    SCRIPT,
    SECRET_ENV,
    Served,
    http_client,
    stdio_client,
    text,
)

from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
from autopack.store import RunNotFound
from autopack.store.keys import list_keys, revoke_key

TOOLS = {
    "plan_check",
    "run_start",
    "runs_list",
    "run_status",
    "phase_evidence",
    "approve",
    "reject",
    "memory_search",
    "rules_list",
}


async def tour(client: Client, repo: Path) -> list[str]:
    """Every tool and resource once, checking each answer against the repository's
    store and files; returns every text an agent was given."""
    seen: list[str] = []

    async def call(name: str, arguments: dict[str, object]) -> dict[str, object]:
        result = await client.call_tool(name, arguments)
        seen.append(text(result))
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        return result.structured_content

    listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == TOOLS
    assert all(tool.description and tool.input_schema for tool in listed.tools)

    checked = await call("plan_check", {"plan": PLAN % "by-mcp"})
    assert (checked["valid"], checked["run_id"], checked["phases"]) == (True, "by-mcp", 1)
    bad_plan = (PLAN % "by-mcp").replace("paths: [a.py]", "paths: [../a.py]")
    bad = await call("plan_check", {"plan": bad_plan})
    assert bad["valid"] is False
    assert [(i["line"], i["field"]) for i in bad["issues"]] == [
        (7, "tiers[0].phases[0].scope.paths[0]")
    ]

    started = await call("run_start", {"plan": PLAN % "by-mcp"})
    assert started == {"run_id": "by-mcp", "state": "QUEUED", "phase_id": None, "phase_state": None}
    listed_runs = await call("runs_list", {})
    assert {"by-mcp", "waits-approve", "waits-reject"} <= {r["id"] for r in listed_runs["runs"]}

    status = await call("run_status", {"run_id": "waits-approve"})
    (phase,) = status["tiers"][0]["phases"]
    assert (phase["id"], phase["state"], phase["decision"]) == (
        "greet",
        "AWAITING_APPROVAL",
        "NEEDS_APPROVAL",
    )
    found = await call("phase_evidence", {"run_id": "waits-approve", "phase_id": "greet"})
    assert found["evidence"]["decision"] == "NEEDS_APPROVAL"
    assert found["evidence"]["reasons"] == ["risk 72 > 60"]

    approved = await call("approve", {"run_id": "waits-approve", "phase_id": "greet", "note": "ok"})
    assert approved["phase_id"] == "greet"
    rejected = await call(
        "reject",
        {"run_id": "waits-reject", "phase_id": "greet", "note": "not this", "fail_phase": True},
    )
    assert rejected["phase_state"] == PhaseState.FAILED.value

    hits = (await call("memory_search", {"query": "connection pool exhausted", "k": 3}))["hits"]
    assert hits and all(hit["source"] in {"ledger", "fix", "phase"} for hit in hits)
    assert any("pool" in hit["text"] for hit in hits)
    rules = (await call("rules_list", {}))["rules"]
    assert [(r["id"], r["status"], r["runs"], r["saved"]) for r in rules] == [
        ("RULE-001", "candidate", ["run-a", "run-b"], False)
    ]

    entry = text(await client.read_resource("autopack://ledger/BUILD-001"))
    assert entry.startswith("## BUILD-001 | 2026-11-24 | ")
    assert "- Run: run-a" in entry
    summary = text(await client.read_resource("autopack://readme-summary"))
    assert "- Builds: 2" in summary
    ended = json.loads(text(await client.read_resource("autopack://runs/run-b/summary")))
    assert (ended["run_id"], ended["status"]) == ("run-b", "SUCCEEDED")
    seen += [entry, summary, json.dumps(ended)]
    for uri, code in (
        ("autopack://ledger/BUILD-999", "not_found"),
        ("autopack://runs/by-mcp/summary", "not_ended"),
        ("autopack://runs/no-such-run/summary", "not_found"),
    ):
        with pytest.raises(MCPError, match=code):
            await client.read_resource(uri)
    return seen


def check_store_after_tour(repo: Path, who: str) -> None:
    """What a person checks afterwards: the run queued, the answers recorded with who gave
    them, and no rules file written by a read of the rules."""
    store = Runtime.open(repo).store
    queued = store.run("by-mcp")
    assert queued.state == RunState.QUEUED.value
    assert store.view("by-mcp").plan.run.goal == "Add a greeting"
    granted = [e for e in store.events("waits-approve") if e.type == "approval_granted"]
    assert [(e.data["by"], e.data["note"]) for e in granted] == [(who, "ok")]
    assert store.view("waits-reject").phases["greet"].state is PhaseState.FAILED
    assert not (repo / ".autopack" / "rules.json").exists()


def test_stdio_every_tool_and_resource(repo: Path) -> None:
    async def main() -> list[str]:
        async with stdio_client(
            repo, "--scope", "operate", "--no-executor", ANTHROPIC_API_KEY=SECRET_ENV
        ) as client:
            return await tour(client, repo)

    seen = anyio.run(main)
    check_store_after_tour(repo, "local agent (operate)")
    assert all(SECRET_ENV not in shown for shown in seen)


def test_http_every_tool_and_resource(repo: Path, served: Served) -> None:
    async def main() -> list[str]:
        async with http_client(served.url, served.secrets["operate"]) as client:
            return await tour(client, repo)

    seen = anyio.run(main)
    check_store_after_tour(repo, "operate-agent")
    for secret in served.secrets.values():
        assert all(secret not in shown for shown in seen)


def test_http_memory_search_answers_what_the_api_answers(served: Served) -> None:
    query = {"q": "pool smaller than the workers", "k": 4}
    api = httpx.get(
        f"{served.url}/memory/search",
        params=query,
        headers={"Authorization": f"Bearer {served.secrets['read']}"},
    ).json()

    async def main() -> object:
        async with http_client(served.url, served.secrets["read"]) as client:
            result = await client.call_tool("memory_search", {"query": query["q"], "k": 4})
            return result.structured_content

    assert anyio.run(main) == api


async def refused_writes(client: Client) -> list[str]:
    messages = []
    for name, arguments in (
        ("run_start", {"plan": PLAN % "not-allowed"}),
        ("approve", {"run_id": "waits-approve", "phase_id": "greet"}),
        ("reject", {"run_id": "waits-reject", "phase_id": "greet", "note": "no"}),
    ):
        result = await client.call_tool(name, arguments)
        assert result.is_error
        messages.append(text(result))
    assert (await client.call_tool("runs_list", {})).is_error is False  # reading is allowed
    return messages


def check_nothing_written(repo: Path) -> None:
    store = Runtime.open(repo).store
    with pytest.raises(RunNotFound):
        store.run("not-allowed")
    for run_id in ("waits-approve", "waits-reject"):
        assert store.view(run_id).phases["greet"].state is PhaseState.AWAITING_APPROVAL


def test_stdio_agent_reads_only_unless_given_operate(repo: Path) -> None:
    async def main() -> list[str]:
        async with stdio_client(repo, "--no-executor") as client:  # default scope: read
            return await refused_writes(client)

    for message in anyio.run(main):
        assert "forbidden: this needs scope 'operate'; this connection has 'read'" in message
        assert "--scope operate" in message
    check_nothing_written(repo)


def test_http_read_key_cannot_start_or_answer(repo: Path, served: Served) -> None:
    async def main() -> list[str]:
        async with http_client(served.url, served.secrets["read"]) as client:
            return await refused_writes(client)

    for message in anyio.run(main):
        assert "forbidden: this needs scope 'operate'; this connection has 'read'" in message
    check_nothing_written(repo)


def test_http_without_a_valid_key_is_refused_before_mcp(repo: Path, served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    bare = httpx.post(f"{served.url}/mcp", json=body)
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "unauthorized"
    wrong = httpx.post(f"{served.url}/mcp", json=body, headers={"X-API-Key": "apk_nope"})
    assert wrong.status_code == 401

    engine = Runtime.open(repo).store.engine
    (key,) = [k for k in list_keys(engine) if k.name == "operate-agent"]
    revoke_key(engine, key.id)

    async def connect(secret: str | None) -> None:
        async with http_client(served.url, secret) as client:
            await client.list_tools()

    revoked = {"Authorization": f"Bearer {served.secrets['operate']}"}
    assert httpx.post(f"{served.url}/mcp", json=body, headers=revoked).status_code == 401
    for secret in (None, served.secrets["operate"]):  # the SDK's client cannot connect
        with pytest.raises(BaseExceptionGroup) as raised:
            anyio.run(connect, secret)
        assert raised.group_contains(MCPError, match="error response", depth=None)


async def malformed(client: Client) -> dict[str, str]:
    answers = {}
    for name, arguments in (
        ("memory_search", {"query": "pool", "k": 500}),
        ("memory_search", {"query": "pool", "mode": "fuzzy"}),
        ("run_status", {}),
        ("phase_evidence", {"run_id": "waits-approve", "phase_id": "greet", "attempt": 0}),
        ("plan_check", {"plan": ""}),
    ):
        result = await client.call_tool(name, arguments)
        assert result.is_error, (name, arguments)
        answers[f"{name} {sorted(arguments)}"] = text(result)
    unknown = await client.call_tool("no_such_tool", {})
    assert unknown.is_error
    answers["unknown"] = text(unknown)
    missing = await client.call_tool("run_status", {"run_id": "nope"})
    assert missing.is_error
    answers["missing run"] = text(missing)
    return answers


def check_malformed_answers(answers: dict[str, str]) -> None:
    """Each answer names the argument at fault and what it should be."""
    assert "k\n" in answers["memory_search ['k', 'query']"]
    assert "less than or equal to 50" in answers["memory_search ['k', 'query']"]
    assert "'hybrid', 'keyword' or 'dense'" in answers["memory_search ['mode', 'query']"]
    assert "run_id\n  Field required" in answers["run_status []"]
    assert (
        "greater than or equal to 1" in answers["phase_evidence ['attempt', 'phase_id', 'run_id']"]
    )
    assert "at least 1 character" in answers["plan_check ['plan']"]
    assert "Unknown tool: no_such_tool" in answers["unknown"]
    assert "not_found: no run 'nope'" in answers["missing run"]


def test_stdio_malformed_arguments_are_errors_naming_the_argument(repo: Path) -> None:
    async def main() -> dict[str, str]:
        async with stdio_client(repo, "--no-executor") as client:
            return await malformed(client)

    check_malformed_answers(anyio.run(main))


def test_http_malformed_arguments_are_errors_naming_the_argument(served: Served) -> None:
    async def main() -> dict[str, str]:
        async with http_client(served.url, served.secrets["read"]) as client:
            return await malformed(client)

    check_malformed_answers(anyio.run(main))


def test_stdio_run_started_by_an_agent_executes_and_lands(repo: Path) -> None:
    """A local agent starts a run; the server executes it (scripted replies) and the agent
    follows it to the end, then reads the evidence and the run's summary."""
    script = repo.parent / "script.yaml"
    script.write_text(SCRIPT)

    async def main() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        async with stdio_client(
            repo, "--scope", "operate", "--model", f"scripted:{script}"
        ) as client:
            started = await client.call_tool("run_start", {"plan": PLAN % "agent-run"})
            assert not started.is_error, text(started)
            status: dict[str, object] = {}
            with anyio.fail_after(240):  # a hang fails here, not in the CI's timeout
                while status.get("run", {}).get("state") not in ("SUCCEEDED", "FAILED"):  # type: ignore[union-attr]
                    await anyio.sleep(0.2)
                    result = await client.call_tool("run_status", {"run_id": "agent-run"})
                    status = result.structured_content or {}
            found = await client.call_tool(
                "phase_evidence", {"run_id": "agent-run", "phase_id": "greet"}
            )
            summary = await client.read_resource("autopack://runs/agent-run/summary")
            return status, found.structured_content or {}, json.loads(text(summary))

    status, found, summary = anyio.run(main)
    assert status["run"]["state"] == "SUCCEEDED"  # type: ignore[index]
    evidence = found["evidence"]
    assert evidence["decision"] == "PASS"  # type: ignore[index]
    assert "+A = 2" in evidence["diff"]  # type: ignore[index]
    assert summary["status"] == "SUCCEEDED"
    view = Runtime.open(repo).store.view("agent-run")
    assert view.plan_source == "mcp (local agent (operate))"
    landed = subprocess.run(
        ["git", "-C", str(repo), "show", f"{view.branch}:a.py"], capture_output=True, text=True
    )
    assert landed.stdout == "A = 2\n"


def test_a_plan_naming_an_unconfigured_mcp_server_is_not_started(
    repo: Path, served: Served
) -> None:
    """Through the API and through MCP alike: refused with the reason, nothing stored."""
    plan = (PLAN % "needs-mcp").replace(
        "        scope: {paths: [a.py]}\n",
        "        scope: {paths: [a.py]}\n        mcp_tools: [notes.lookup]\n",
    )
    headers = {"Authorization": f"Bearer {served.secrets['operate']}"}
    api = httpx.post(f"{served.url}/runs/start", content=plan, headers=headers)
    assert api.status_code == 422
    assert api.json()["error"]["code"] == "unknown_mcp_server"

    async def main() -> str:
        async with http_client(served.url, served.secrets["operate"]) as client:
            result = await client.call_tool("run_start", {"plan": plan})
            assert result.is_error
            return text(result)

    message = anyio.run(main)
    assert "unknown_mcp_server: phase 'greet': mcp_tools notes.lookup: no such server" in message
    with pytest.raises(RunNotFound):
        Runtime.open(repo).store.run("needs-mcp")


def test_stdio_run_start_without_a_model_is_refused_when_it_would_execute(repo: Path) -> None:
    """As the API does: a server that would execute the run refuses one that could only
    pause at its first model call."""

    async def main() -> str:
        async with stdio_client(repo, "--scope", "operate") as client:  # executor, no model
            result = await client.call_tool("run_start", {"plan": PLAN % "no-model"})
            assert result.is_error
            return text(result)

    assert "no_model: " in anyio.run(main)
    with pytest.raises(RunNotFound):
        Runtime.open(repo).store.run("no-model")
