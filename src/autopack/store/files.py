"""A run's files (per-attempt evidence, proofs, summary) kept in the store.

Steps hand each other files: the build step writes the edits and diff the apply step
reads, verify writes the evidence the gate reads, the gate writes the proof the commit
attaches. On one machine they share ``.autopack/runs/<run_id>/``; when each step may
run on a different worker, that folder is copied through the store: a worker pulls
the run's files before a step and pushes what the step wrote after it.

The event-log mirror and the cassette are left out: the first is rebuilt from the
database, the second is appended by every worker for its own calls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Column, Engine, LargeBinary, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

LOCAL_ONLY = frozenset({"events.jsonl", "cassette.jsonl"})
"""Files of a run folder that stay on the machine that wrote them."""

metadata = MetaData()
run_files = Table(
    "run_files",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("path", String(400), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
)


class RunFiles:
    """Copies one run folder to and from the store; remembers what it already has."""

    def __init__(self, engine: Engine, run_id: str, run_dir: Path) -> None:
        self.engine = engine
        self.run_id = run_id
        self.run_dir = run_dir
        self._known: dict[str, str] = {}

    def pull(self) -> int:
        """Write the stored files that differ from the local ones; returns how many."""
        with self.engine.connect() as conn:
            shas = conn.execute(
                select(run_files.c.path, run_files.c.sha256).where(
                    run_files.c.run_id == self.run_id
                )
            ).all()
            wanted = [path for path, sha in shas if self._local_sha(path) != sha]
            for path in wanted:
                content = conn.execute(
                    select(run_files.c.content).where(
                        run_files.c.run_id == self.run_id, run_files.c.path == path
                    )
                ).scalar_one()
                target = self.run_dir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        self._known.update(dict(shas))
        return len(wanted)

    def push(self) -> int:
        """Store the local files that are new or changed since the last pull or push, in
        one transaction (a step writes several; each transaction is a round trip)."""
        changed: list[tuple[str, str, bytes]] = []
        for path in sorted(self.run_dir.rglob("*")):
            name = path.relative_to(self.run_dir).as_posix()
            if not path.is_file() or name in LOCAL_ONLY:
                continue
            content = path.read_bytes()
            sha = hashlib.sha256(content).hexdigest()
            if self._known.get(name) != sha:
                changed.append((name, sha, content))
        if changed:
            self._store(changed)
            self._known.update((name, sha) for name, sha, _ in changed)
        return len(changed)

    def _store(self, changed: list[tuple[str, str, bytes]]) -> None:
        for _ in range(2):  # a concurrent first insert of the same path: update it then
            try:
                with self.engine.begin() as conn:
                    for name, sha, content in changed:
                        key = (run_files.c.run_id == self.run_id) & (run_files.c.path == name)
                        values = {"sha256": sha, "content": content}
                        if conn.execute(update(run_files).where(key).values(values)).rowcount:
                            continue
                        conn.execute(
                            insert(run_files).values(run_id=self.run_id, path=name, **values)
                        )
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not store the files of run {self.run_id}")

    def _local_sha(self, name: str) -> str | None:
        path = self.run_dir / name
        if not path.is_file():
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()
