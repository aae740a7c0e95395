"""``autopack worker``: one process that carries out distributed runs' steps.

A worker connects to a Temporal cluster and polls one task queue for run workflows and
their step activities. The runs name a git remote every worker can reach; the worker
keeps its own clone of each remote in a cache folder, works in local worktrees of that
clone, fetches the run branch when an attempt starts (or a step's base commit is
missing) and pushes each landed phase back (then its proof notes) with a lease
(``--force-with-lease`` on the head the phase was built on), so two workers can never
both land a phase: the second push is refused and its commit step finds the first
one's commit instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import shutil
import signal
import threading
from pathlib import Path
from typing import IO, Annotated

import typer

from autopack.workspace import git

DEFAULT_TASK_QUEUE = "autopack"


class CacheBusy(RuntimeError):
    """Another worker of this machine uses the same cache folder."""


class RepoCache:
    """Clones of run remotes, one per URL, under one folder owned by one worker process."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._owner: IO[str] | None = None

    def claim(self) -> None:
        """Hold the folder for this process: two workers sharing worktrees would collide."""
        handle = (self.root / ".worker.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise CacheBusy(f"{self.root} is used by another worker; pass --cache") from exc
        handle.write(str(os.getpid()))
        handle.flush()
        self._owner = handle

    def lock(self, url: str) -> threading.Lock:
        """Serializes this process's fetches and pushes of one remote."""
        with self._guard:
            return self._locks.setdefault(url, threading.Lock())

    def checkout(self, url: str) -> Path:
        """The local clone of ``url``, cloned on first use."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])[:40]
        path = self.root / f"{name}-{digest}"
        with self.lock(url):
            if not (path / ".git").exists():
                partial = path.with_name(path.name + ".partial")
                if partial.exists():  # a clone a killed worker left half done
                    shutil.rmtree(partial)
                git.git(self.root, "clone", "-q", url, str(partial))
                partial.rename(path)
                git.exclude_state_dir(path)
        return path

    def fetch_branch(self, url: str, repo: Path, branch: str) -> str | None:
        """Make the local ``branch`` the remote's; returns its head (``None`` if gone)."""
        with self.lock(url):
            ref = f"refs/heads/{branch}"
            git.git(repo, "fetch", "-q", "--no-tags", "origin", f"+{ref}:{ref}")
            return git.rev_parse(repo, ref)

    def ensure_commit(self, url: str, repo: Path, branch: str, sha: str) -> None:
        """Fetch ``branch`` only when ``sha`` is not in the clone yet: a fetch costs a
        round trip to the remote, a lookup none."""
        if git.rev_parse(repo, sha) is None:
            self.fetch_branch(url, repo, branch)

    def push_branch(self, url: str, repo: Path, branch: str, new: str, expected: str) -> bool:
        """Move the remote ``branch`` from ``expected`` to ``new``; ``False`` if it moved."""
        ref = f"refs/heads/{branch}"
        with self.lock(url):
            out = git.git(
                repo,
                "push",
                "--porcelain",
                f"--force-with-lease={ref}:{expected}",
                "origin",
                f"{new}:{ref}",
                check=False,
            )
        if f"{ref}\t" in out and ("[rejected]" in out or "stale info" in out):
            return False
        if not any(
            line.startswith(("*", " ", "+", "=")) and ref in line for line in out.splitlines()
        ):
            raise git.GitError(f"push of {branch} to {url} failed: {out}")
        return True

    def push_notes(self, url: str, repo: Path) -> None:
        """Share the proof notes; another worker's notes on other commits are merged in."""
        ref = git.NOTES_REF
        with self.lock(url):
            for _ in range(5):
                out = git.git(repo, "push", "--porcelain", "origin", ref, check=False)
                if "[rejected]" not in out and "error" not in out.lower():
                    return
                theirs = f"{ref}-remote"
                git.git(repo, "fetch", "-q", "origin", f"+{ref}:{theirs}")
                git.git(repo, "notes", "--ref", ref, "merge", "-q", "-s", "theirs", theirs)
        raise git.GitError(f"could not push the proof notes to {url}")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autopack" / "worker"


async def run_worker(
    address: str,
    *,
    db_url: str,
    task_queue: str = DEFAULT_TASK_QUEUE,
    max_concurrent: int = 4,
    cache: Path | None = None,
    namespace: str = "default",
    stop: asyncio.Event | None = None,
) -> None:
    """Serve workflows and activities of ``task_queue`` until ``stop`` is set (or forever)."""
    # Imported here: the Temporal driver imports this module for its repository cache.
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.client import Client
    from temporalio.worker import Worker

    from autopack.engine.temporal import RunActivities, RunWorkflow, sandbox_runner
    from autopack.store import SqlStore

    repos = RepoCache(cache or default_cache())
    repos.claim()
    store = SqlStore(db_url)
    client = await Client.connect(address, namespace=namespace)
    activities = RunActivities(store, repos, ThreadPoolExecutor(max_concurrent))
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow],
        activities=activities.all(),
        max_concurrent_activities=max_concurrent,
        workflow_runner=sandbox_runner(),
        # Eager dispatch hands a run's next step to the worker that holds its workflow
        # whenever it has a free slot, so each worker keeps "its" runs and the others
        # idle (measured: 33/26/21/20 steps over 4 workers); through the task queue
        # any free worker takes it, for a few ms more.
        disable_eager_activity_execution=True,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        await stop.wait()
    store.close()


def worker(
    temporal: Annotated[str, typer.Option(help="Temporal frontend address, host:port.")],
    db: Annotated[
        str,
        typer.Option(envvar="AUTOPACK_DB_URL", help="Store URL, e.g. postgresql+psycopg://..."),
    ],
    task_queue: Annotated[str, typer.Option(help="Task queue to poll.")] = DEFAULT_TASK_QUEUE,
    max_concurrent: Annotated[int, typer.Option(min=1, help="Steps this worker runs at once.")] = 4,
    cache: Annotated[
        Path | None, typer.Option(help="Folder for repository clones (one per worker).")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Temporal namespace.")] = "default",
) -> None:
    """Carry out distributed runs' steps from a Temporal task queue until stopped."""
    try:
        asyncio.run(
            run_worker(
                temporal,
                db_url=db,
                task_queue=task_queue,
                max_concurrent=max_concurrent,
                cache=cache,
                namespace=namespace,
            )
        )
    except CacheBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except RuntimeError as exc:  # the cluster cannot be reached
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
