"""A throwaway PostgreSQL cluster from the machine's binaries, for one test session.

``initdb`` runs as the ``postgres`` user (PostgreSQL refuses to run as root) in a fresh
folder under /tmp, and the server listens on a free loopback port with trust auth.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)


class Cluster:
    """A running server; :meth:`database` makes a fresh empty database and returns its URL."""

    def __init__(self, port: int) -> None:
        self.port = port

    def database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextmanager
def cluster() -> Iterator[Cluster]:
    binaries = pg_bin()
    if binaries is None or shutil.which("runuser") is None:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="autopack-pg-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    _as_postgres(
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-p {port} -h 127.0.0.1 -k {root} -F -c max_connections=300"
    _as_postgres(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "server.log"),
        "-w",
        "start",
    )
    try:
        yield Cluster(port)
    finally:
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
