"""A PostgreSQL cluster for the session (see ``pgcluster``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgcluster import Cluster, cluster, pg_bin


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    if pg_bin() is None:
        pytest.skip("PostgreSQL binaries are not installed")
    with cluster() as running:
        yield running
