"""The intention file: checked like a plan (file, line, field; exit 2; nothing written),
read by default from .autopack/intention.yaml, and handed to the Planner."""

from __future__ import annotations

from pathlib import Path

import pytest
from autopilot_helpers import INTENTION, autopack, gappy_project, git, write

from autopack.autopilot import load_intention
from autopack.roles.planner import planner_prompt


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return gappy_project(tmp_path / "calc")


def _state(repo: Path) -> tuple[str, list[str]]:
    """What a person would look at to see whether anything was written."""
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts)
    return git(repo, "status", "--porcelain", "--ignored"), files


def test_a_valid_intention_is_ok_and_counts_its_criteria(project: Path) -> None:
    result = autopack("intention", "check", "-C", str(project))
    assert result.exit_code == 0, result.output
    assert "intention.yaml: 3 success criteria" in result.stdout
    intention = load_intention(project / ".autopack/intention.yaml")
    assert intention.allows("calc.py") and not intention.allows("vendor/lib.py")
    assert not intention.allows("setup.py")
    assert intention.budgets.total.cost_usd == 2.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (INTENTION.replace("preferences:", "preference:"), ":12: preference: Extra inputs"),
        (INTENTION.replace("iterations: 3", "iterations: many"), ":16: budgets.iterations:"),
        (INTENTION.replace("[docs/usage.md]", "[../outside.md]"), ":5: success_criteria.files[0]:"),
        (INTENTION.replace('"calc.py:add"', '"calc:add"'), ":11: constraints.public_names[0]:"),
        (INTENTION.replace("  must: [", "  must: &m [") + "x: *m\n", ":7: constraints.must:"),
        (INTENTION + "north_star: again\n", ":18: north_star: key 'north_star' repeats"),
        ("- just a list\n", ":1: -: the intention must be a mapping"),
        (INTENTION.replace("north_star: A calculator people trust.\n", ""), "north_star: Field"),
        (INTENTION.replace("frozen_paths: [vendor/**]", "frozen_paths: [.git/hooks]"), ".git/"),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "leaves-repo",
        "bad-name",
        "alias",
        "repeat",
        "not-a-map",
        "missing-north-star",
        "inside-git",
    ],
)
def test_a_bad_intention_names_file_line_and_field_and_writes_nothing(
    project: Path, text: str, expected: str
) -> None:
    write(project, {".autopack/intention.yaml": text})
    before = _state(project)
    result = autopack("intention", "check", "-C", str(project))
    assert result.exit_code == 2
    assert "invalid intention" in result.stderr
    assert expected in result.stderr
    assert ".autopack/intention.yaml" in result.stderr
    assert "Traceback" not in result.output
    assert _state(project) == before


def test_a_missing_intention_file_exits_2_naming_it(project: Path, tmp_path: Path) -> None:
    result = autopack("intention", "check", str(tmp_path / "nowhere.yaml"))
    assert result.exit_code == 2
    assert "nowhere.yaml" in result.stderr and "No such file" in result.stderr


def test_gaps_with_a_bad_intention_exits_2_before_running_anything(project: Path) -> None:
    write(project, {".autopack/intention.yaml": "north_star: x\nallowed_paths: [/etc]\n"})
    before = _state(project)
    result = autopack("gaps", "-C", str(project))
    assert result.exit_code == 2
    assert "intention.yaml:2: allowed_paths[0]: '/etc' is absolute" in result.stderr
    assert _state(project) == before


def _planner_script(tmp_path: Path) -> Path:
    script = tmp_path / "planner.yaml"
    plan = (
        "run: {goal: Add power}\ntiers:\n  - id: t1\n    phases:\n      - id: power\n"
        "        goal: Add power()\n        scope: {paths: [calc.py]}\n"
    )
    script.write_text(
        "version: 1\nreplies:\n  plan:\n    planner:\n      - |\n"
        + "".join(f"        {line}\n" for line in plan.splitlines())
    )
    return script


def test_the_planner_is_told_the_intention(project: Path, tmp_path: Path) -> None:
    prompt = planner_prompt(
        "Add power", project, load_intention(project / ".autopack/intention.yaml").prompt_text()
    )
    assert "A calculator people trust." in prompt
    assert "out_of_scope:\n- vendor/**" in prompt
    assert "Keep the functions pure" in prompt
    out = tmp_path / "plan.yaml"
    script = _planner_script(tmp_path)
    result = autopack(
        "plan", "Add power", "-C", str(project), "--out", str(out), "--model", f"scripted:{script}"
    )
    assert result.exit_code == 0, result.output
    assert "id: power" in out.read_text()


def test_plan_drafting_stops_on_an_invalid_intention(project: Path, tmp_path: Path) -> None:
    write(project, {".autopack/intention.yaml": "north_star: x\nbudgets: {iterations: 0}\n"})
    out = tmp_path / "plan.yaml"
    script = _planner_script(tmp_path)
    result = autopack(
        "plan", "Add power", "-C", str(project), "--out", str(out), "--model", f"scripted:{script}"
    )
    assert result.exit_code == 2
    assert "intention.yaml:2: budgets.iterations:" in result.stderr
    assert not out.exists()
