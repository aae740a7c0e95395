"""A loopback HTTP server that speaks Anthropic's Messages API and OpenAI's Chat Completions.

Tests point the official SDKs at it with ``base_url`` (``server.anthropic_url``,
``server.openai_url``) and script it per endpoint with a queue of canned replies and
faults; it records every request it gets. Other test suites reuse it for full runs::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "llm"))
    from fakeserver import FakeServer, Reply, Fault

    with FakeServer() as server:
        server.enqueue("anthropic", Reply(tool_calls=[("read_file", {"path": "a.py"})]))
        server.enqueue("anthropic", Fault(429, retry_after="0"), Reply(text="done"))
        ...
        assert server.requests[0].body["model"] == "claude-sonnet-4-5"

An item may also be a callable taking the :class:`Recorded` request and returning a
``Reply`` or ``Fault``; ``server.default[endpoint]`` answers when the queue is empty
(by default: HTTP 400, so a test that forgot to script a reply fails fast).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Endpoint = Literal["anthropic", "openai"]
PATHS: dict[str, Endpoint] = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai"}


@dataclass(frozen=True)
class Reply:
    """A successful model reply, rendered in the endpoint's own format.

    A tool call's arguments given as a string are sent verbatim (malformed JSON for
    OpenAI, a non-object ``input`` for Anthropic). ``stop`` overrides the stop reason
    (``max_tokens`` renders as OpenAI's ``length``). ``usage=False`` omits usage.

    Usage is rendered as each API reports it: for Anthropic ``input_tokens`` is the
    uncached part and ``cache_write``/``cache_write_1h``/``cache_read`` come apart; for
    OpenAI ``input_tokens`` is ``prompt_tokens`` (the whole prompt) and ``cache_read``
    its ``cached_tokens``.
    """

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    input_tokens: int = 10
    output_tokens: int = 5
    stop: str | None = None
    usage: bool = True
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0


@dataclass(frozen=True)
class Fault:
    """A failure: an HTTP error status, a hang (client timeout), or a cut-off body.

    ``kind="status"`` answers ``status`` with the endpoint's error body; ``retry_after``
    sets that header. ``kind="hang"`` waits ``seconds`` before answering 200 (the client
    should time out first). ``kind="truncate"`` promises a longer body than it sends and
    closes the connection. ``message`` is the error text the provider would send.
    """

    status: int = 500
    kind: Literal["status", "hang", "truncate"] = "status"
    retry_after: str | None = None
    message: str = "fake server fault"
    seconds: float = 30.0


Item = Reply | Fault | Callable[["Recorded"], "Reply | Fault"]


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    endpoint: Endpoint
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeServer:
    """The loopback server; a context manager that starts it on a free port."""

    def __init__(self, *, api_key: str | None = None) -> None:
        """``api_key``: when set, requests without it are answered 401 like the real APIs."""
        self.api_key = api_key
        self.queues: dict[Endpoint, deque[Item]] = {"anthropic": deque(), "openai": deque()}
        self.default: dict[Endpoint, Item] = {
            "anthropic": Fault(400, message="fake server: no anthropic reply queued"),
            "openai": Fault(400, message="fake server: no openai reply queued"),
        }
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_url(self) -> str:
        """``base_url`` for the Anthropic SDK (it appends ``/v1/messages``)."""
        return self.url

    @property
    def openai_url(self) -> str:
        """``base_url`` for the OpenAI SDK (it appends ``/chat/completions``)."""
        return f"{self.url}/v1"

    def enqueue(self, endpoint: Endpoint, *items: Item) -> None:
        """Answer the next requests to ``endpoint`` with ``items``, in order."""
        with self._lock:
            self.queues[endpoint].extend(items)

    def pending(self, endpoint: Endpoint) -> int:
        """How many queued items are still unanswered."""
        with self._lock:
            return len(self.queues[endpoint])

    def start(self) -> FakeServer:
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, recorded: Recorded) -> Reply | Fault:
        with self._lock:
            self.requests.append(recorded)
            queue = self.queues[recorded.endpoint]
            item = queue.popleft() if queue else self.default[recorded.endpoint]
        return item(recorded) if callable(item) else item

    def _authorised(self, recorded: Recorded) -> bool:
        if self.api_key is None:
            return True
        bearer = recorded.headers.get("authorization") == f"Bearer {self.api_key}"
        if recorded.endpoint == "anthropic":  # SDK 0.x sends x-api-key, 2.x a bearer token
            return bearer or recorded.headers.get("x-api-key") == self.api_key
        return bearer

    def _render(self, endpoint: Endpoint, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        n = next(self._ids)
        if endpoint == "anthropic":
            return _anthropic_reply(n, body, reply)
        return _openai_reply(n, body, reply)


def _anthropic_reply(n: int, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    content += [
        {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(reply.tool_calls)
    ]
    stop = reply.stop or ("tool_use" if reply.tool_calls else "end_turn")
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": reply.cache_write + reply.cache_write_1h,
            "cache_read_input_tokens": reply.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": reply.cache_write,
                "ephemeral_1h_input_tokens": reply.cache_write_1h,
            },
        },
    }


def _openai_reply(n: int, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    stop = {"max_tokens": "length", "end_turn": "stop", "tool_use": "tool_calls"}.get(
        reply.stop or "", reply.stop or ("tool_calls" if reply.tool_calls else "stop")
    )
    data: dict[str, Any] = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": stop}],
    }
    if reply.usage:
        data["usage"] = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cache_read},
        }
    return data


def _error_body(endpoint: Endpoint, status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    if endpoint == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            """Headers and body go out in two writes; without this, Nagle adds 40 ms."""
            super().setup()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test's output should show the test, not the access log."""

        def do_POST(self) -> None:
            endpoint = PATHS.get(self.path.split("?", 1)[0])
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length) if length else b"{}"
            if endpoint is None:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            recorded = Recorded(
                endpoint=endpoint,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw or b"{}"),
            )
            if not server._authorised(recorded):
                with server._lock:
                    server.requests.append(recorded)
                self._send(401, _error_body(endpoint, 401, "invalid x-api-key"))
                return
            self._answer(endpoint, recorded, server._next(recorded))

        def do_GET(self) -> None:
            """``GET /v1/models``, the listing both APIs have (Autopack's preflight asks it).

            Answered from the key alone and not recorded: ``requests`` holds model calls."""
            if self.path.split("?", 1)[0] != "/v1/models":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            endpoint: Endpoint = "anthropic" if "anthropic-version" in headers else "openai"
            probe = Recorded(endpoint=endpoint, path=self.path, headers=headers, body={})
            if not server._authorised(probe):
                self._send(401, _error_body(endpoint, 401, "invalid x-api-key"))
                return
            model = {"id": "fake-model", "created": 0}
            if endpoint == "anthropic":
                listing = {"data": [{**model, "type": "model"}], "has_more": False}
            else:
                listing = {"object": "list", "data": [{**model, "object": "model"}]}
            self._send(200, listing)

        def _answer(self, endpoint: Endpoint, recorded: Recorded, item: Reply | Fault) -> None:
            if isinstance(item, Reply):
                self._send(200, server._render(endpoint, recorded.body, item))
            elif item.kind == "hang":
                server._stopping.wait(item.seconds)
                self._send(200, server._render(endpoint, recorded.body, Reply(text="late")))
            elif item.kind == "truncate":
                payload = json.dumps(server._render(endpoint, recorded.body, Reply(text="cut")))
                self._send_raw(200, payload.encode()[: len(payload) // 2], len(payload), {})
                self.close_connection = True
            else:
                headers = {"retry-after": item.retry_after} if item.retry_after else {}
                self._send(item.status, _error_body(endpoint, item.status, item.message), headers)

        def _send(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None):
            payload = json.dumps(data).encode()
            self._send_raw(status, payload, len(payload), headers or {})

        def _send_raw(
            self, status: int, payload: bytes, length: int, headers: dict[str, str]
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(length))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
