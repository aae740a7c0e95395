"""MCP tools for the Builder: the tools a phase allows, from the servers ``[mcp.servers]``
names, offered beside the Builder's own.

A stdio server starts in the phase's worktree through the runner's sandbox (the worktree
writable, nothing else, no network unless the server's ``network`` says so), so what it
writes is held to the phase's scope like a ``run`` command's: the apply step refuses a
change outside it. Every exchange (the tool list, each call and its result) goes through
the run's cassette; on replay they are served from it and no server is started. A call
that takes longer than the server's ``timeout_s`` stops the server (its whole process
tree) and comes back to the model as an error, as does any refusal: a bad call costs a
step, never the phase.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import jsonschema
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from autopack.config import McpServer
from autopack.events import McpCalled
from autopack.llm.base import ToolCall, ToolSpec
from autopack.llm.cassette import CASSETTE_VERSION, Cassette, Redactor
from autopack.llm.errors import ReplayDivergence
from autopack.workspace.runner import Sandbox, server_command

PREFIX = "mcp__"
"""A tool ``T`` of server ``S`` is offered to the model as ``mcp__S__T``."""


class McpUnavailable(RuntimeError):
    """A server the phase needs cannot be started, or lacks a tool the phase allows."""


def offered_name(server: str, tool: str) -> str:
    return f"{PREFIX}{server}__{tool}"


class McpTape:
    """A phase attempt's MCP exchanges in the run's cassette: appended when live, served
    by request on replay (in recorded order), where an exchange never recorded stops the
    replay as a model request would."""

    def __init__(
        self, cassette: Path, replay_from: Path | None, phase_id: str, attempt: int
    ) -> None:
        self.cassette = Cassette(cassette)
        self.phase_id = phase_id
        self.attempt = attempt
        self.replaying = replay_from is not None
        self._recorded: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in Cassette(replay_from).entries() if replay_from else []:
            if "mcp" in entry:
                self._recorded[entry["hash"]].append(entry["mcp"]["result"])
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def exchange(
        self, server: str, op: str, request: dict[str, Any], live: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        redactor = Redactor()
        key = {
            "server": server,
            "op": op,
            "request": redactor.data(request),
            "phase_id": self.phase_id,
            "attempt": self.attempt,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        if self.replaying:
            with self._lock:
                found = self._recorded.get(digest, [])
                index = self._served[digest]
                self._served[digest] += 1
            if index >= len(found):
                raise ReplayDivergence(
                    f"replay: MCP {op} of {server!r} {json.dumps(key['request'])[:300]} in"
                    f" phase {self.phase_id!r} attempt {self.attempt} was not recorded"
                )
            result = found[index]
        else:
            result = redactor.data(live())
        entry = {"v": CASSETTE_VERSION, "hash": digest, "mcp": {**key, "result": result}}
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        self.cassette.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.cassette.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
        return dict(result)


@dataclass
class _Tool:
    server: str
    name: str
    spec: ToolSpec
    validator: jsonschema.Draft202012Validator


class McpToolbox:
    """The MCP tools one phase attempt allows, bound to its worktree and sandbox."""

    def __init__(
        self,
        allowed: Sequence[str],
        servers: Mapping[str, McpServer],
        *,
        worktree: Path,
        sandbox: Sandbox,
        tape: McpTape,
        observe: Callable[[McpCalled], object],
        logs: Path,
    ) -> None:
        self.allowed = list(dict.fromkeys(allowed))
        self.servers = {name.split(".", 1)[0]: servers[name.split(".", 1)[0]] for name in allowed}
        self.worktree = worktree
        self.sandbox = sandbox
        self.tape = tape
        self.observe = observe
        self.logs = logs
        self.tools: dict[str, _Tool] = {}
        self.calls = 0
        self.records: list[dict[str, Any]] = []
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._live: dict[str, _Connection] = {}
        self._stopped: dict[str, str] = {}
        self._scratch: Path | None = None
        """What the sandbox needs while servers run (its seccomp filter), removed after."""

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self.tools.values())

    def handles(self, name: str) -> bool:
        return name.startswith(PREFIX)

    def open(self) -> None:
        """List each server's tools (live or from the cassette) and keep the allowed ones."""
        for server in self.servers:
            listed = self.tape.exchange(server, "list", {}, functools.partial(self._list, server))
            if "error" in listed:
                raise McpUnavailable(f"MCP server {server!r} did not start: {listed['error']}")
            offered = {tool["name"]: tool for tool in listed["tools"]}
            for name in self.allowed:
                wanted_server, tool = name.split(".", 1)
                if wanted_server != server:
                    continue
                if tool not in offered:
                    have = ", ".join(sorted(offered)) or "none"
                    raise McpUnavailable(
                        f"MCP server {server!r} has no tool {tool!r} (it has {have})"
                    )
                found = offered[tool]
                schema = found.get("input_schema") or {"type": "object"}
                spec = ToolSpec(
                    name=offered_name(server, tool),
                    description=f"[MCP {server}] {found.get('description') or tool}",
                    parameters=schema,
                )
                self.tools[spec.name] = _Tool(
                    server, tool, spec, jsonschema.Draft202012Validator(schema)
                )

    def dispatch(self, call: ToolCall) -> str:
        """Call an allowed tool; every outcome is text for the model and an event."""
        tool = self.tools.get(call.name)
        if tool is None:
            allowed = ", ".join(self.tools) or "none"
            return f"refused: {call.name!r} is not an MCP tool this phase allows ({allowed})"
        problem = jsonschema.exceptions.best_match(tool.validator.iter_errors(call.arguments))
        if problem is not None:
            return f"error: bad arguments for {call.name}: {problem.message}; nothing was done"
        self.calls += 1
        started = time.monotonic()
        request = {"tool": tool.name, "arguments": call.arguments}
        result = self.tape.exchange(
            tool.server, "call", request, lambda: self._call(tool, call.arguments)
        )
        record = McpCalled(
            phase_id=self.tape.phase_id,
            attempt=self.tape.attempt,
            server=tool.server,
            tool=tool.name,
            is_error=bool(result["is_error"]),
            detail=str(result.get("detail", "")),
            duration_ms=round((time.monotonic() - started) * 1000),
            replayed=self.tape.replaying,
        )
        self.observe(record)
        self.records.append(record.model_dump(exclude={"phase_id", "attempt"}))
        text = str(result["text"])
        return f"error: {text}" if result["is_error"] else text

    def close(self) -> None:
        """Stop every server this attempt started (their whole process trees)."""
        for server in list(self._live):
            self._stop(server, "")
        if self._portal_cm is not None:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = self._portal = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- live servers --------------------------------------------------------------------

    def _connection(self, server: str) -> _Connection:
        if self._portal is None:
            self._portal_cm = start_blocking_portal()
            self._portal = self._portal_cm.__enter__()
        if server not in self._live:
            config = self.servers[server]
            log = (self.logs / f"mcp-{server}.log").open("a", encoding="utf-8")
            self._live[server] = _Connection(
                self._portal, self._target(config, log), config.timeout_s, log
            )
        return self._live[server]

    def _target(self, config: McpServer, log: TextIO) -> Any:
        if config.url is not None:
            return config.url
        assert config.command is not None, "McpServer checks it has command or url"
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="autopack-mcp-"))
        command = server_command(
            self.sandbox, config.command, self.worktree, self._scratch, network=config.network
        )
        if command.warning:
            log.write(f"warning: {command.warning}\n")
        params = StdioServerParameters(
            command=command.argv[0], args=command.argv[1:], env=command.env, cwd=self.worktree
        )
        return stdio_client(params, errlog=log)

    def _list(self, server: str) -> dict[str, Any]:
        try:
            tools = self._connection(server).list_tools()
        except Exception as exc:  # a server that cannot start: the phase cannot have it
            self._stop(server, str(exc))
            return {"error": f"{type(exc).__name__}: {_one_line(exc)}"}
        return {"tools": tools}

    def _call(self, tool: _Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        if tool.server in self._stopped:
            detail = f"the MCP server {tool.server!r} was stopped: {self._stopped[tool.server]}"
            return {"text": detail, "is_error": True, "detail": detail}
        connection = self._connection(tool.server)
        try:
            text, is_error = connection.call(tool.name, arguments)
        except TimeoutError:
            timeout = connection.timeout_s
            detail = f"no answer within {timeout:g} s; the server was stopped"
            self._stop(tool.server, detail)
            text = f"{tool.name} timed out: {detail}"
            return {"text": text, "is_error": True, "detail": detail}
        except Exception as exc:  # the server broke the protocol or died
            detail = f"{type(exc).__name__}: {_one_line(exc)}"
            self._stop(tool.server, detail)
            return {"text": f"{tool.name} failed: {detail}", "is_error": True, "detail": detail}
        return {"text": text, "is_error": is_error, "detail": text[:200] if is_error else ""}

    def _stop(self, server: str, reason: str) -> None:
        connection = self._live.pop(server, None)
        if reason:
            self._stopped[server] = reason
        if connection is not None:
            connection.close()


class _Connection:
    """One started server: the SDK's client, driven from the Builder's thread through a
    blocking portal (the Builder loop is synchronous; the SDK is async)."""

    def __init__(self, portal: BlockingPortal, target: Any, timeout_s: float, log: TextIO) -> None:
        self.portal = portal
        self.timeout_s = timeout_s
        self.log = log
        self._cm = portal.wrap_async_context_manager(Client(target, read_timeout_seconds=timeout_s))
        self.client: Client = self._cm.__enter__()

    def list_tools(self) -> list[dict[str, Any]]:
        listed = self.portal.call(self._bounded, self.client.list_tools)
        return [
            {"name": t.name, "description": t.description or "", "input_schema": t.input_schema}
            for t in listed.tools
        ]

    def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        result = self.portal.call(self._bounded, lambda: self.client.call_tool(tool, arguments))
        parts = [getattr(part, "text", f"[{part.type} content omitted]") for part in result.content]
        return "\n".join(parts), bool(result.is_error)

    async def _bounded(self, action: Callable[[], Any]) -> Any:
        with anyio.fail_after(self.timeout_s):
            return await action()

    def close(self) -> None:
        try:
            self._cm.__exit__(None, None, None)
        except Exception as exc:  # a dead server's transport may fail to close cleanly
            self.log.write(f"closing: {type(exc).__name__}: {_one_line(exc)}\n")
        self.log.close()


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0])
    return " ".join(str(exc).split())[:300] or type(exc).__name__
