"""The gate: each default policy rule, overrides, and the itemised risk score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autopack.gate import GateEvidence, PolicyError, decide, load_policy, score_risk
from autopack.gate.risk import RiskReport
from autopack.verify import CheckResult, TestDelta, TestRun, VerifyEvidence

TEST_EDIT = """\
diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,2 +1,2 @@
 def test_add():
-    assert add(2, 3) == 5
+    assert True
"""

CI_EDIT = """\
diff --git a/.github/workflows/ci.yml b/.github/workflows/ci.yml
--- a/.github/workflows/ci.yml
+++ b/.github/workflows/ci.yml
@@ -1 +1 @@
-run: pytest
+run: true
"""

NEW_DEP = """\
diff --git a/requirements.txt b/requirements.txt
--- a/requirements.txt
+++ b/requirements.txt
@@ -1 +1,2 @@
 pyyaml>=6
+leftpad==1.0
"""


def verified(**delta: list[str]) -> VerifyEvidence:
    run = TestRun(command="python -m pytest", kind="pytest", exit_code=0)
    return VerifyEvidence(
        command=run.command,
        kind="pytest",
        base_tree="b" * 40,
        delta=TestDelta(**delta),
        baseline=run,
        baseline_cached=True,
        selection={"strategy": "none", "full_suite_required": True},
        full_run=run,
    )


def evidence(**changes: Any) -> GateEvidence:
    fields: dict[str, Any] = dict(
        apply_ok=True,
        edits_report={},
        verify=verified(),
        checks=[CheckResult("compile", True)],
        risk=score_risk("", ["calc.py"]),
        audit={"verdict": "approve", "issues": [], "summary": "fine"},
        approved=False,
    )
    fields.update(changes)
    return GateEvidence(**fields)


POLICY = load_policy()


def test_clean_evidence_passes() -> None:
    decision = decide(evidence(), POLICY)
    assert decision.decision == "PASS"
    assert decision.rules == []


@pytest.mark.parametrize(
    ("changes", "rule", "expected"),
    [
        ({"apply_ok": False}, "apply_failed", "RETRY"),
        ({"verify": verified(newly_failing=["t.py::a"])}, "new_failures", "RETRY"),
        ({"verify": verified(fail_to_pass_failing=["t.py::b"])}, "fail_to_pass_failing", "RETRY"),
        ({"verify": verified(collection_errors=["t.py"])}, "collection_errors", "RETRY"),
        ({"verify": verified(run_errors=["timed out"])}, "test_run_errors", "RETRY"),
        ({"checks": [CheckResult("compile", False, "x.py: bad")]}, "checks_failed", "RETRY"),
        ({"audit": {"verdict": "reject", "summary": "wrong"}}, "audit_reject", "RETRY"),
        (
            {"audit": {"verdict": "request_changes", "summary": "m"}},
            "audit_request_changes",
            "RETRY",
        ),
        ({"risk": score_risk(TEST_EDIT, [])}, "tests_edited", "NEEDS_APPROVAL"),
        (
            {"risk": score_risk(CI_EDIT, [], protected=[".github/**"])},
            "protected_path",
            "NEEDS_APPROVAL",
        ),
        ({"risk": RiskReport(95)}, "risk_above_threshold", "NEEDS_APPROVAL"),
    ],
)
def test_each_default_rule(changes: dict[str, Any], rule: str, expected: str) -> None:
    decision = decide(evidence(**changes), POLICY)
    assert decision.decision == expected
    assert rule in decision.rules
    assert decision.reasons and decision.reasons[0].startswith(expected)


def test_the_flaky_test_does_not_fail_the_gate() -> None:
    assert decide(evidence(verify=verified(flaky=["t.py::x"])), POLICY).decision == "PASS"


def test_approval_lifts_approval_rules_but_not_failures() -> None:
    risky = evidence(risk=score_risk(CI_EDIT, [], protected=[".github/**"]), approved=True)
    assert decide(risky, POLICY).decision == "PASS"
    failing = evidence(verify=verified(newly_failing=["t.py::a"]), approved=True)
    assert decide(failing, POLICY).decision == "RETRY"


def test_failing_tests_are_retried_before_a_person_is_asked() -> None:
    both = evidence(verify=verified(newly_failing=["t.py::a"]), risk=score_risk(TEST_EDIT, []))
    decision = decide(both, POLICY)
    assert decision.decision == "RETRY"
    assert decision.rules == ["new_failures", "tests_edited"]


def test_an_override_from_autopack_toml_changes_the_decision() -> None:
    import tomllib

    toml = tomllib.loads(
        """
        [gate]
        risk_threshold = 10
        [gate.rules.tests_edited]
        decision = "PASS"
        [gate.rules.audit_request_changes]
        decision = "NEEDS_APPROVAL"
        """
    )
    policy = load_policy(toml["gate"])
    assert decide(evidence(risk=RiskReport(35)), policy).decision == "NEEDS_APPROVAL"
    edited = score_risk(TEST_EDIT, [])
    assert (
        decide(
            evidence(risk=edited), load_policy({"rules": {"tests_edited": {"decision": "PASS"}}})
        ).decision
        == "PASS"
    )
    audit = {"verdict": "request_changes", "summary": "naming"}
    assert decide(evidence(audit=audit), policy).decision == "NEEDS_APPROVAL"


def test_an_override_with_an_unknown_rule_or_decision_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown gate rule"):
        load_policy({"rules": {"no_such_rule": {"decision": "PASS"}}})
    with pytest.raises(PolicyError, match="unknown decision"):
        load_policy({"rules": {"tests_edited": {"decision": "MAYBE"}}})


def test_risk_is_itemised() -> None:
    policy = load_policy()
    report = score_risk(
        TEST_EDIT + CI_EDIT + NEW_DEP,
        ["db/migrations/0002.py"],
        protected=policy.protected_paths,
        sensitive=policy.sensitive_paths,
    )
    kinds = {(item.kind, item.path) for item in report.items}
    assert ("test_edited", "tests/test_calc.py") in kinds
    assert ("protected_path", ".github/workflows/ci.yml") in kinds
    assert ("sensitive_path", "db/migrations/0002.py") in kinds
    assert ("sensitive_path", "requirements.txt") in kinds
    assert ("new_dependency", "requirements.txt") in kinds
    assert report.score == sum(item.points for item in report.items)


def test_adding_a_test_is_not_weakening_one() -> None:
    added = (
        "diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1 @@\n+def test_x(): pass\n"
    )
    assert score_risk(added, []).items == []


def test_approval_lifts_only_rules_that_wait_for_a_person() -> None:
    with pytest.raises(PolicyError, match="unless_approved must be false with decision BLOCK"):
        load_policy({"rules": {"tests_edited": {"decision": "BLOCK", "unless_approved": True}}})
    with pytest.raises(PolicyError, match="unless_approved must be true"):
        load_policy({"rules": {"protected_path": {"unless_approved": False}}})
    blocked = load_policy({"rules": {"tests_edited": {"decision": "BLOCK"}}})
    assert not blocked.rule("tests_edited").unless_approved  # follows the new decision
    edited = evidence(risk=score_risk(TEST_EDIT, []), approved=True)
    assert decide(edited, blocked).decision == "BLOCK"
    approved = decide(edited, POLICY)
    assert approved.decision == "PASS"
    assert approved.reasons == [
        "PASS: approved by a person: existing test files were edited or deleted (they were graded"
        " in their base version; new tests belong in new test files): tests/test_calc.py"
    ]


def test_the_repository_settings_add_protected_paths_and_type_the_gate_table(
    tmp_path: Path,
) -> None:
    from autopack.config import ConfigError, load_settings
    from autopack.gate import policy_for

    (tmp_path / "autopack.toml").write_text(
        'protected_paths = ["deploy/**"]\n[gate]\nruff = true\nrisk_threshold = 70\n'
    )
    settings = load_settings(tmp_path)
    policy = policy_for(settings)
    assert settings.gate.ruff and policy.risk_threshold == 70
    assert {"autopack.toml", ".github/**", "deploy/**"} <= set(policy.protected_paths)
    (tmp_path / "autopack.toml").write_text("[gate]\nruf = true\n")
    with pytest.raises(ConfigError, match=r"gate\.ruf"):
        load_settings(tmp_path)


def test_a_protected_directory_counts_as_the_path_policy_reads_it() -> None:
    report = score_risk("", ["deploy/prod.yml"], protected=["deploy"])
    assert report.paths_of("protected_path") == ["deploy/prod.yml"]
    assert decide(evidence(risk=report), POLICY).decision == "NEEDS_APPROVAL"
