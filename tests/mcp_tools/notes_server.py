"""A small MCP server (the official SDK) that the Builder's MCP tools are tested with.

Started by Autopack, in the phase's worktree, through its sandbox. Its tools: a lookup
with a fixed answer, a note writer (writes where it is told: to test the path policy
and the sandbox), a tool that never answers (to test the timeout) and one that no test
phase allows.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes", log_level="ERROR")


@server.tool()
def lookup(topic: str) -> str:
    """The team's note on a topic."""
    return f"note on {topic}: greetings end with an exclamation mark"


@server.tool()
def write_note(path: str, text: str) -> str:
    """Write a note to a file."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        return f"could not write {path}: {exc.strerror}"
    return f"wrote {path}"


@server.tool()
def hang() -> str:
    """Never answers."""
    time.sleep(3600)
    return "unreachable"


@server.tool()
def fetch(url: str) -> str:
    """GET a URL."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return f"fetched: {response.read().decode()}"
    except OSError as exc:
        return f"could not fetch {url}: {exc}"


@server.tool()
def environment() -> str:
    """The server's environment."""
    return json.dumps(dict(os.environ), sort_keys=True)


@server.tool()
def delete_everything() -> str:
    """No phase allows this."""
    return "deleted"


if __name__ == "__main__":
    if "--http" in sys.argv:  # python notes_server.py --http PORT: Streamable HTTP
        port = int(sys.argv[sys.argv.index("--http") + 1])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()
