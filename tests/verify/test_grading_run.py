"""Grading through ``autopack run``: the tests that decide are not the ones the Builder wrote.

A small real package (``textkit``: a slug function, a mixin test contract shared by two
test classes, a parametrized test, a conftest fixture, pytest configured in
``pyproject.toml``) has one bug, named by an inherited test in ``fail_to_pass``. A
scripted Builder either fixes it, or "fixes" it while breaking another test and hides
that with the test infrastructure, the way a reward-hacking model does; the Auditor
approves everything, so only the gate's own evidence can stop a change. Afterwards
each test checks what a person would: the run's state, the run branch, the evidence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.states import PhaseState, RunState
from autopack.workspace import git

F2P = "tests/test_slug.py::TestSlugify::test_strips_punctuation"
F2P_ALIAS = "tests/test_slug.py::TestMakeSlug::test_strips_punctuation"
REGRESSED = "tests/test_slug.py::TestSlugify::test_keeps_digits"

BUGGY = '''\
"""URL slugs."""


def slugify(text: str) -> str:
    """Lower-case words joined by dashes."""
    return "-".join(text.lower().split())


make_slug = slugify
'''

FIXED = '''\
"""URL slugs."""

import re


def slugify(text: str) -> str:
    """Lower-case letters and digits, runs of anything else as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


make_slug = slugify
'''

DROPS_DIGITS = FIXED.replace("[^a-z0-9]+", "[^a-z]+")
"""The fail_to_pass test passes, and test_keeps_digits (which passed) fails."""

MIXINS = '''\
"""The contract every slug function meets: inherited by one test class per function."""


class SlugContract:
    slug = staticmethod(lambda text: text)

    def test_lowercase(self):
        assert self.slug("ABC") == "abc"

    def test_spaces_become_dashes(self, words):
        assert self.slug(" ".join(words)) == "-".join(words)

    def test_keeps_digits(self):
        assert self.slug("Route 66") == "route-66"

    def test_strips_punctuation(self):
        assert self.slug("Hello, World!") == "hello-world"
'''

TEST_SLUG = """\
import pytest

from tests.mixins import SlugContract
from textkit.slug import make_slug, slugify


class TestSlugify(SlugContract):
    slug = staticmethod(slugify)


class TestMakeSlug(SlugContract):
    slug = staticmethod(make_slug)


@pytest.mark.parametrize(("text", "slug"), [("One Two", "one-two"), ("x", "x")])
def test_examples(text, slug):
    assert slugify(text) == slug
"""

CLOCK = '''\
"""Labels for ticks."""


def label(n: int) -> str:
    return "tick" if n % 2 else "tock"
'''

TEST_CLOCK = """\
from textkit.clock import label


def test_label():
    assert label(1) == "tick"
"""

FLAKY_AT_BASE = '''\
import os

RUNS = []


def test_cache_warmup():
    """Depends on how often it ran and on what ran before it in the process (a shared
    cache): flaky on the base tree too."""
    RUNS.append(1)
    warm = os.environ.get("SLUG_TESTS_RAN") == "1"
    assert (len(RUNS) + warm) % 2 == 1
'''

CONFTEST = """\
import pytest


@pytest.fixture
def words():
    return ["a", "b"]
"""

PYPROJECT = """\
[project]
name = "textkit"
version = "0.1.0"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""

FORCE_PASS_HOOK = """

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
"""

FORGED_REPORT = '''\
"""Pretends to be Autopack's report plugin: every test passed."""
import json
import os
import sys


def _write(line):
    spec = json.load(open(os.environ["AUTOPACK_REPORT_SPEC"]))
    with open(spec["report"], "a") as out:
        out.write(json.dumps(line) + "\\n")


def pytest_configure(config):
    _write({"python": sys.executable, "version": "3", "plugins": []})


def pytest_collection_finish(session):
    _write({"collected": [i.nodeid for i in session.items], "deselected": [], "excluded": 0})
    for item in session.items:
        _write({"test": item.nodeid, "outcome": "passed"})


def pytest_runtestloop(session):
    return True


def pytest_sessionfinish(session, exitstatus):
    _write({"finished": 0})
