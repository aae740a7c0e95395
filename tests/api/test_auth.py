"""Keys decide who may do what: no key 401, read key cannot act 403, revoked key 401."""

from __future__ import annotations

import re

import pytest
from api_helpers import plan
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from autopack.api import ApiConfig, create_app
from autopack.api.cli import keys_app
from autopack.api.context import ConfigProblem
from autopack.store.keys import list_keys, revoke_key

OPERATE_ROUTES = [
    ("POST", "/runs/start"),
    ("POST", "/runs/r1/cancel"),
    ("POST", "/runs/r1/resume"),
    ("POST", "/runs/r1/phases/greet/approve"),
    ("POST", "/runs/r1/phases/greet/reject"),
]


def schema_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for path, operations in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        routes += [(method.upper(), concrete) for method in operations]
    return routes


def test_every_route_but_health_refuses_without_a_key(app: FastAPI, client: TestClient) -> None:
    routes = schema_routes(app)
    assert len(routes) >= 15
    for method, path in routes:
        response = client.request(method, path)
        if path == "/health" or (method, path) == ("POST", "/auth/signout"):
            assert response.status_code in (200, 204), path
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_read_key_reads_but_cannot_start_cancel_or_approve(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    assert client.get("/runs", headers=keys["read"]).status_code == 200
    assert client.get("/metrics", headers=keys["read"]).status_code == 200
    for method, path in OPERATE_ROUTES:
        response = client.request(method, path, headers=keys["read"], json=plan("r1"))
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    assert client.get("/runs").json()["error"]["code"] == "unauthorized"
    assert client.get("/runs", headers=keys["operate"]).json()["total"] == 0


def test_an_operate_key_starts_a_run(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    response = client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    assert response.status_code == 201
    assert client.get("/runs/r1", headers=keys["read"]).json()["run"]["state"] == "QUEUED"


def test_a_revoked_key_is_refused(
    app: FastAPI, client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    engine = app.state.ctx.rt.store.engine
    assert client.get("/runs", headers=keys["admin"]).status_code == 200
    admin = next(k for k in list_keys(engine) if k.scope == "admin")
    revoke_key(engine, admin.id)
    response = client.get("/runs", headers=keys["admin"])
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_keys_cli_prints_the_secret_once_and_stores_only_its_hash(
    app: FastAPI, client: TestClient
) -> None:
    repo = str(app.state.ctx.config.repo)
    runner = CliRunner()
    created = runner.invoke(keys_app, ["create", "ci-bot", "--scope", "operate", "-C", repo])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("apk_")
    headers = {"X-API-Key": secret}
    assert client.get("/auth/whoami", headers=headers).json()["scope"] == "operate"
    listed = runner.invoke(keys_app, ["list", "-C", repo])
    assert "ci-bot" in listed.output and secret not in listed.output
    db = (app.state.ctx.rt.state_dir / "autopack.db").read_bytes()
    assert secret.encode() not in db
    key_id = next(k.id for k in list_keys(app.state.ctx.rt.store.engine) if k.name == "ci-bot")
    assert runner.invoke(keys_app, ["revoke", key_id, "-C", repo]).exit_code == 0
    assert client.get("/auth/whoami", headers=headers).status_code == 401
    assert runner.invoke(keys_app, ["revoke", "key-nope", "-C", repo]).exit_code == 2


def test_requests_beyond_the_rate_limit_get_429_with_retry_after(repo: object) -> None:
    app = create_app(ApiConfig(repo=repo, executor=False, rate_per_s=0.5, rate_burst=3))  # type: ignore[arg-type]
    with TestClient(app) as client:
        from autopack.store.keys import create_key

        _, secret = create_key(app.state.ctx.rt.store.engine, "eager", "read")
        headers = {"Authorization": f"Bearer {secret}"}
        codes = [client.get("/runs", headers=headers).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = client.get("/runs", headers=headers)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        _, other = create_key(app.state.ctx.rt.store.engine, "other", "read")
        assert client.get("/runs", headers={"X-API-Key": other}).status_code == 200


def test_no_auth_mode_is_refused_unless_bound_to_loopback(repo: object) -> None:
    with pytest.raises(ConfigProblem, match="loopback"):
        ApiConfig(repo=repo, host="0.0.0.0", no_auth=True)  # type: ignore[arg-type]
    app = create_app(ApiConfig(repo=repo, host="127.0.0.1", no_auth=True, executor=False))  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/auth/whoami").json()["scope"] == "admin"


def test_the_dashboard_cookie_authenticates_event_streams(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    assert client.post("/auth/session").status_code == 401
    signed = client.post("/auth/session", headers=keys["read"])
    assert signed.status_code == 204
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert client.get("/auth/whoami").json()["name"] == "read-tester"
    client.post("/auth/signout")
    client.cookies.clear()
    assert client.get("/auth/whoami").status_code == 401
