"""Hostile input through the CLI: plans, scripts and configuration files that used to grow
memory without bound, end in tracebacks or silently mean something else are refused with
exit 2, naming file, line and field, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.plan import MAX_PHASES
from autopack.safeyaml import MAX_BYTES, MAX_DEPTH
from autopack.workspace import git

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

PHASE = """\
      - id: {id}
        goal: Change a
        scope: {{paths: [a.py]}}
"""
HEAD = "run: {goal: Edit a}\ntiers:\n  - id: t\n    phases:\n"
GOOD = HEAD + PHASE.format(id="p")

PLANS = [
    ("billion laughs", BILLION_LAUGHS, 1, "a", "anchors and aliases"),
    (
        "alias inside a plan",
        HEAD + "      - id: p\n        goal: &g Change a\n        scope: {paths: [a.py]}\n"
        "        description: *g\n",
        6,
        "tiers[0].phases[0].goal",
        "anchors and aliases",
    ),
    (
        "deep nesting",
        HEAD + PHASE.format(id="p") + "        description: " + "[" * 5000 + "]" * 5000 + "\n",
        8,
        "tiers[0].phases[0].description" + "[0]" * (MAX_DEPTH - 5),
        f"deeper than {MAX_DEPTH}",
    ),
    (
        "scope written twice",
        HEAD + PHASE.format(id="p") + "        scope: {paths: ['**']}\n",
        8,
        "tiers[0].phases[0].scope",
        "key 'scope' repeats (first on line 7)",
    ),
    (
        "merge key",
        HEAD + PHASE.format(id="p") + "        <<: {risk: low}\n",
        8,
        "tiers[0].phases[0].<<",
        "merge keys",
    ),
    ("over the size limit", GOOD + "#" * MAX_BYTES + "\n", 1, "-", "the limit is 1,000,000"),
    (
        "too many phases",
        HEAD + "".join(PHASE.format(id=f"p{n}") for n in range(MAX_PHASES + 1)),
        2,
        "tiers",
        f"{MAX_PHASES + 1} phases; a plan may have at most {MAX_PHASES}",
    ),
]


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def write_script(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "script.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


FINE_SCRIPT = """\
version: 1
replies:
  "*":
    builder: ["nothing to do"]
    auditor: [{verdict: approve, summary: ok, issues: []}]