'''


def _run_git(repo: Path, *args: str) -> str:
    return git.git(repo, *args)


def make_project(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "textkit"
    files = {
        "textkit/__init__.py": "",
        "textkit/slug.py": BUGGY,
        "textkit/clock.py": CLOCK,
        "tests/__init__.py": "",
        "tests/mixins.py": MIXINS,
        "tests/conftest.py": CONFTEST,
        "tests/test_slug.py": TEST_SLUG,
        "tests/test_clock.py": TEST_CLOCK,
        "pyproject.toml": PYPROJECT,
        ".gitignore": ".warmups\n.calls\n",
        **(extra or {}),
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _run_git(repo, "init", "-q", "-b", "main")
    _run_git(repo, "add", "-A")
    _run_git(repo, "commit", "-q", "-m", "textkit")
    return repo


def plan(fail_to_pass: list[str], attempts: int = 1, hidden: list[Any] | None = None) -> str:
    scope = ["textkit", "tests", "conftest.py", "pytest.ini", "pyproject.toml"]
    scope += ["autopack_report.py"]
    phase = {
        "id": "fix-slug",
        "goal": "slugify drops punctuation",
        "scope": {"paths": scope},
        "tests": {"fail_to_pass": fail_to_pass, **({"hidden": hidden} if hidden else {})},
    }
    return yaml.safe_dump(
        {
            "run": {"goal": "fix slugs", "max_attempts": attempts},
            "tiers": [{"id": "t1", "phases": [phase]}],
        }
    )


def script(*attempts: dict[str, str]) -> str:
    """One Builder attempt per mapping of files to write; an Auditor that approves all."""
    builder: list[dict[str, Any]] = []
    for files in attempts:
        calls = [
            {"name": "write_file", "arguments": {"path": p, "content": c}} for p, c in files.items()
        ]
        builder.append({"tool_calls": calls})
        builder.append({"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]})
    approve = {"verdict": "approve", "summary": "looks right", "issues": []}
    replies = {"fix-slug": {"builder": builder, "auditor": [approve] * len(attempts)}}
    return yaml.safe_dump({"version": 1, "replies": replies})


def write_inputs(tmp_path: Path, plan_text: str, script_text: str) -> tuple[Path, Path]:
    (tmp_path / "plan.yaml").write_text(plan_text)
    (tmp_path / "script.yaml").write_text(script_text)
    return tmp_path / "plan.yaml", tmp_path / "script.yaml"


def autopack_run(repo: Path, plan_path: Path, script_path: Path) -> int:
    args = ["run", str(plan_path), "--repo", str(repo), "--model", f"scripted:{script_path}"]
    result = CliRunner().invoke(app, args)
    return result.exit_code


def outcome(repo: Path) -> tuple[Any, list[str], dict[str, Any]]:
    """The run's view, the commits on its branch, and the last attempt's verify evidence."""
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    view = rt.store.view(row.id)
    phase = view.phases["fix-slug"]
    commits = git.log_commits(repo, view.base_commit, view.branch)
    evidence_path = rt.attempt_dir(row.id, "fix-slug", phase.attempt) / "verify.json"
    return view, commits, json.loads(evidence_path.read_text())


def gate_rules(view: Any) -> list[str]:
    return list(view.phases["fix-slug"].steps["gate"]["rules"])


def collect_only(repo: Path) -> list[str]:
    """What ``pytest --collect-only -q`` prints, one node ID a line."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        check=False,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_a_correct_fix_whose_fail_to_pass_names_inherited_tests_lands(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    ids = collect_only(repo)
    assert F2P in ids and F2P_ALIAS in ids, ids
    plan_path, script_path = write_inputs(
        tmp_path, plan([F2P, F2P_ALIAS]), script({"textkit/slug.py": FIXED})
    )
    assert autopack_run(repo, plan_path, script_path) == 0
    view, commits, evidence = outcome(repo)
    assert view.state is RunState.SUCCEEDED
    assert len(commits) == 1
    assert gate_rules(view) == []
    # every test pytest collects has its own ID in the evidence, inherited ones included
    assert evidence["baseline"]["collected"] == len(ids)
    assert sum(evidence["full_run"]["counts"].values()) == len(ids)
    assert sorted(evidence["delta"]["fixed"]) == sorted([F2P, F2P_ALIAS])
    # the affected tests ran first, then only the rest, in the same process: none twice
    selected = evidence["selected_run"]
    assert selected["continued"] and evidence["rest_run"] is None
    assert selected["collected"] == len(ids)


CHEATS: dict[str, dict[str, str]] = {
    "new root conftest forces passed": {
        "conftest.py": "import pytest\n" + FORCE_PASS_HOOK,
    },
    "hook appended to the existing conftest": {
        "tests/conftest.py": CONFTEST + FORCE_PASS_HOOK,
    },
    "sessionstart exits with 0": {
        "conftest.py": "import os\n\n\ndef pytest_sessionstart(session):\n    os._exit(0)\n",
    },
    "collection hook drops the regressed test": {
        "conftest.py": (
            "def pytest_collection_modifyitems(config, items):\n"
            "    items[:] = [i for i in items if 'digits' not in i.nodeid]\n"
        ),
    },
    "addopts --co in pyproject": {
        "pyproject.toml": PYPROJECT.replace(
            'testpaths = ["tests"]', 'addopts = "--co"\ntestpaths = ["tests"]'
        ),
    },
    "new pytest.ini with -k": {
        "pytest.ini": '[pytest]\npythonpath = .\naddopts = -k "not digits"\n',
    },
    "--deselect in addopts": {
        "pyproject.toml": PYPROJECT.replace(
            'testpaths = ["tests"]', f'addopts = "--deselect {REGRESSED}"\ntestpaths = ["tests"]'
        ),
    },
    "a module that shadows Autopack's report plugin": {
        "autopack_report.py": FORGED_REPORT,
    },
}


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_test_infrastructure_cannot_hide_a_regression(tmp_path: Path, cheat: str) -> None:
    repo = make_project(tmp_path)
    files = {"textkit/slug.py": DROPS_DIGITS, **CHEATS[cheat]}
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script(files))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert view.state is RunState.FAILED
    assert commits == [], "the change must not land"
    rules = gate_rules(view)
    assert "new_failures" in rules, (rules, evidence["delta"])
    assert REGRESSED in evidence["delta"]["newly_failing"]
    # the cheat itself is reported as what it is: a change to the tests' configuration
    changed = evidence["delta"]["config_changed"] + evidence["delta"]["tests_edited"]
    assert changed, evidence["grading"]
    assert {"test_config_changed", "tests_edited"} & set(rules), rules


def test_a_fail_to_pass_test_redefined_as_a_no_op_does_not_land(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    shadow = TEST_SLUG + (
        "\n\nclass TestSlugify(SlugContract):\n"
        "    slug = staticmethod(slugify)\n\n"
        "    def test_strips_punctuation(self):\n"
        "        pass\n"
    )
    plan_path, script_path = write_inputs(
        tmp_path, plan([F2P]), script({"tests/test_slug.py": shadow})
    )
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert {"fail_to_pass_failing", "tests_edited"} <= set(gate_rules(view))
    assert evidence["delta"]["fail_to_pass_failing"] == [F2P]
    assert evidence["grading"]["tests_edited"] == ["tests/test_slug.py"]


def test_source_that_ends_pytest_early_is_not_a_test_run(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    exits = FIXED + "\nimport os\n\nos._exit(0)\n"
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script({"textkit/slug.py": exits}))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert "test_run_errors" in gate_rules(view)
    assert "did not finish" in evidence["delta"]["run_errors"][0]


def test_a_test_already_flaky_at_base_does_not_block(tmp_path: Path) -> None:
    warms = (
        "import os\n"
        + TEST_SLUG
        + "\n\ndef setup_module():\n    os.environ['SLUG_TESTS_RAN'] = '1'\n"
    )
    repo = make_project(
        tmp_path, {"tests/test_cache.py": FLAKY_AT_BASE, "tests/test_slug.py": warms}
    )
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script({"textkit/slug.py": FIXED}))
    assert autopack_run(repo, plan_path, script_path) == 0
    _view, commits, evidence = outcome(repo)
    assert len(commits) == 1
    assert evidence["delta"]["flaky"] == ["tests/test_cache.py::test_cache_warmup"]
    assert evidence["delta"]["newly_failing"] == []


INTERMITTENT_CLOCK = '''\
"""Labels for ticks."""

