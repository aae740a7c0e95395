"""What the API needs at run time: its configuration and the repository's live parts.

The runtime is opened on first use, not when the app object is built, so importing
``autopack.main`` never creates a database as a side effect.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from autopack.api.views import RunBodies
from autopack.engine.runtime import Runtime
from autopack.engine.worker import DEFAULT_TASK_QUEUE

LOOPBACK_NAMES = frozenset({"localhost"})
ENGINES = ("local", "temporal")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigProblem(ValueError):
    """An API configuration that would be unsafe or cannot work."""


@dataclass(frozen=True)
class ApiConfig:
    """How the app serves one repository."""

    repo: Path = field(default_factory=lambda: Path(os.environ.get("AUTOPACK_REPO", ".")))
    """The repository whose runs are served (default: ``$AUTOPACK_REPO`` or the cwd)."""
    host: str = "127.0.0.1"
    """The address the server listens on; no-auth mode is refused unless it is loopback."""
    no_auth: bool = False
    """Serve without keys; only for a loopback-bound server, and only when asked for."""
    executor: bool = True
    """Run a host that picks up queued runs (the engine's)."""
    engine: str = "local"
    """``local``: runs execute in threads of this process; ``temporal``: as workflows."""
    temporal: str | None = None
    """The Temporal frontend address (host:port) the ``temporal`` engine starts runs on."""
    task_queue: str = DEFAULT_TASK_QUEUE
    """The task queue the workers poll (``temporal`` engine)."""
    repo_url: str | None = None
    """The git URL every worker can reach, named by runs started here (``temporal``
    engine; default: the repository's path, which serves workers of this machine)."""
    model_override: str | None = None
    """Model for every role of runs this process executes (e.g. ``scripted:PATH``)."""
    db_url: str | None = None
    """Database URL instead of the repository's configured one."""
    rate_per_s: float = 50.0
    """Requests per second each key may make on average."""
    rate_burst: int = 200
    """Requests a key may make at once before the average applies."""

    def __post_init__(self) -> None:
        if self.no_auth and not is_loopback(self.host):
            raise ConfigProblem(
                f"no-auth mode serves only on loopback; {self.host!r} is reachable from outside"
            )
        if self.engine not in ENGINES:
            raise ConfigProblem(f"engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.engine == "temporal" and not (self.temporal and self.db_url):
            raise ConfigProblem(
                "the temporal engine needs --temporal ADDRESS and --db URL (the store the"
                " workers write to)"
            )
        if self.rate_per_s <= 0 or self.rate_burst < 1:
            raise ConfigProblem("rate limits must be positive")


class ApiContext:
    """The configuration plus the runtime, opened once and shared by every request."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.run_bodies = RunBodies()
        self._rt: Runtime | None = None
        self._lock = threading.Lock()

    @property
    def rt(self) -> Runtime:
        if self._rt is None:
            with self._lock:
                if self._rt is None:
                    self._rt = Runtime.open(
                        self.config.repo,
                        model_override=self.config.model_override,
                        db_url=self.config.db_url,
                    )
        return self._rt

    def close(self) -> None:
        if self._rt is not None:
            self._rt.store.close()
