"""Test-impact selection: the tests that ran a changed line, else its function, else its file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autopack.verify import MemoryBaselineCache, VerifyEvidence, VerifySettings, verify_attempt
from autopack.verify.impact import function_spans, select_tests
from autopack.workspace.runner import make_sandbox

FAST = VerifySettings(env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})

SHAPES = """\
LIMIT = 10


def clamp(x, low, high):
    if x < low:
        return low
    return min(x, high)


def double(x):
    return 2 * x
"""

TEST_SHAPES = """\
import shapes


def test_clamp_high():
    assert shapes.clamp(5, 0, 3) == 3


def test_clamp_inside():
    assert shapes.clamp(2, 0, 3) == 2


def test_double():
    assert shapes.double(4) == 8
"""

TEST_OTHER = """\
import shapes


def test_limit():
    assert shapes.LIMIT == 10
"""

UNUSED = "def helper():\n    return 1\n"
TEST_UNUSED = "import unused\n\n\ndef test_none():\n    pass\n"


def attempt(
    project: Any, edits: dict[str, tuple[str, str]], command: str = "python -m pytest"
) -> VerifyEvidence:
    for rel, (old, new) in edits.items():
        path = project.repo / rel
        path.write_text(path.read_text().replace(old, new))
    return verify_attempt(
        project.repo,
        base_tree=project.tree,
        command=command,
        fail_to_pass=(),
        changed_files=sorted(edits),
        sandbox=make_sandbox(),
        cache=MemoryBaselineCache(),
        base_checkout=project.checkout,
        settings=FAST,
    )


def selected(evidence: VerifyEvidence) -> set[str]:
    run = evidence.selected_run
    assert run is not None, evidence.to_dict()
    # a clean selection goes on with the rest of the suite in the same process
    # a failing selection stops at its first proven failure: the rest of it is not_run
    ran = run.before_rest if run.continued else [*run.outcomes, *run.not_run]
    return {t.split("::", 1)[1] for t in ran}


def shapes_project(make_project: Callable[[dict[str, str]], Any]) -> Any:
    files = {"shapes.py": SHAPES, "unused.py": UNUSED}
    files |= {"tests/test_shapes.py": TEST_SHAPES, "tests/test_other.py": TEST_OTHER}
    files["tests/test_unused.py"] = TEST_UNUSED
    return make_project(files)


def test_a_changed_line_selects_the_tests_that_ran_it(make_project: Any) -> None:
    project = shapes_project(make_project)
    evidence = attempt(project, {"shapes.py": ("return 2 * x", "return 3 * x")})
    assert selected(evidence) == {"test_double"}
    assert evidence.delta.newly_failing == ["tests/test_shapes.py::test_double"]


def test_a_line_no_test_ran_selects_the_tests_that_ran_its_function(make_project: Any) -> None:
    project = shapes_project(make_project)
    # ``return low`` never ran in the baseline; both clamp tests ran clamp.
    evidence = attempt(project, {"shapes.py": ("return low", "return high")})
    assert selected(evidence) == {"test_clamp_high", "test_clamp_inside"}
    assert evidence.passed  # confirmed by the full suite


def test_a_module_level_line_selects_the_file_s_tests_and_its_importers(
    make_project: Any,
) -> None:
    project = shapes_project(make_project)
    evidence = attempt(project, {"shapes.py": ("LIMIT = 10", "LIMIT = 11")})
    # test_limit never ran a line of shapes.py, but its file imports it.
    assert selected(evidence) == {"test_clamp_high", "test_clamp_inside", "test_double"} | {
        "test_limit"
    }
    assert evidence.delta.newly_failing == ["tests/test_other.py::test_limit"]


def test_a_file_no_test_ran_selects_its_importers_only(make_project: Any) -> None:
    project = shapes_project(make_project)
    evidence = attempt(project, {"unused.py": ("return 1", "return 2")})
    assert selected(evidence) == {"test_none"}


def test_a_file_no_test_ran_falls_back_to_the_import_graph() -> None:
    impact = {
        "strategy": "coverage",
        "tests": ["tests/test_a.py::test_a"],
        "lines": {"a.py": {"2": [0]}},
        "imports": {"files": {"tests/test_b.py": ["b.py", "tests/test_b.py"]}},
    }
    all_tests = ["tests/test_a.py::test_a", "tests/test_b.py::test_b"]
    assert select_tests(impact, {"b.py": {1}}, all_tests) == ["tests/test_b.py::test_b"]
    assert select_tests(impact, {"a.py": {2}}, all_tests) == ["tests/test_a.py::test_a"]


def test_function_spans_include_decorators_and_methods() -> None:
    source = "import f\n\n\nclass K:\n    @f.d\n    def m(self):\n        return 1\n"
    assert function_spans(source) == [(5, 7)]
    assert function_spans("def broken(:\n") == []


def test_the_rest_of_the_suite_sees_the_conftest_fixtures(make_project: Any) -> None:
    """The selection and the rest run in one pytest process; a fixture of a conftest
    loaded for the selection is there for the rest too (a second collection in the same
    session would lose it on pytest 9.1, and a correct fix would fail as a regression)."""
    fixture = "import pytest\n\n\n@pytest.fixture\ndef limit():\n    return 10\n"
    uses = "import shapes\n\n\ndef test_limit(limit):\n    assert shapes.LIMIT == limit\n"
    project = make_project(
        {"shapes.py": SHAPES, "tests/conftest.py": fixture}
        | {"tests/test_shapes.py": TEST_SHAPES, "tests/test_other.py": uses}
    )
    evidence = attempt(project, {"shapes.py": ("return 2 * x", "return x + x")})
    run = evidence.selected_run
    assert run is not None and run.continued, evidence.to_dict()
    assert run.outcomes["tests/test_other.py::test_limit"] == "passed"
    assert evidence.passed, evidence.to_dict()


# A test file whose import needs ``double`` intact: imported after a change that breaks
# ``double``, it fails to collect.
TEST_IMPORTS_DOUBLE = """\
import shapes

