"""Ctrl-C during a provider's retries: ``autopack run`` runs as a subprocess against a
loopback server that speaks OpenAI's API and answers every call 503 with a
``Retry-After``. The live view shows each retry (attempt, backoff, reason); a SIGINT
sent once the first retry is shown ends the process, and the run is recorded
CANCELLED with why, not left RUNNING."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from fakeserver import FakeServer, Fault, Reply
from test_run_ends import KEY, PLAN, make_repo, openai_config

from autopack.engine.runtime import Runtime
from autopack.states import RunState

AUTOPACK = shutil.which("autopack") or "autopack"
SHOWN_WITHIN_S = 120
EXIT_WITHIN_S = 20


def test_ctrl_c_during_retries_ends_the_run_and_the_retries_are_shown(tmp_path: Path) -> None:
    with FakeServer(api_key=KEY) as server:
        server.default["openai"] = Fault(503, retry_after="30", message="the engine is overloaded")
        repo = make_repo(tmp_path, openai_config(server))
        plan = tmp_path / "plan.yaml"
        plan.write_text(PLAN % "")
        env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}
        proc = subprocess.Popen(
            [AUTOPACK, "run", str(plan), "-C", str(repo), "--model", "openai:gpt-4.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: list[str] = []
        retry_shown = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "retry 1/" in line:
                    retry_shown.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            shown = retry_shown.wait(SHOWN_WITHIN_S)
            output = "".join(lines)
            assert shown, f"no retry was shown:\n{output}"
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=EXIT_WITHIN_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        calls = len(server.requests)
    output = "".join(lines)
    assert code == 130, output
    assert "Traceback" not in output
    (retry,) = [line for line in output.splitlines() if "retry 1/" in line]
    assert "builder" in retry and "openai:gpt-4.1" in retry
    assert "HTTP 503" in retry and "in 30 s" in retry  # the reason and the backoff
    assert calls == 1  # the 30 s wait was cut short: no second call was made
    (row,) = Runtime.open(repo).store.list_runs()
    view = Runtime.open(repo).store.view(row.id)
    assert view.state is RunState.CANCELLED, (view.state, view.reason)
    assert "interrupted" in view.reason


def test_autopack_plan_shows_the_retries_of_its_planner(tmp_path: Path) -> None:
    """``autopack plan GOAL`` has no live view: each retry is a line of its own."""
    draft = PLAN % ""
    with FakeServer(api_key=KEY) as server:
        server.enqueue(
            "openai",
            Fault(529, retry_after="0", message="overloaded"),
            Reply(text=f"```yaml\n{draft}```"),
        )
        repo = make_repo(tmp_path, openai_config(server))
        env = {**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "80"}
        done = subprocess.run(
            [AUTOPACK, "plan", "Edit a", "-C", str(repo), "--model", "openai:gpt-4.1"],
            cwd=repo,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "planner call to openai:gpt-4.1 failed" in output and "HTTP 529" in output
    assert "retry 1/6 in 0 s" in output
    assert (repo / "plan.yaml").is_file()
