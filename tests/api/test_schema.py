"""Schemathesis against the app's own OpenAPI schema, with a valid key: no 5xx, and every
status, content type and body the app sends is the one its schema documents.

The two event streams never end by design, so they are left to test_sse.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_helpers import make_repo
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from autopack.api import ApiConfig, create_app
from autopack.store.keys import create_key


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    repo = make_repo(tmp_path_factory.mktemp("schema") / "repo")
    app = create_app(ApiConfig(repo=repo, executor=False, rate_per_s=10_000, rate_burst=10_000))
    _, secret = create_key(app.state.ctx.rt.store.engine, "schemathesis", "admin")
    yield app, secret


@pytest.fixture(scope="module")
def api_schema(served: tuple[object, str]) -> schemathesis.BaseSchema:
    app, _ = served
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r".*/events$")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_app_keeps_to_its_schema(
    case: schemathesis.Case, served: tuple[object, str], tmp_path: Path
) -> None:
    _, secret = served
    # A schema-valid body is not always a runnable plan (cycles, overlapping scopes):
    # /runs/start may answer a documented 422 to data the schema alone accepts.
    excluded = [positive_data_acceptance] if case.operation.path == "/runs/start" else []
    if _key_dropped(case):
        # The key is put back below, which can make a negative case valid (its other
        # "violation" then being, say, an unknown query parameter, which HTTP ignores).
        excluded.append(negative_data_rejection)
    # call_and_validate raises on any failed check (no 5xx, every response documented).
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {secret}"}, excluded_checks=excluded
    )
    assert response.status_code < 500


def _key_dropped(case: schemathesis.Case) -> bool:
    return "authorization" not in {name.lower() for name in case.headers or {}}
