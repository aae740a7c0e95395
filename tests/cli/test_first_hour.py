"""What a new user meets first: the version, help, bad arguments, a mistyped key and
messages that carry bracketed text. Each runs the installed ``autopack`` command, as a
person types it, and checks what they would read: one clear line, the right exit code,
never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from autopack.cli.output import labelled

AUTOPACK = shutil.which("autopack") or "autopack"


def autopack(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTOPACK, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("A = 1\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    assert autopack("init", cwd=root).returncode == 0
    return root


def test_version_prints_the_installed_version() -> None:
    done = autopack("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("autopack ")
    assert done.stdout.split()[1][0].isdigit()


def test_plan_help_shows_how_to_draft_a_plan_from_a_goal() -> None:
    done = autopack("plan", "--help")
    assert done.returncode == 0
    assert 'autopack plan "GOAL"' in done.stdout
    assert "autopack plan check PLAN" in done.stdout


def test_demo_into_a_folder_that_is_not_empty_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    done = autopack("demo", "--dir", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0
    assert "not an empty folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_doctor_with_a_non_ascii_key_names_the_problem(repo: Path) -> None:
    done = autopack(
        "doctor", "--model", "anthropic:claude-sonnet-4-6", cwd=repo, ANTHROPIC_API_KEY="sk-ünï"
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "UnicodeEncodeError" not in output
    assert "not printable ASCII) at position 4" in output
    assert "sk-ünï" not in output
    assert done.returncode == 3


def test_errors_keep_bracketed_text_and_colons(repo: Path) -> None:
    """The no-price message tells the user to add a TOML table: it must print whole."""
    plan = repo.parent / "plan.yaml"
    plan.write_text(PLAN)
    done = autopack(
        "run", str(plan), "--model", "anthropic:no-such-model", cwd=repo, ANTHROPIC_API_KEY="k"
    )
    assert done.returncode == 3
    assert '[prices."anthropic:no-such-model"]' in done.stderr
    assert "Traceback" not in done.stderr


def test_labelled_messages_print_markup_and_emoji_codes_literally() -> None:
    from rich.console import Console

    message = r'add [prices."x"] :smile: [bold]not bold[/bold] re: ^\[a-z]+$'
    capture = Console(record=True, width=200, markup=False, emoji=False)
    capture.print(labelled("error:", message))
    assert capture.export_text().strip() == f"error: {message}"


def test_runs_and_status_fit_80_columns_with_ids_and_costs_whole(repo: Path) -> None:
    plan = repo.parent / "plan.yaml"
    plan.write_text(
        "run: {goal: g, max_attempts: 1}\n"
        "tiers:\n"
        "  - id: a-tier-with-a-long-name\n"
        "    phases:\n"
        "      - id: a-phase-with-a-rather-long-name\n"
        "        goal: change a\n"
        "        scope: {paths: [a.py]}\n"
        '        tests: {command: "true"}\n'
    )
    script = repo.parent / "script.yaml"
    script.write_text(
        "version: 1\nreplies:\n  '*':\n    builder:\n      - |\n        a.py\n"
        "        <<<<<<< SEARCH\n        A = 1\n        =======\n        A = 2\n"
        "        >>>>>>> REPLACE\n    auditor:\n      - {verdict: approve, summary: ok}\n"
    )
    ran = autopack("run", str(plan), "--model", f"scripted:{script}", cwd=repo)
    assert ran.returncode == 0, ran.stderr
    listed = autopack("runs", cwd=repo)
    assert listed.returncode == 0
    run_id = next(word for word in listed.stdout.split() if word.startswith("run-"))
    assert len(run_id) >= len("run-20261204-174633-0436")
    assert "$0.0000" in listed.stdout
    assert "…" not in listed.stdout
    assert max(map(len, listed.stdout.splitlines())) <= 80
    status = autopack("status", run_id, cwd=repo)
    assert "a-phase-with-a-rather-long-name" in status.stdout
    assert "…" not in status.stdout
    assert max(map(len, status.stdout.splitlines())) <= 80


PLAN = (
    "run: {goal: g, max_attempts: 1}\n"
    "tiers:\n"
    "  - id: t\n"
    "    phases:\n"
    "      - id: p\n"
    "        goal: change a\n"
    "        scope: {paths: [a.py]}\n"
    '        tests: {command: "true"}\n'
)


def _local_provider(repo: Path, url: str) -> None:
    with (repo / "autopack.toml").open("a") as config:
        config.write(
            f'\n[models.providers.local]\nbase_url = "{url}"\napi_key_env = "LOCAL_KEY"\n'
            '[prices."local:coder"]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n'
        )


def test_an_unreachable_provider_stops_the_run_before_it_starts(repo: Path) -> None:
    """Preflight: exit 3 with the fix, no run stored, no model call retried for minutes."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _local_provider(repo, f"http://127.0.0.1:{port}/v1")
    (repo.parent / "plan.yaml").write_text(PLAN)
    done = autopack(
        "run", str(repo.parent / "plan.yaml"), "--model", "local:coder", cwd=repo, LOCAL_KEY="k"
    )
    assert done.returncode == 3
    assert "a run cannot start" in done.stderr
    assert f"cannot reach http://127.0.0.1:{port}/v1/models" in done.stderr
    assert "fix: check the network, or models.providers.local.base_url" in done.stderr
    assert "Traceback" not in done.stderr
    assert "run-" not in autopack("runs", cwd=repo).stdout


def test_a_refused_key_stops_the_run_before_any_model_call(repo: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
    from fakeserver import FakeServer

    with FakeServer(api_key="the-right-key") as server:
        _local_provider(repo, server.openai_url)
        (repo.parent / "plan.yaml").write_text(PLAN)
        done = autopack(
            "run",
            str(repo.parent / "plan.yaml"),
            "--model",
            "local:coder",
            cwd=repo,
            LOCAL_KEY="a-wrong-key",
        )
        assert done.returncode == 3
        assert "refused the key in LOCAL_KEY (HTTP 401)" in done.stderr
        assert "a-wrong-key" not in done.stderr + done.stdout
        assert server.requests == []  # no model call was made, so none was retried


def test_serve_on_a_busy_port_says_so_before_printing_a_url(repo: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = autopack("serve", "--port", str(port), "--no-auth", cwd=repo)
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "http://" not in done.stdout
    assert "Traceback" not in done.stderr