"""


def assert_untouched(repo: Path) -> None:
    """What a person checks after a refused command: nothing of Autopack was written."""
    assert not (repo / ".autopack").exists()
    assert git.git(repo, "branch", "--list", "autopack/*") == ""


@pytest.mark.parametrize(
    ("name", "text", "line", "field", "words"), PLANS, ids=[p[0] for p in PLANS]
)
def test_hostile_plans_are_refused_by_plan_check_and_run(
    tmp_path: Path, name: str, text: str, line: int, field: str, words: str
) -> None:
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    script = write_script(tmp_path, FINE_SCRIPT)
    runner = CliRunner()
    for args in (
        ["plan", "check", str(plan)],
        ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (name, result.output)
        assert f"{plan}:{line}: {field}: " in result.output, result.output
        assert words in result.output
        assert "Traceback" not in result.output
    assert_untouched(repo)


def test_a_plan_file_is_never_read_past_the_limit(tmp_path: Path) -> None:
    """A plan named by path is read at most one byte past the limit (/dev/zero ends too)."""
    result = CliRunner().invoke(app, ["plan", "check", "/dev/zero"])
    assert result.exit_code == 2
    assert "the limit is 1,000,000" in result.output or "not valid" in result.output


SCRIPTS = [
    ("aliases", "version: 1\nreplies: &r {}\nx: *r\n", "anchors and aliases"),
    ("repeated key", "version: 1\nversion: 1\nreplies: {}\n", "key 'version' repeats"),
    ("not utf-8", b"version: 1\nreplies: {p: {builder: ['\xff\xfe']}}\n", "utf-8"),
    ("NaN latency", "version: 1\nlatency_seconds: .nan\nreplies: {}\n", "latency_seconds"),
    ("text latency", "version: 1\nlatency_seconds: soon\nreplies: {}\n", "latency_seconds"),
    ("replies a list", "version: 1\nreplies: [1, 2]\n", "'replies' must map"),
    ("no version", "replies: {}\n", "version: 1"),
    ("a list", "- 1\n- 2\n", "version: 1"),
    ("not yaml", "version: 1\nreplies: {p: [\n", "cannot read script"),
    ("deep", "version: 1\nreplies: " + "[" * 3000 + "]" * 3000 + "\n", "deeper than"),
]


@pytest.mark.parametrize(("name", "text", "words"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_malformed_scripts_exit_2_before_anything_is_written(
    tmp_path: Path, name: str, text: str | bytes, words: str
) -> None:
    repo = make_repo(tmp_path)
    plan = tmp_path / "plan.yaml"
    plan.write_text(GOOD)
    script = write_script(tmp_path, text)
    args = ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (name, result.output)
    assert str(script) in result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert_untouched(repo)


CONFIGS = [
    ("syntax", "test_command = \n", "autopack.toml: Invalid value"),
    ("not utf-8", b'test_command = "\xff"\n', "codec can't decode"),
    ("wrong type", 'max_parallel = "x"\n', "autopack.toml: max_parallel:"),
    ("repeated key", "max_parallel = 1\nmax_parallel = 2\n", "Cannot overwrite a value"),
    ("unknown key", "colour = 1\n", "autopack.toml: colour:"),
    ("NaN timeout", "test_timeout_s = nan\n", "autopack.toml: test_timeout_s:"),
    ("unknown sandbox", 'sandbox = "none"\n', "autopack.toml: sandbox:"),
    ("models a number", "models = 5\n", "autopack.toml: models:"),
    ("providers a number", "[models]\nproviders = 5\n", "autopack.toml: models.providers:"),
    ("provider unknown key", "[models.providers.x]\nurl = 1\n", "models.providers.x.url:"),
    ("provider timeout 0", "[models.providers.x]\ntimeout = 0\n", "models.providers.x.timeout:"),
    ("prices not a table", '[prices]\n"x:y" = 5\n', "autopack.toml: prices.x:y:"),
    ("gate rules a number", "[gate]\nrules = 5\n", "autopack.toml: gate.rules:"),
    ("gate threshold text", '[gate]\nrisk_threshold = "x"\n', "gate.risk_threshold:"),
    ("gate paths a number", "[gate]\nprotected_paths = 5\n", "gate.protected_paths:"),
    ("gate unknown key", "[gate]\nfoo = 1\n", "autopack.toml: gate.foo: unknown setting"),
    ("gate unknown rule", '[gate.rules.nope]\ndecision = "PASS"\n', "unknown gate rule 'nope'"),
    ("gate bad decision", '[gate]\nprecedence = ["MAYBE"]\n', "unknown decision 'MAYBE'"),
    ("approvals timeout a list", "[approvals]\ntimeout_s = [1]\n", "approvals.timeout_s:"),
    ("approvals timeout NaN", "[approvals]\ntimeout_s = nan\n", "approvals.timeout_s:"),
    ("approvals on_timeout", '[approvals]\non_timeout = "retry"\n', "approvals.on_timeout:"),
    ("approvals unknown", "[approvals]\nwho = 1\n", "approvals.who:"),
    ("memory a number", "memory = 5\n", "autopack.toml: memory:"),
    ("memory store", '[memory]\nvector_store = "faiss"\n', "memory.vector_store:"),
    ("memory unknown", "[memory]\nqdrant = 1\n", "memory.qdrant: unknown setting"),
    ("builder is no setting", "[builder]\nmax_steps = 3\n", "builder: unknown setting"),
    ("db_url", 'db_url = "nonsense://x"\n', "autopack.toml: db_url: Can't load plugin"),
    ("db_url garbage", 'db_url = "::::"\n', "autopack.toml: db_url: not a database URL"),
]


@pytest.mark.parametrize(("name", "text", "words"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_malformed_config_exits_2_naming_file_and_key(
    tmp_path: Path, name: str, text: str | bytes, words: str
) -> None:
    repo = make_repo(tmp_path)
    (repo / "autopack.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    plan = tmp_path / "plan.yaml"
    plan.write_text(GOOD)
    script = write_script(tmp_path, FINE_SCRIPT)
    args = ["run", str(plan), "-C", str(repo), "--model", f"scripted:{script}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (name, result.output)
    assert words in result.output
    assert str(repo / "autopack.toml") in result.output
    assert "Traceback" not in result.output
    assert git.git(repo, "branch", "--list", "autopack/*") == ""


def test_pyproject_tool_autopack_not_a_table_exits_2(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "pyproject.toml").write_text("[tool]\nautopack = 5\n")
    result = CliRunner().invoke(app, ["runs", "-C", str(repo)])
    assert result.exit_code == 2, result.output
    assert "pyproject.toml: tool.autopack: must be a table" in result.output


def test_serve_with_a_malformed_config_exits_2_before_it_listens(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "autopack.toml").write_text("[approvals]\ntimeout_s = nan\n")
    result = CliRunner().invoke(app, ["serve", "-C", str(repo), "--no-auth", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "approvals.timeout_s" in result.output
    assert "dashboard" not in result.output
