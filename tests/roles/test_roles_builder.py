"""The Builder: text protocol, tool loop, scope enforcement, limits and the stuck detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from roles_helpers import Calls, make_brief, scripted

from autopack.edits import PathPolicy
from autopack.llm.base import ToolCall
from autopack.llm.door import ModelDoor
from autopack.roles import BuilderLimits, BuildResult, PhaseBrief, build
from autopack.roles.tools import Toolbox, ToolLimits
from autopack.workspace.runner import make_sandbox

SCOPE = ("src/app/**",)


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def turn(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(calls)}


def run_builder(
    worktree: Path,
    door: ModelDoor,
    calls: Calls,
    replies: list[Any],
    limits: BuilderLimits = BuilderLimits(),
    brief: PhaseBrief | None = None,
) -> BuildResult:
    return build(
        brief or make_brief(),
        worktree=worktree,
        policy=PathPolicy(root=worktree, scope=SCOPE),
        sandbox=make_sandbox("auto"),
        door=door,
        model=scripted({"p1": {"builder": replies}}),
        call_counter=calls,
        limits=limits,
    )


def toolbox(worktree: Path, run_timeout_s: float = 30) -> Toolbox:
    limits = ToolLimits(run_timeout_s=run_timeout_s, run_output_cap=4_000, observation_tokens=2_000)
    return Toolbox(worktree, PathPolicy(root=worktree, scope=SCOPE), make_sandbox("auto"), limits)


def test_a_plain_text_reply_is_the_text_protocol(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    reply = (
        "src/app/greet.py\n<<<<<<< SEARCH\n=======\n"
        "def greet(n):\n    return 'hello ' + n\n>>>>>>> REPLACE\nAdded greet."
    )
    brief = make_brief(feedback="test_greet failed: NameError", lessons=("Run ruff first.",))
    result = run_builder(worktree, door, calls, [reply], brief=brief)
    assert result.stop_reason == "text"
    assert result.edits_text == reply
    assert result.summary == "Added greet."
    assert result.steps == 1
    assert "Run ruff first." in result.prompt
    assert "test_greet failed: NameError" in result.prompt
    assert "def core():" in result.prompt  # a small file in scope is shown whole
    assert "src/app/greet.py  (deliverable, does not exist yet)" in result.prompt


def test_tools_write_in_scope_and_finish_records_decisions(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    decision = {"title": "Plain function", "decision": "No class", "rationale": "Simple"}
    replies = [
        turn(tool("write_file", path="src/app/greet.py", content="def greet(n):\n    return n\n")),
        turn(tool("edit", path="src/app/greet.py", old="return n", new="return 'hello ' + n")),
        turn(tool("finish", summary="Added greet.", decisions=[decision])),
    ]
    result = run_builder(worktree, door, calls, replies)
    assert result.stop_reason == "finish"
    assert result.edits_text == ""
    assert result.steps == 3
    assert result.decisions[0]["title"] == "Plain function"
    assert result.decisions[0]["alternatives"] == ""
    assert "return 'hello ' + n" in (worktree / "src/app/greet.py").read_text()


def test_tools_cannot_write_outside_scope(
    worktree: Path, door: ModelDoor, calls: Calls, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.py").write_text("original\n")
    (worktree / "src/app/link").symlink_to(outside, target_is_directory=True)
    (worktree / "src/app/alias.py").symlink_to(outside / "target.py")
    attempts = [
        tool("write_file", path="../escaped.txt", content="x"),
        tool("write_file", path="src/app/../../escaped.txt", content="x"),
        tool("write_file", path=str(tmp_path / "absolute.txt"), content="x"),
        tool("write_file", path="src/app/link/new.py", content="x"),
        tool("write_file", path="src/app/alias.py", content="x"),
        tool("edit", path="src/app/alias.py", old="original", new="x"),
        tool("write_file", path=".git/config", content="x"),
        tool("write_file", path="src/app/.git/hooks/pre-commit", content="x"),
        tool("write_file", path="README.md", content="read-only context"),
        tool(
            "apply_patch",
            patch="README.md\n<<<<<<< SEARCH\n# App\n=======\n# Hacked\n>>>>>>> REPLACE\n",
        ),
    ]
    result = run_builder(
        worktree, door, calls, [turn(*attempts), turn(tool("finish", summary="x"))]
    )
    assert result.stop_reason == "finish"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "absolute.txt").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["target.py"]
    assert (outside / "target.py").read_text() == "original\n"
    assert (worktree / ".git/config").read_text() == "[core]\n"
    assert not (worktree / "src/app/.git").exists()
    assert (worktree / "README.md").read_text() == "# App\nSays hello.\n"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../x.py", "traversal"),
        ("/etc/passwd", "absolute"),
        (".git/config", "git_dir"),
        ("README.md", "out_of_scope"),
    ],
)
def test_refusals_are_reported_to_the_model(worktree: Path, path: str, reason: str) -> None:
    observation = toolbox(worktree).dispatch(
        ToolCall(id="c", name="write_file", arguments={"path": path, "content": "x"})
    )
    assert observation.startswith("refused:")
    assert reason in observation


def test_reads_may_not_leave_the_worktree(worktree: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret")
    (worktree / "src/app/peek.txt").symlink_to(tmp_path / "secret.txt")
    box = toolbox(worktree)
    for path in ("../secret.txt", "src/app/peek.txt", ".git/config"):
        observation = box.dispatch(ToolCall(id="c", name="read_file", arguments={"path": path}))
        assert observation.startswith("refused:")
        assert "s3cret" not in observation
    found = box.dispatch(ToolCall(id="c", name="search", arguments={"pattern": "core"}))
    assert "src/app/core.py:1: def core():" in found
    assert ".git" not in found


def test_run_respects_its_timeout(worktree: Path) -> None:
    box = toolbox(worktree, run_timeout_s=1)
    call = ToolCall(
        id="c", name="run", arguments={"command": "sleep 30; echo finished", "timeout_s": 1000}
    )
    observation = box.dispatch(call)
    assert observation.startswith("timed out after 1s")
    assert "finished" not in observation


def test_run_reports_exit_code_and_output(worktree: Path) -> None:
    call = ToolCall(id="c", name="run", arguments={"command": "echo hi; exit 3"})
    observation = toolbox(worktree).dispatch(call)
    assert observation.splitlines()[:2] == ["exit code 3", "hi"]


def test_stuck_detector_stops_a_repeated_failing_action(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    same = turn(tool("edit", path="src/app/core.py", old="missing", new="x"))
    result = run_builder(worktree, door, calls, [same] * 6)
    assert result.stop_reason == "stuck"
    assert result.steps == 3
    assert "edit" in result.summary


def test_stuck_detector_catches_alternating_loops(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    a = turn(tool("read_file", path="src/app/core.py"))
    b = turn(tool("list_dir", path="src/app"))
    result = run_builder(worktree, door, calls, [a, b, a, b, a, b, a])
    assert result.stop_reason == "stuck"
    assert result.steps == 5


def test_changing_results_are_progress_not_stuck(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    replies: list[Any] = []
    for n in range(4):
        body = f"VALUE = {n}\n"
        replies += [
            turn(tool("write_file", path="src/app/v.py", content=body)),
            turn(tool("read_file", path="src/app/v.py")),
        ]
    replies.append(turn(tool("finish", summary="done")))
    result = run_builder(worktree, door, calls, replies)
    assert result.stop_reason == "finish"
    assert result.steps == 9


def test_step_limit_ends_the_loop(worktree: Path, door: ModelDoor, calls: Calls) -> None:
    replies = [turn(tool("read_file", path="src/app/core.py", start_line=n)) for n in (1, 2, 3)]
    result = run_builder(worktree, door, calls, replies, limits=BuilderLimits(max_steps=2))
    assert result.stop_reason == "max_steps"
    assert result.steps == 2


def test_wall_time_limit_ends_the_loop(worktree: Path, door: ModelDoor, calls: Calls) -> None:
    replies = [turn(tool("list_dir")), turn(tool("finish", summary="never reached"))]
    result = run_builder(worktree, door, calls, replies, limits=BuilderLimits(wall_seconds=0))
    assert result.stop_reason == "wall_time"
    assert result.steps == 1


def test_prose_after_tool_writes_leaves_nothing_to_apply(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    replies = [
        turn(tool("write_file", path="src/app/greet.py", content="def greet(n):\n    return n\n")),
        "Done.",  # prose without edits or tools gets one reminder
        "Wrote greet.py; nothing else to change.",  # and a second one ends the attempt
    ]
    result = run_builder(worktree, door, calls, replies)
    assert result.stop_reason == "text"
    assert result.steps == 3
    assert result.edits_text == ""
    assert result.summary == "Wrote greet.py; nothing else to change."
    assert (worktree / "src/app/greet.py").exists()


def test_a_bad_regex_is_an_error_the_model_sees(worktree: Path) -> None:
    call = ToolCall(id="c", name="search", arguments={"pattern": "(", "regex": True})
    assert toolbox(worktree).dispatch(call).startswith("error:")


def test_observations_do_not_carry_the_worktree_path(worktree: Path) -> None:
    observation = toolbox(worktree).dispatch(
        ToolCall(id="c", name="run", arguments={"command": "pwd"})
    )
    assert observation == "exit code 0\n<worktree>\n"


def test_apply_patch_applies_in_scope_and_reads_reach_read_only_context(worktree: Path) -> None:
    box = toolbox(worktree)
    patch = (
        "src/app/core.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE\n"
    )
    report = box.dispatch(ToolCall(id="c", name="apply_patch", arguments={"patch": patch}))
    assert "src/app/core.py" in report
    assert (worktree / "src/app/core.py").read_text() == "def core():\n    return 2\n"
    readme = box.dispatch(ToolCall(id="c", name="read_file", arguments={"path": "README.md"}))
    assert readme == "# App\nSays hello."


def test_feedback_in_the_prompt_is_stable_across_replays(
    worktree: Path, door: ModelDoor, calls: Calls
) -> None:
    feedback = f"1 failed, 4 passed in 0.20s\nrootdir: {worktree}\n"
    result = run_builder(worktree, door, calls, ["no edits"], brief=make_brief(feedback=feedback))
    assert "1 failed, 4 passed in <time>\nrootdir: <worktree>" in result.prompt