assert shapes.double(1) == 2, "imported with a broken double"


def test_limit():
    assert shapes.LIMIT == 10


def test_skipme():
    assert shapes.LIMIT == 10
"""


def test_a_failing_attempt_never_imports_the_rest_of_the_suite(make_project: Any) -> None:
    """The affected tests fail: the attempt stops there, and the test files that hold
    none of them were never imported (the one here would fail to collect if it were)."""
    project = make_project(
        {"shapes.py": SHAPES, "tests/test_shapes.py": TEST_SHAPES}
        | {"tests/test_other.py": TEST_IMPORTS_DOUBLE}
    )
    evidence = attempt(project, {"shapes.py": ("return 2 * x", "return 3 * x")})
    run = evidence.selected_run
    assert run is not None and not run.continued, evidence.to_dict()
    assert evidence.delta.newly_failing == ["tests/test_shapes.py::test_double"]
    assert run.collection_errors == [], evidence.to_dict()
    assert run.collected == 3  # test_shapes.py's three; test_other.py was set aside
    assert not any(t.startswith("tests/test_other.py") for t in run.outcomes)
    assert evidence.rest_run is None and not evidence.passed


def test_the_rest_collected_late_keeps_the_command_s_selection(make_project: Any) -> None:
    """A clean selection goes on with the files set aside during collection; the
    command's own ``-k`` still deselects in them, and every base test is accounted for."""
    project = make_project(
        {"shapes.py": SHAPES, "tests/test_shapes.py": TEST_SHAPES}
        | {"tests/test_other.py": TEST_IMPORTS_DOUBLE}
    )
    command = "python -m pytest -k 'not test_skipme'"
    evidence = attempt(project, {"shapes.py": ("return 2 * x", "return x + x")}, command)
    run = evidence.selected_run
    assert run is not None and run.continued, evidence.to_dict()
    assert run.outcomes["tests/test_other.py::test_limit"] == "passed"
    assert "tests/test_other.py::test_skipme" in run.deselected
    assert "tests/test_other.py::test_skipme" not in run.outcomes
    assert run.collected == 4
    assert evidence.passed, evidence.to_dict()


CLAMP_TESTS = """\
import shapes


def test_clamp_high():
    assert shapes.clamp(5, 0, 3) == 3


def test_clamp_low():
    assert shapes.clamp(-1, 0, 3) == 0


def test_clamp_inside():
    assert shapes.clamp(2, 0, 3) == 2
"""


def test_the_affected_tests_stop_at_the_first_proven_regression(make_project: Any) -> None:
    """A base-passing test fails, and fails each proof rerun: the attempt has failed, so
    the affected tests after it are not run; the evidence names them as unrun, not as
    missing, and the regression as what blocks."""
    project = make_project({"shapes.py": SHAPES, "tests/test_clamp.py": CLAMP_TESTS})
    evidence = attempt(project, {"shapes.py": ("return min(x, high)", "return max(x, high)")})
    run = evidence.selected_run
    assert run is not None and not run.continued, evidence.to_dict()
    first = "tests/test_clamp.py::test_clamp_high"
    assert run.stopped_by == first
    assert evidence.delta.newly_failing == [first]
    assert run.reruns[first] == ["failed", "failed"]  # proven, not a flake
    # test_clamp_low never runs the changed line: not affected, and the rest never ran
    assert evidence.delta.not_run == ["tests/test_clamp.py::test_clamp_inside"]
    assert evidence.delta.missing == [] and not evidence.passed


FLAKY_AFTER_CHANGE = """\
import shapes

CALLS = []


def test_double_once():
    CALLS.append(1)
    assert shapes.double(1) == 2 or len(CALLS) > 1


def test_double_zero():
    assert shapes.double(0) == 0


def test_limit():
    assert shapes.LIMIT == 10
"""


def test_a_test_that_passes_a_proof_rerun_does_not_stop_the_others(make_project: Any) -> None:
    """Failing once, then passing, is no proof: the other affected tests still run (and
    the intermittent failure of a base-stable test still blocks)."""
    project = make_project({"shapes.py": SHAPES, "tests/test_limit.py": FLAKY_AFTER_CHANGE})
    evidence = attempt(project, {"shapes.py": ("return 2 * x", "return 3 * x")})
    run = evidence.selected_run
    assert run is not None and run.stopped_by == "" and run.not_run == [], evidence.to_dict()
    assert run.outcomes["tests/test_limit.py::test_double_zero"] == "passed"
    assert "tests/test_limit.py::test_double_once" in evidence.delta.intermittent
    assert not evidence.passed
