"""A plan the policy does not approve waits, as a recorded state, for a person: answered
with ``autopack autopilot approve/reject`` while the autopilot waits in its own process,
after it was killed (it resumes still waiting), and refused once nothing waits. Each
autopilot run still replays from its cassette."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autopilot_helpers import autopack, git
from test_autopilot import BUILD_DOCS, BUILD_POWER, autopilots, journal, plan, project, script
from test_autopilot import status as pilot_status

SRC = str(Path(__file__).resolve().parents[2] / "src")
DEADLINE_S = 180


@contextmanager
def autopilot_process(repo: Path, model: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``autopack autopilot`` in its own process (it waits for people), killed at the end
    if it is still running."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", "from autopack.cli import main; main()", "autopilot"]
    argv += ["-C", str(repo), "--model", f"scripted:{model}", *args]
    pilot = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    try:
        yield pilot
    finally:
        if pilot.poll() is None:
            os.killpg(pilot.pid, signal.SIGKILL)
        pilot.wait()


def wait_until(check: Callable[[], Any], pilot: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = check()
        if found:
            return found
        if pilot is not None and pilot.poll() is not None:
            raise AssertionError(
                f"the autopilot ended first: {pilot.stdout and pilot.stdout.read()}"
            )
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def waiting_at(repo: Path, iteration: int) -> Callable[[], str | None]:
    """The id of the autopilot when its plan of ``iteration`` waits for a person."""

    def check() -> str | None:
        rows = autopilots(repo)
        if not rows or rows[0]["state"] != "AWAITING_APPROVAL":
            return None
        shown = pilot_status(repo, rows[0]["id"])
        return str(rows[0]["id"]) if shown["iteration_count"] == iteration else None

    return check


def two_plans(tmp_path: Path) -> Path:
    return script(
        tmp_path,
        [plan("power", "calc.py, tests/test_power.py"), plan("docs", "docs/usage.md")],
        {"power": BUILD_POWER, "docs": BUILD_DOCS},
    )


def test_a_waiting_plan_is_approved_from_the_cli_and_the_autopilot_goes_on(
    tmp_path: Path,
) -> None:
    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    with autopilot_process(repo, model) as pilot:  # no --auto-approve: every plan waits
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        shown = pilot_status(repo, pilot_id)
        first = shown["iterations"][0]
        assert first["approval"] == "waiting" and first["reasons"] == ["auto-approval is off"]
        assert (
            first["run_state"] == ""
            and "autopilot-" not in autopack("runs", "-C", str(repo)).stdout
        )
        text = autopack("autopilot", "status", pilot_id, "-C", str(repo)).stdout
        assert "waits: auto-approval is off" in text
        approved = autopack("autopilot", "approve", pilot_id, "-C", str(repo), "--note", "go")
        assert approved.exit_code == 0, approved.output
        assert f"approved the plan of autopilot {pilot_id} iteration 1" in approved.stdout
        again = autopack("autopilot", "approve", pilot_id, "-C", str(repo))
        assert again.exit_code == 2 and "has no plan waiting for approval" in again.stderr
        wait_until(waiting_at(repo, 2), pilot)
        assert autopack("autopilot", "approve", pilot_id, "-C", str(repo)).exit_code == 0
        out, _ = pilot.communicate(timeout=DEADLINE_S)
    assert pilot.returncode == 0, out
    assert f"autopilot {pilot_id}: criteria met" in out
    events = journal(repo)
    approvals = [e for e in events if e["event"] == "plan_approved"]
    user = approvals[0]["by"]
    assert [(e["iteration"], e["auto"], e["note"]) for e in approvals] == [
        (1, False, "go"),
        (2, False, ""),
    ]
    assert user and all(e["by"] == user for e in approvals)
    shown = pilot_status(repo, pilot_id)
    assert [it["run_state"] for it in shown["iterations"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert "def power" in git(repo, "show", f"autopack/autopilot-{pilot_id}:calc.py")
    # an autopilot's run is an ordinary run: it replays from its cassette
    replayed = autopack("replay", f"autopilot-{pilot_id}-1", "-C", str(repo))
    assert replayed.exit_code == 0, replayed.output
    assert "power: " in replayed.stdout and " same" in replayed.stdout
    assert "differs" not in replayed.stdout


def test_killed_while_waiting_the_autopilot_resumes_still_waiting(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    with autopilot_process(repo, model) as pilot:
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        os.killpg(pilot.pid, signal.SIGKILL)
    before = journal(repo)
    resumed = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                       "--resume", pilot_id, "--no-wait")  # fmt: skip
    assert resumed.exit_code == 1, resumed.output
    assert f"autopilot {pilot_id}: needs a person (auto-approval is off)" in resumed.stdout
    assert journal(repo) == before  # nothing new: not drafted again, not approved
    assert pilot_status(repo, pilot_id)["state"] == "AWAITING_APPROVAL"
    assert autopack("autopilot", "approve", pilot_id, "-C", str(repo)).exit_code == 0
    resumed = autopack("autopilot", "-C", str(repo), "--model", f"scripted:{model}",
                       "--resume", pilot_id, "--no-wait")  # fmt: skip
    assert resumed.exit_code == 1 and "needs a person" in resumed.stdout  # iteration 2's plan
    shown = pilot_status(repo, pilot_id)
    assert [(it["approval"], it["run_state"]) for it in shown["iterations"]] == [
        ("approved", "SUCCEEDED"),
        ("waiting", ""),
    ]
    drafted = [e for e in journal(repo) if e["event"] == "plan_drafted"]
    assert [e["iteration"] for e in drafted] == [1, 2]  # each plan drafted once


def test_a_rejected_plan_stops_the_autopilot_with_the_note(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    with autopilot_process(repo, model) as pilot:
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        no_note = autopack("autopilot", "reject", pilot_id, "-C", str(repo), "--note", " ")
        assert no_note.exit_code == 2 and "needs a note" in no_note.stderr
        rejected = autopack("autopilot", "reject", pilot_id, "-C", str(repo),
                            "--note", "too broad")  # fmt: skip
        assert rejected.exit_code == 0, rejected.output
        out, _ = pilot.communicate(timeout=DEADLINE_S)
    assert pilot.returncode == 1
    assert "stopped by a person (plan 1 rejected by" in out and ": too broad)" in out
    assert "autopilot-" not in autopack("runs", "-C", str(repo)).stdout  # nothing ran
    last = journal(repo)[-2:]
    assert [e["event"] for e in last] == ["plan_rejected", "autopilot_stopped"]
    assert last[0]["note"] == "too broad"
    refused = autopack("autopilot", "approve", pilot_id, "-C", str(repo))
    assert refused.exit_code == 2
    assert "has no plan waiting for approval (stopped: stopped by a person)" in refused.stderr
    unknown = autopack("autopilot", "approve", "0badc0de", "-C", str(repo))
    assert unknown.exit_code == 2 and "no autopilot 0badc0de" in unknown.stderr


def test_a_person_stops_a_waiting_autopilot(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    with autopilot_process(repo, model) as pilot:
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        stopped = autopack("autopilot", "stop", pilot_id, "-C", str(repo))
        assert stopped.exit_code == 0, stopped.output
        out, _ = pilot.communicate(timeout=DEADLINE_S)
    assert pilot.returncode == 1
    assert f"autopilot {pilot_id}: stopped by a person (stop requested by" in out
    shown = pilot_status(repo, pilot_id)
    assert shown["state"] == "STOPPED" and shown["stop_reason"] == "stopped by a person"
    listed = json.loads(autopack("autopilot", "status", "-C", str(repo), "--json").stdout)
    assert [(r["id"], r["state"]) for r in listed] == [(pilot_id, "STOPPED")]
