"""Whether a plan's MCP tools name configured servers: checked wherever a run starts,
without loading the MCP SDK (importing it costs about half a second)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autopack.config import McpServer, Settings
from autopack.plan import Plan


def unknown_servers(allowed: Sequence[str], servers: Mapping[str, McpServer]) -> list[str]:
    """The ``SERVER.TOOL`` names whose server is not configured."""
    return [name for name in allowed if name.split(".", 1)[0] not in servers]


def plan_problem(plan: Plan, settings: Settings) -> str:
    """Why ``plan`` cannot run with these settings' MCP servers (a phase allows a tool of
    a server ``[mcp.servers]`` does not name), or ``""``. Checked wherever a run starts."""
    for _, phase in plan.phases():
        missing = unknown_servers(phase.mcp_tools, settings.mcp.servers)
        if missing:
            servers = ", ".join(settings.mcp.servers) or "none"
            return (
                f"phase {phase.id!r}: mcp_tools {', '.join(missing)}: no such server in"
                f" {settings.source} [mcp.servers] (configured: {servers})"
            )
    return ""
