"""``autopack mcp``: serve Autopack to a local agent over stdio (Claude Code, Cursor, ...).

The agent starts this command and talks MCP over its stdin and stdout. The process has
the same repository and store as the CLI; runs it starts execute in it (the embedded
executor of ``autopack serve``) for as long as the agent keeps it open, and a run left
unfinished resumes with ``autopack resume``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from autopack.api.auth import Caller
from autopack.api.context import ApiConfig, ApiContext
from autopack.api.executor import EmbeddedExecutor, RunHost
from autopack.cli.output import err, labelled
from autopack.config import ConfigError, load_settings
from autopack.store.keys import SCOPES

LOCAL_AGENT = "local-agent"


def mcp_command(
    repo: Annotated[Path, typer.Option("--repo", "-C", help="The target git repository.")] = Path(
        "."
    ),
    scope: Annotated[
        str,
        typer.Option(
            help="What the agent may do: read (default), operate (start runs, approve,"
            " reject) or admin."
        ),
    ] = "read",
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model for every role of runs started here."),
    ] = None,
    executor: Annotated[
        bool,
        typer.Option(
            "--executor/--no-executor",
            help="Execute started runs in this process (--no-executor: only queue them,"
            " for an `autopack serve` to execute).",
        ),
    ] = True,
) -> None:
    """Serve Autopack over MCP on stdin/stdout, for a local agent."""
    from autopack.engine.create import RepoProblem
    from autopack.mcp.server import Access, build_server
    from autopack.workspace import git

    root = repo.resolve()
    try:
        if scope not in SCOPES:
            raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if not root.is_dir() or not git.is_repo(root):
            raise RepoProblem(f"{root} is not a git repository")
        load_settings(root)  # a bad autopack.toml: exit 2 now, not at the first tool call
    except (ConfigError, RepoProblem) as exc:
        err.print(labelled("error:", str(exc)))
        raise typer.Exit(2) from exc
    ctx = ApiContext(ApiConfig(repo=root, model_override=model, executor=executor))
    host: RunHost | None = EmbeddedExecutor(ctx.rt) if executor else None
    caller = Caller(LOCAL_AGENT, f"local agent ({scope})", scope)
    server = build_server(Access(ctx, lambda: host, lambda _: caller))
    if host is not None:
        host.start()
    try:
        anyio.run(server.run_stdio_async)
    finally:
        if host is not None:
            host.stop()
        ctx.close()
