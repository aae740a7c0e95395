"""`autopack doctor`: every problem a run would hit is printed with its fix, and the exit
code is 0 only when a run can start. No real host is contacted: providers point at a
loopback server started here or at a closed loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from ci_helpers import commit_all, make_project
from typer.testing import CliRunner

from autopack.ci.cli import mount
from autopack.ci.doctor import check_proof_key

GOOD_KEY = "sk-test-good-0123456789"
app = typer.Typer()
mount(app)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Models(BaseHTTPRequestHandler):
    """An OpenAI-compatible ``GET /v1/models`` that accepts only :data:`GOOD_KEY`."""

    def do_GET(self) -> None:
        ok = self.path == "/v1/models" and self.headers["Authorization"] == f"Bearer {GOOD_KEY}"
        body = json.dumps({"data": []} if ok else {"error": "invalid key"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def models_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without bubblewrap: PATH has git, sh and python, nothing else."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in ("git", "sh"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))


def configure(repo: Path, text: str) -> Path:
    (repo / "autopack.toml").write_text(text)
    commit_all(repo, "configure")
    return repo


def doctor(repo: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", "--repo", str(repo), *extra])
    return result.exit_code, result.output


@pytest.mark.usefixtures("no_bwrap")
def test_missing_key_sandbox_and_database_are_each_reported_with_a_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = configure(
        make_project(tmp_path / "p"),
        'test_command = "python -c \\"import app\\""\nsandbox = "bwrap"\n'
        '[models]\nbuilder = "anthropic:claude-sonnet-4-5"\n'
        'auditor = "anthropic:claude-haiku-4-5"\n',
    )
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    port = closed_port()
    monkeypatch.setenv("AUTOPACK_DB_URL", f"postgresql+psycopg://ci:hunter2@127.0.0.1:{port}/ap")

    code, out = doctor(repo)

    assert code == 3
    lines = out.splitlines()

    def fix_after(prefix: str) -> str:
        index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        assert lines[index + 1].startswith("     fix: ")
        return lines[index + 1]

    assert "install bubblewrap" in fix_after("FAIL sandbox: bubblewrap is not installed")
    assert "export ANTHROPIC_API_KEY=" in fix_after(
        "FAIL provider anthropic: ANTHROPIC_API_KEY is not set"
    )
    database = f"FAIL database: cannot connect to postgresql+psycopg://ci:***@127.0.0.1:{port}/ap"
    assert "start the database server" in fix_after(database)
    assert 'ok   tests: `python -c "import app"` passes on a clean checkout' in out
    assert "3 problem(s): a run cannot start" in out
    assert "hunter2" not in out


@pytest.mark.usefixtures("no_bwrap")
def test_a_machine_a_run_can_start_on_exits_zero_and_still_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_server: str
) -> None:
    repo = configure(
        make_project(tmp_path / "p"),
        'test_command = "python -c pass"\n'
        '[models]\nbuilder = "local:coder"\nauditor = "local:coder"\n'
        f'[models.providers.local]\nbase_url = "{models_server}"\napi_key_env = "LOCAL_KEY"\n'
        '[prices."local:coder"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n',
    )
    monkeypatch.setenv("LOCAL_KEY", GOOD_KEY)
    monkeypatch.delenv("AUTOPACK_DB_URL", raising=False)

    code, out = doctor(repo)

    assert code == 0, out
    assert (
        f"ok   provider local: {models_server}/models answered with the key from LOCAL_KEY" in out
    )
    assert "warn sandbox: bubblewrap is not installed: commands would run without a sandbox" in out
    assert "ok   database: sqlite:///" in out
    assert out.rstrip().endswith("a run can start")
    assert GOOD_KEY not in out


def test_a_refused_key_and_an_unreachable_provider_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_server: str
) -> None:
    port = closed_port()
    repo = configure(
        make_project(tmp_path / "p"),
        'test_command = "python -c pass"\nsandbox = "subprocess"\n'
        '[models]\nbuilder = "local:coder"\nauditor = "gone:reviewer"\n'
        f'[models.providers.local]\nbase_url = "{models_server}"\napi_key_env = "LOCAL_KEY"\n'
        f'[models.providers.gone]\nbase_url = "http://127.0.0.1:{port}/v1"\n'
        'api_key_env = "GONE_KEY"\n',
    )
    monkeypatch.setenv("LOCAL_KEY", "sk-wrong-key")
    monkeypatch.setenv("GONE_KEY", "sk-gone-key")

    code, out = doctor(repo)

    assert code == 3
    assert (
        f"FAIL provider local: {models_server}/models refused the key in LOCAL_KEY (HTTP 401)"
        in out
    )
    assert "fix: put a valid key in LOCAL_KEY" in out
    assert f"FAIL provider gone: cannot reach http://127.0.0.1:{port}/v1/models" in out
    assert "fix: check the network, or models.providers.gone.base_url" in out
    assert "sk-wrong-key" not in out and "sk-gone-key" not in out


def test_tests_that_need_uncommitted_files_and_an_unreachable_temporal_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = configure(
        make_project(tmp_path / "p"),
        'test_command = "sh run-tests.sh"\nsandbox = "subprocess"\n'
        '[models]\nbuilder = "scripted:script.yaml"\nauditor = "scripted:script.yaml"\n',
    )
    (repo / "run-tests.sh").write_text("exit 0\n")  # present here, not in a clean checkout
    monkeypatch.chdir(repo)
    (repo / "script.yaml").write_text("version: 1\nreplies: {}\n")
    port = closed_port()

    code, out = doctor(repo, "--temporal", f"127.0.0.1:{port}")

    assert code == 3
    assert "FAIL tests: `sh run-tests.sh` gives no usable baseline on the base tree" in out
    assert "it fails (exit 2) and has no per-test results" in out
    assert "a clean checkout has only committed files" in out
    assert f"FAIL temporal: cannot connect to 127.0.0.1:{port}" in out
    assert "fix: start Temporal" in out
    assert "ok   provider scripted: scripts script.yaml" in out


def test_an_invalid_config_is_bad_input(tmp_path: Path) -> None:
    repo = configure(make_project(tmp_path / "p"), 'sandbx = "auto"\n')
    code, out = doctor(repo)
    assert code == 2
    assert "sandbx" in out


def test_a_folder_that_is_not_a_repository(tmp_path: Path) -> None:
    code, out = doctor(tmp_path)
    assert code == 3
    assert f"FAIL git: {tmp_path} is not a git repository with a commit" in out
    assert os.listdir(tmp_path) == []


def test_a_run_s_model_option_replaces_the_configured_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = configure(make_project(tmp_path / "p"), 'test_command = "python -c pass"\n')
    monkeypatch.chdir(repo)
    monkeypatch.delenv("AUTOPACK_DB_URL", raising=False)
    code, out = doctor(repo)
    assert code == 3 and "FAIL model builder: no model for the builder" in out
    assert "--model provider:name" in out

    code, out = doctor(repo, "--model", "scripted:missing.yaml")
    assert code == 3 and "FAIL provider scripted: cannot read script missing.yaml" in out
    assert "fix: correct --model" in out and "model builder" not in out

    (repo / "script.yaml").write_text("version: 1\nreplies: {}\n")
    code, out = doctor(repo, "--model", "scripted:script.yaml")
    assert code == 0, out


def test_a_proof_key_inside_the_repository_fails_the_doctor(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "project")
    env = {**os.environ, "XDG_CONFIG_HOME": str(repo / "config")}
    env.pop("AUTOPACK_PROOF_KEY", None)
    found = check_proof_key(repo, env)
    assert found.level == "fail" and "inside the repository" in found.detail
    env["AUTOPACK_PROOF_KEY"] = "a-ci-secret"
    found = check_proof_key(repo, env)
    assert found.level == "ok" and "$AUTOPACK_PROOF_KEY" in found.detail
    assert "a-ci-secret" not in found.detail
