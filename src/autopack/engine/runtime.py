"""What an executor needs to carry out steps for one repository: paths, store, sandbox.

The runtime is the only place that turns settings into live parts, so the local
executor and the Temporal activities build steps from the same pieces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from autopack.config import STATE_DIR, ConfigError, Settings, load_settings
from autopack.store import SqlStore, Store
from autopack.workspace.runner import Sandbox, sandbox_for


@dataclass
class Runtime:
    """Live parts for one repository; share one per process."""

    repo: Path
    settings: Settings
    store: Store
    sandbox: Sandbox
    model_override: str | None = None
    replay_from: Path | None = None
    """A cassette: every model call is served from it by request hash (``autopack replay``)."""
    state_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.state_dir = self.repo / STATE_DIR

    @classmethod
    def open(
        cls,
        repo: Path,
        *,
        settings: Settings | None = None,
        model_override: str | None = None,
        db_url: str | None = None,
    ) -> Runtime:
        repo = repo.resolve()
        settings = settings or load_settings(repo)
        url = db_url or settings.database_url(repo)
        try:
            store = SqlStore(url, runs_dir=repo / STATE_DIR / "runs")
        except ArgumentError as exc:  # not a URL (its text may hold a password), or no driver
            said = str(exc) if isinstance(exc, NoSuchModuleError) else "not a database URL"
            raise ConfigError(f"{settings.source}: db_url: {said}") from exc
        sandbox = sandbox_for(settings)
        return cls(repo, settings, store, sandbox, model_override)

    def run_dir(self, run_id: str) -> Path:
        return self.state_dir / "runs" / run_id

    def attempt_dir(self, run_id: str, phase_id: str, attempt: int) -> Path:
        path = self.run_dir(run_id) / "phases" / phase_id / str(attempt)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def worktree(self, run_id: str, phase_id: str) -> Path:
        return self.state_dir / "worktrees" / run_id / phase_id
