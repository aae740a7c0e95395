"""Delta semantics on a fixture repository, against a real baseline run in the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autopack.verify import (
    BaselineUnusable,
    MemoryBaselineCache,
    TestRun,
    VerifyEvidence,
    VerifySettings,
    compute_delta,
    detect_test_command,
    run_tests,
    verify_attempt,
)
from autopack.verify.delta import run_errors
from autopack.workspace.runner import make_sandbox

# Third-party plugins installed here are irrelevant to the fixture and slow to load.
FAST = VerifySettings(env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})


def attempt(
    project: Any,
    changed: list[str],
    *,
    fail_to_pass: tuple[str, ...] = (),
    cache: MemoryBaselineCache | None = None,
    settings: VerifySettings = FAST,
    command: str = "python -m pytest",
) -> VerifyEvidence:
    repo, tree, checkout = project
    return verify_attempt(
        repo,
        base_tree=tree,
        command=command,
        fail_to_pass=fail_to_pass,
        changed_files=changed,
        sandbox=make_sandbox(),
        cache=cache or MemoryBaselineCache(),
        base_checkout=checkout,
        settings=settings,
    )


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    path.write_text(path.read_text().replace(old, new))


def test_preexisting_failures_do_not_block(project: Any) -> None:
    repo = project.repo
    edit(repo, "calc.py", "raise NotImplementedError", "return a / b")
    evidence = attempt(project, ["calc.py"], fail_to_pass=("tests/test_calc.py::test_div",))
    assert evidence.passed, evidence.to_dict()
    assert evidence.delta.still_failing == ["tests/test_calc.py::test_preexisting_failure"]
    assert evidence.delta.fixed == ["tests/test_calc.py::test_div"]
    assert evidence.full_run is not None


def test_a_broken_passing_test_blocks(project: Any) -> None:
    repo = project.repo
    edit(repo, "calc.py", "return a + b", "return a - b")
    evidence = attempt(project, ["calc.py"])
    assert not evidence.passed
    assert evidence.delta.newly_failing == ["tests/test_calc.py::test_add"]
    assert evidence.delta.flaky == []


@pytest.mark.parametrize(
    "test_id",
    ["tests/test_calc.py::test_div", "tests/test_calc.py::test_not_written"],
    ids=["skipped", "missing"],
)
def test_skipped_or_missing_fail_to_pass_counts_as_failing(project: Any, test_id: str) -> None:
    repo = project.repo
    edit(repo, "calc.py", "raise NotImplementedError", "import pytest\n    pytest.skip('later')")
    evidence = attempt(project, ["calc.py"], fail_to_pass=(test_id,))
    assert not evidence.passed
    assert evidence.delta.fail_to_pass_failing == [test_id]


def test_an_edited_test_file_is_graded_in_its_base_version(project: Any) -> None:
    repo = project.repo
    edit(repo, "calc.py", "return a + b", "return a - b")
    edit(repo, "tests/test_calc.py", "def test_add():", "def test_add():\n    return")
    edit(repo, "tests/test_calc.py", "def test_div():", "def test_div():\n    return")
    test_div = "tests/test_calc.py::test_div"
    evidence = attempt(project, ["calc.py", "tests/test_calc.py"], fail_to_pass=(test_div,))
    assert evidence.delta.fail_to_pass_failing == [test_div]
    assert evidence.delta.tests_edited == ["tests/test_calc.py"]
    # the failing fail_to_pass test ran first and failed the attempt: the rest is unrun
    assert "tests/test_calc.py::test_add" in evidence.delta.not_run
    assert not evidence.passed
    assert "return\n" in (repo / "tests/test_calc.py").read_text(), "the attempt is left as it was"
    evidence = attempt(project, ["calc.py", "tests/test_calc.py"])
    # an edited test failing in its base version is a person's call (the gate's), not a
    # proven regression: it stops nothing, and it is reported as such
    assert evidence.delta.edited_failing == ["tests/test_calc.py::test_add"]
    assert evidence.delta.not_run == []


def test_a_test_the_change_makes_flaky_is_a_regression(project: Any) -> None:
    repo = project.repo
    (repo / "flaky_trigger").write_text("fail once")
    evidence = attempt(project, ["flaky_trigger"])
    # it passed a rerun, but on the base tree it never fails: no excuse
    assert evidence.delta.intermittent == ["tests/test_geo.py::test_flaky_once"]
    assert evidence.delta.newly_failing == ["tests/test_geo.py::test_flaky_once"]
    assert evidence.delta.flaky == []
    assert not evidence.passed


def test_a_collection_error_blocks(project: Any) -> None:
    repo = project.repo
    (repo / "tests" / "test_new.py").write_text("import not_a_module\n\ndef test_x():\n    pass\n")
    evidence = attempt(project, ["tests/test_new.py"])
    assert not evidence.passed
    assert evidence.delta.collection_errors == ["tests/test_new.py"]
    # the selected run (the new file) decided it: the rest of the suite was not started
    assert evidence.selected_run is not None and evidence.rest_run is None


def test_the_baseline_runs_once_per_tree_and_command(project: Any) -> None:
    cache = MemoryBaselineCache()
    first = attempt(project, [], cache=cache)
    second = attempt(project, [], cache=cache)
    assert not first.baseline_cached
    assert second.baseline_cached
    assert len(cache.entries) == 1


def test_affected_tests_run_first_and_a_regression_stops_there(
    project: Any,
) -> None:
    repo = project.repo
    edit(repo, "geo.py", "return w * h", "return w + h")
    evidence = attempt(project, ["geo.py"])
    assert not evidence.passed
    assert evidence.delta.newly_failing == ["tests/test_geo.py::test_area"]
    assert evidence.full_run is None, "the full suite is not needed to know this fails"
    assert evidence.selected_run is not None
    assert set(evidence.selected_run.outcomes) == {"tests/test_geo.py::test_area"}
    assert evidence.selection["selected_count"] == 1
    assert evidence.selection["total_count"] == 6


def test_a_command_naming_its_test_folder_runs_only_the_affected_tests(project: Any) -> None:
    edit(project.repo, "geo.py", "return w * h", "return w + h")
    evidence = attempt(project, ["geo.py"], command="python -m pytest -q tests")
    assert evidence.full_run is None
    assert evidence.selected_run is not None
    assert set(evidence.selected_run.outcomes) == {"tests/test_geo.py::test_area"}
    assert evidence.delta.newly_failing == ["tests/test_geo.py::test_area"]


def test_known_fail_to_pass_tests_run_alone_not_their_whole_file(project: Any) -> None:
    edit(project.repo, "geo.py", "return w * h", "return w + h")
    div = "tests/test_calc.py::test_div"
    evidence = attempt(project, ["geo.py"], fail_to_pass=(div,))
    run = evidence.selected_run
    assert run is not None
    assert set(run.outcomes) | set(run.not_run) == {"tests/test_geo.py::test_area", div}


def test_no_flaky_rerun_when_fail_to_pass_already_blocks(project: Any) -> None:
    edit(project.repo, "geo.py", "return w * h", "return w + h")
    div = "tests/test_calc.py::test_div"
    blocked = attempt(project, ["geo.py"], fail_to_pass=(div,))
    assert blocked.delta.fail_to_pass_failing == [div]
    # it ran first and failed the attempt: the regression after it is not even run
    assert blocked.delta.not_run == ["tests/test_geo.py::test_area"]
    assert blocked.selection["rerun_time_s"] == 0
    # Without the fail_to_pass verdict, the reruns decide and do run.
    assert attempt(project, ["geo.py"]).delta.not_rerun == []


def test_a_clean_selection_is_confirmed_by_the_full_suite(project: Any) -> None:
    repo = project.repo
    edit(repo, "geo.py", "return w * h", "return h * w")
    evidence = attempt(project, ["geo.py"])
    assert evidence.passed
    assert evidence.selected_run is not None and evidence.full_run is not None


def test_a_command_without_per_test_results_is_judged_by_exit_status(
    project: Any,
) -> None:
    repo, tree, checkout = project
    (repo / "check.sh").write_text("grep -q 'a + b' calc.py\n")
    common = dict(
        base_tree=tree,
        command="sh check.sh",
        changed_files=["calc.py"],
        sandbox=make_sandbox(),
        cache=MemoryBaselineCache(),
        base_checkout=checkout,
        settings=FAST,
    )
    # the base tree has no check.sh: its one pseudo-test fails at base, which is no
    # baseline at all (any attempt would pass against it) ...
    with pytest.raises(BaselineUnusable, match="has no per-test results"):
        verify_attempt(repo, fail_to_pass=(), **common)  # type: ignore[arg-type]
    # ... unless the phase is there to make the command pass
    evidence = verify_attempt(repo, fail_to_pass=("<exit status>",), **common)  # type: ignore[arg-type]
    assert evidence.kind == "exit_status"
    assert evidence.delta.fixed == ["<exit status>"]
    assert evidence.passed


def test_detect_test_command(tmp_path: Path) -> None:
    assert detect_test_command(tmp_path) is None
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    assert detect_test_command(tmp_path) == "python -m pytest"


def test_a_run_that_executes_no_test_never_passes(project: Any) -> None:
    run = run_tests(make_sandbox(), project.repo, "python -m pytest --co", env=FAST.env)
    assert run.collected == 6 and run.outcomes == {}
    assert run_errors(run) == ["no test ran (exit status 0, 6 collected)"]


def test_every_baseline_test_is_accounted_for() -> None:
    ran = dict.fromkeys(["a.py::t", "b.py::t"], "passed")
    base = TestRun("python -m pytest", "pytest", 0, outcomes=ran)
    run = TestRun("python -m pytest", "pytest", 0, outcomes={"c.py::t": "passed"})
    missing = compute_delta(base, run, [])
    assert missing.missing == ["a.py::t", "b.py::t"] and missing.blocking
    deleted = compute_delta(base, run, [], deleted_files=["a.py", "b.py"])
    assert deleted.deleted == ["a.py::t", "b.py::t"] and not deleted.blocking