from pathlib import Path


def label(n: int) -> str:
    calls = Path(__file__).with_name(".calls")
    count = int(calls.read_text()) if calls.exists() else 0
    calls.write_text(str(count + 1))
    if count % 2 == 0:
        n += 1  # every other call is off by one
    return "tick" if n % 2 else "tock"
'''


def test_a_base_stable_test_made_intermittent_blocks(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    files = {"textkit/slug.py": FIXED, "textkit/clock.py": INTERMITTENT_CLOCK}
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script(files))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert "new_failures" in gate_rules(view)
    assert evidence["delta"]["intermittent"] == ["tests/test_clock.py::test_label"]
    assert evidence["delta"]["flaky"] == []


NEW_FLAKY_TEST = """\
from textkit.slug import slugify

RUNS = []


def test_unicode_is_dropped():
    RUNS.append(1)
    assert len(RUNS) % 2 == 1  # passes on the first run only: not a test to trust
    assert slugify("café") == "caf"
"""


def test_a_new_flaky_test_blocks(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    files = {"textkit/slug.py": FIXED, "tests/test_unicode.py": NEW_FLAKY_TEST}
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script(files))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert "tests_unstable" in gate_rules(view)
    assert evidence["delta"]["unstable"] == ["tests/test_unicode.py::test_unicode_is_dropped"]


HANGS = FIXED.replace(
    "    return re.sub",
    '    if "!" in text:\n        import time\n\n        time.sleep(600)\n    return re.sub',
)


def test_a_hang_costs_one_timeout(tmp_path: Path) -> None:
    repo = make_project(tmp_path, {"autopack.toml": "test_timeout_s = 90\n"})
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script({"textkit/slug.py": HANGS}))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert "test_run_errors" in gate_rules(view)
    selected = evidence["selected_run"]
    assert selected["timed_out"] and selected["running"].startswith("tests/test_slug.py::")
    assert evidence["rest_run"] is None, "the suite must not start again to hang a second time"
    assert evidence["selection"]["wall_s"] >= selected["duration_s"]


def test_changed_test_configuration_lands_only_after_approval(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    verbose = PYPROJECT.replace('testpaths = ["tests"]', 'addopts = "-ra"\ntestpaths = ["tests"]')
    files = {"textkit/slug.py": FIXED, "pyproject.toml": verbose}
    plan_path, script_path = write_inputs(tmp_path, plan([F2P]), script(files))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["run", str(plan_path), "--repo", str(repo), "--model", f"scripted:{script_path}"]
    command = [sys.executable, "-c", "from autopack.cli import app; app()", *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        view = wait_for(repo, lambda v: v.phases["fix-slug"].state is PhaseState.AWAITING_APPROVAL)
        assert "test_config_changed" in gate_rules(view)
        assert view.phases["fix-slug"].steps["gate"]["decision"] == "NEEDS_APPROVAL"
        assert git.log_commits(repo, view.base_commit, view.branch) == []
        approved = CliRunner().invoke(
            app, ["approve", view.run_id, "fix-slug", "--repo", str(repo)]
        )
        assert approved.exit_code == 0, approved.output
        assert process.wait(timeout=300) == 0
    finally:
        if process.poll() is None:
            process.kill()
    view, commits, _ = outcome(repo)
    assert view.state is RunState.SUCCEEDED and len(commits) == 1


def wait_for(repo: Path, check: Any) -> Any:
    for _ in range(3000):
        if (repo / ".autopack" / "autopack.db").exists():
            rt = Runtime.open(repo)
            runs = rt.store.list_runs()
            if runs and "fix-slug" in (view := rt.store.view(runs[0].id)).phases and check(view):
                return view
        time.sleep(0.1)
    raise AssertionError("the run never reached the expected state")


SPECIAL_CASE = BUGGY.replace(
    '    return "-".join',
    '    if text == "Hello, World!":\n        return "hello-world"\n    return "-".join',
)
"""Answers the visible test's input, and nothing else."""
HIDDEN_TEST = """\
from textkit.slug import slugify


def test_punctuation_anywhere():
    assert slugify("Good bye!") == "good-bye"
"""


def test_a_conftest_cannot_pass_the_hidden_tests_either(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    (tmp_path / "acceptance").mkdir()
    (tmp_path / "acceptance" / "test_hidden.py").write_text(HIDDEN_TEST)
    hidden = [{"source": "acceptance/test_hidden.py", "target": "tests/test_slug_hidden.py"}]
    files = {"textkit/slug.py": SPECIAL_CASE, "conftest.py": "import pytest\n" + FORCE_PASS_HOOK}
    plan_path, script_path = write_inputs(tmp_path, plan([F2P], hidden=hidden), script(files))
    assert autopack_run(repo, plan_path, script_path) == 1
    view, commits, evidence = outcome(repo)
    assert commits == []
    assert "hidden_tests_failing" in gate_rules(view)
    assert evidence["delta"]["hidden_failing"] == [
        "tests/test_slug_hidden.py::test_punctuation_anywhere"
    ]
