"""Plan validation: every malformed plan exits 2, names file, line and field, writes nothing."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.plan import PlanError, globs_overlap, parse_plan_text, path_matches

GOOD = """\
run:
  goal: Demo
tiers:
  - id: t1
    phases:
      - id: a
        goal: Do a
        scope:
          paths: [src/a.py, tests/test_a.py]
        deliverables: [src/a.py]
      - id: b
        goal: Do b
        scope:
          paths: [src/b.py]
  - id: t2
    phases:
      - id: c
        goal: Do c
        depends_on: [a]
        scope:
          paths: ["src/**"]
"""

# (name, text, expected line, expected field, words the message must contain)
BAD = [
    (
        "unknown key",
        GOOD.replace("        goal: Do a\n", "        goal: Do a\n        colour: red\n"),
        8,
        "tiers[0].phases[0].colour",
        "extra",
    ),
    (
        "wrong type",
        GOOD.replace("paths: [src/b.py]", "paths: src/b.py"),
        14,
        "tiers[0].phases[1].scope.paths",
        "list",
    ),
    (
        "missing goal",
        GOOD.replace("        goal: Do b\n", ""),
        11,
        "tiers[0].phases[1].goal",
        "required",
    ),
    (
        "duplicate phase id",
        GOOD.replace("id: b", "id: a"),
        11,
        "tiers[0].phases[1].id",
        "duplicate",
    ),
    (
        "unknown dependency",
        GOOD.replace("depends_on: [a]", "depends_on: [zz]"),
        19,
        "tiers[1].phases[0].depends_on[0]",
        "unknown",
    ),
    (
        "dependency cycle",
        GOOD.replace(
            "        deliverables: [src/a.py]\n",
            "        deliverables: [src/a.py]\n        depends_on: [b]\n",
        ).replace("        goal: Do b\n", "        goal: Do b\n        depends_on: [a]\n", 1),
        None,
        "depends_on",
        "cycle",
    ),
    (
        "deliverable outside scope",
        GOOD.replace("deliverables: [src/a.py]", "deliverables: [README.md]"),
        10,
        "tiers[0].phases[0].deliverables[0]",
        "outside scope",
    ),
    (
        "overlapping parallel scopes",
        GOOD.replace("paths: [src/b.py]", 'paths: ["src/*.py"]'),
        14,
        "tiers[0].phases[1].scope.paths[0]",
        "overlaps",
    ),
    (
        "bad risk value",
        GOOD.replace("        goal: Do c\n", "        goal: Do c\n        risk: extreme\n"),
        19,
        "tiers[1].phases[0].risk",
        "low",
    ),
    (
        "scope leaves the repository",
        GOOD.replace("paths: [src/b.py]", "paths: [../secrets.txt]"),
        14,
        "tiers[0].phases[1].scope.paths[0]",
        "leaves the repository",
    ),
    (
        "dependency on a later tier",
        GOOD.replace(
            "          paths: [src/b.py]", "          paths: [src/b.py]\n        depends_on: [c]"
        ),
        15,
        "tiers[0].phases[1].depends_on[0]",
        "later tier",
    ),
    ("not yaml", "run: [unclosed\n", 2, "-", "YAML"),
    (
        "empty tiers",
        "run: {goal: x}\ntiers: []\n",
        2,
        "tiers",
        "at least 1",
    ),
    (
        "bad phase id",
        GOOD.replace("id: b", "id: B b"),
        11,
        "tiers[0].phases[1].id",
        "pattern",
    ),
    (
        "negative budget",
        GOOD.replace("  goal: Demo\n", "  goal: Demo\n  budget: {tokens: -5}\n"),
        3,
        "run.budget.tokens",
        "greater than 0",
    ),
]


def test_good_plan_parses() -> None:
    plan = parse_plan_text(GOOD, "plan.yaml")
    assert plan.phase_ids() == ["a", "b", "c"]
    assert len(plan.digest()) == 64


@pytest.mark.parametrize(("name", "text", "line", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_malformed_plan_is_located(
    name: str, text: str, line: int | None, field: str, words: str
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan_text(text, "plan.yaml")
    issues = caught.value.issues
    match = [i for i in issues if field in i.field and words.lower() in i.message.lower()]
    assert match, f"{name}: got {[str(i) for i in issues]}"
    assert match[0].file == "plan.yaml"
    if line is not None:
        assert match[0].line == line, str(match[0])


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".git/" not in str(p))


@pytest.mark.parametrize(
    ("name", "text"), [(b[0], b[1]) for b in BAD[:10]], ids=[b[0] for b in BAD[:10]]
)
def test_cli_refuses_bad_plan_and_writes_nothing(tmp_path: Path, name: str, text: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "x.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    before = _tree(repo), _branches(repo)
    for args in (["plan", "check", str(plan)], ["run", str(plan), "--repo", str(repo)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "plan.yaml:" in result.output
    assert (_tree(repo), _branches(repo)) == before
    assert not (repo / ".autopack").exists()


def _branches(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "branch", "--list"], capture_output=True, text=True, check=True
    ).stdout


def test_scope_globs() -> None:
    assert path_matches("src/pkg/a.py", "src/**")
    assert path_matches("src/pkg/a.py", "src/pkg")
    assert path_matches("src/a.py", "src/*.py")
    assert not path_matches("src/pkg/a.py", "src/*.py")
    assert not path_matches("srcx/a.py", "src")
    assert globs_overlap("src/*.py", "src/a.py")
    assert globs_overlap("src/**", "src/pkg/x/y.py")
    assert not globs_overlap("src/a.py", "tests/a.py")
    assert not globs_overlap("docs/*.md", "src/*.py")


def test_plan_text_as_json_keeps_lines() -> None:
    text = textwrap.dedent(
        """\
        {"run": {"goal": "x"},
         "tiers": [{"id": "t", "phases": [
            {"id": "a", "goal": "g", "scope": {"paths": ["a.py"]}, "oops": 1}]}]}
        """
    )
    with pytest.raises(PlanError) as caught:
        parse_plan_text(text, "api")
    assert caught.value.issues[0].line == 3
