"""CLI pieces of the API: ``autopack keys create|list|revoke`` and ``autopack serve``.

Mounted by the main CLI (``app.add_typer(keys_app, name="keys")`` and a ``serve``
command that calls :func:`serve`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from autopack.api.context import ApiConfig, ConfigProblem
from autopack.config import ConfigError, load_settings
from autopack.engine.worker import DEFAULT_TASK_QUEUE
from autopack.store.keys import SCOPES, KeyNotFound, create_key, list_keys, revoke_key

# Literal output (no markup, no emoji codes): messages carry user data.
console = Console(markup=False, emoji=False)
err = Console(stderr=True, markup=False, emoji=False)

keys_app = typer.Typer(help="API keys for the HTTP API and the dashboard.", no_args_is_help=True)
RepoOption = Annotated[Path, typer.Option("--repo", "-C", help="The target git repository.")]


def _error(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message))


def _engine(repo: Path) -> Engine:
    from autopack.engine.runtime import Runtime

    return Runtime.open(repo).store.engine


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    scope: Annotated[str, typer.Option(help="read, operate or admin.")] = "read",
    repo: RepoOption = Path("."),
) -> None:
    """Create a key; its secret is printed once and only its hash is stored."""
    if scope not in SCOPES:
        _error(f"scope must be one of {', '.join(SCOPES)}")
        raise typer.Exit(2)
    key, secret = create_key(_engine(repo), name, scope)
    console.print(f"created {key.id} ({key.scope}) for {key.name}")
    console.print("secret (shown only now; store it safely):")
    print(secret)


@keys_app.command("list")
def keys_list(repo: RepoOption = Path(".")) -> None:
    """Every key with its scope and whether it is revoked (never the secret)."""
    table = Table("id", "name", "scope", "created", "revoked")
    for key in list_keys(_engine(repo)):
        table.add_row(key.id, key.name, key.scope, key.created_at, key.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `keys list` shows it.")],
    repo: RepoOption = Path("."),
) -> None:
    """Revoke a key: every later request with it gets 401."""
    try:
        key = revoke_key(_engine(repo), key_id)
    except KeyNotFound as exc:
        _error(f"no key {key_id!r} (see `autopack keys list`)")
        raise typer.Exit(2) from exc
    console.print(f"revoked {key.id} ({key.name}) at {key.revoked_at}")


def serve(
    repo: Path,
    host: str,
    port: int,
    no_auth: bool,
    engine: str = "local",
    *,
    temporal: str | None = None,
    db: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    repo_url: str | None = None,
) -> None:
    """Serve the API and dashboard, with the engine's host for queued runs, until interrupted."""
    import uvicorn

    from autopack.api import create_app

    try:
        load_settings(repo.resolve())  # a bad autopack.toml: exit 2 now, not at startup
        config = ApiConfig(
            repo=repo.resolve(),
            host=host,
            no_auth=no_auth,
            engine=engine,
            temporal=temporal,
            db_url=db,
            task_queue=task_queue,
            repo_url=repo_url,
        )
    except (ConfigProblem, ConfigError) as exc:
        _error(str(exc))
        raise typer.Exit(2) from exc
    if engine == "temporal" and temporal:
        from autopack.engine.temporal_host import cluster_problem

        problem = cluster_problem(temporal)
        if problem:
            _error(str(problem))
            raise typer.Exit(1)
    listener = _listen(host, port)
    auth = "no auth (loopback only)" if no_auth else "API keys required"
    where = f"runs on Temporal {temporal}, queue {task_queue}" if engine == "temporal" else engine
    console.print(f"Autopack dashboard: http://{host}:{port}/  ({auth}; {where})")
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """Bind the port before saying where the dashboard is: a busy port is one clear line
    (exit 3), never a URL that answers with someone else's server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        _error(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")
        raise typer.Exit(3) from exc
    listener.listen(2048)
    return listener
