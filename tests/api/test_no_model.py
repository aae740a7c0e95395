"""A run submitted over the HTTP API to a server that executes runs, with no model for
a role anywhere (no ``--model`` for the server, none in the plan's phases, no
``[models]`` in autopack.toml), is refused at submission with a 422 that says what to
configure; nothing is stored. With a model configured the same plan is accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from api_helpers import LiveServer, make_repo, plan

from autopack.api import ApiConfig, create_app
from autopack.store.keys import create_key

SCRIPT = """\
version: 1
replies:
  greet:
    builder:
      - |
        hello.py
        <<<<<<< SEARCH
        =======
        print("hello")
        >>>>>>> REPLACE
    auditor:
      - {verdict: approve, summary: ok, issues: []}
"""


def serve(repo: Path) -> tuple[LiveServer, dict[str, str]]:
    app = create_app(ApiConfig(repo=repo))
    _, secret = create_key(app.state.ctx.rt.store.engine, "operator", "operate")
    return LiveServer(app), {"Authorization": f"Bearer {secret}"}


def test_a_run_with_no_model_is_refused_at_submission(tmp_path: Path) -> None:
    live, auth = serve(make_repo(tmp_path / "repo"))
    with live as server:
        response = httpx.post(f"{server.url}/runs/start", headers=auth, json=plan("r1"), timeout=30)
        listed = httpx.get(f"{server.url}/runs", headers=auth, timeout=30).json()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "no_model"
    assert "models.builder" in error["message"] and "autopack.toml" in error["message"]
    assert "models.auditor" in error["message"]
    assert listed["runs"] == []


def test_a_run_with_models_in_autopack_toml_is_accepted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "script.yaml").write_text(SCRIPT)
    spec = f"scripted:{tmp_path / 'script.yaml'}"
    (repo / "autopack.toml").write_text(f'[models]\nbuilder = "{spec}"\nauditor = "{spec}"\n')
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "config"], cwd=repo, check=True)
    live, auth = serve(repo)
    with live as server:
        response = httpx.post(f"{server.url}/runs/start", headers=auth, json=plan("r2"), timeout=30)
    assert response.status_code == 201, response.text
