"""The Auditor returns one schema-valid verdict; two auditors on high risk, stricter wins."""

from __future__ import annotations

import pytest
from roles_helpers import Calls, make_brief, make_phase, scripted

from autopack.llm.door import ModelDoor
from autopack.llm.errors import MalformedReply
from autopack.roles import audit

DIFF = "--- a/src/app/greet.py\n+++ b/src/app/greet.py\n+def greet(n): return 'hello ' + n\n"


def test_single_auditor_verdict_is_returned_with_its_model(door: ModelDoor, calls: Calls) -> None:
    model = scripted({"p1": {"auditor": [{"verdict": "approve", "summary": "Looks right."}]}})
    result = audit(
        make_brief(),
        diff=DIFF,
        test_delta={},
        risk={},
        door=door,
        models=[model],
        call_counter=calls,
    )
    assert result["verdict"] == "approve"
    assert result["issues"] == []
    assert result["summary"] == "Looks right."
    assert result["auditors"] == [model.spec]


def test_high_risk_uses_two_models_and_the_stricter_verdict_stands(
    door: ModelDoor, calls: Calls
) -> None:
    issue = {"severity": "major", "path": "src/app/greet.py", "line": 1, "message": "no test"}
    lenient = scripted({"p1": {"auditor": [{"verdict": "approve", "summary": "fine"}]}}, "a")
    strict = scripted(
        {
            "p1": {
                "auditor": [{}, {"verdict": "request_changes", "issues": [issue], "summary": "x"}]
            }
        },
        "b",
    )
    brief = make_brief(phase=make_phase(risk="high"))
    result = audit(
        brief,
        diff=DIFF,
        test_delta={},
        risk={},
        door=door,
        models=[lenient, strict],
        call_counter=calls,
    )
    assert result["verdict"] == "request_changes"
    assert result["auditors"] == [lenient.spec, strict.spec]
    assert result["issues"] == [issue]
    assert result["votes"] == {lenient.spec: "approve", strict.spec: "request_changes"}


def test_low_risk_phase_is_reviewed_by_one_auditor(door: ModelDoor, calls: Calls) -> None:
    first = scripted({"p1": {"auditor": [{"verdict": "approve", "summary": "ok"}]}}, "a")
    second = scripted({"p1": {"auditor": [{}, {"verdict": "reject", "summary": "no"}]}}, "b")
    result = audit(
        make_brief(),
        diff=DIFF,
        test_delta={},
        risk={},
        door=door,
        models=[first, second],
        call_counter=calls,
    )
    assert result["verdict"] == "approve"
    assert result["auditors"] == [first.spec]


def test_fenced_json_is_accepted(door: ModelDoor, calls: Calls) -> None:
    reply = '```json\n{"verdict": "reject", "summary": "unsafe", "issues": []}\n```'
    model = scripted({"p1": {"auditor": [reply]}})
    result = audit(
        make_brief(),
        diff=DIFF,
        test_delta={},
        risk={},
        door=door,
        models=[model],
        call_counter=calls,
    )
    assert result["verdict"] == "reject"


def test_a_reply_that_never_validates_is_a_malformed_reply(door: ModelDoor, calls: Calls) -> None:
    bad = '{"verdict": "maybe", "summary": "?"}'
    model = scripted({"p1": {"auditor": [bad, bad, bad]}})
    with pytest.raises(MalformedReply):
        audit(
            make_brief(),
            diff=DIFF,
            test_delta={},
            risk={},
            door=door,
            models=[model],
            call_counter=calls,
        )


def test_high_risk_second_auditor_must_be_a_different_model(door: ModelDoor, calls: Calls) -> None:
    first = scripted({"p1": {"auditor": [{"verdict": "approve", "summary": "ok"}]}}, "a")
    same = scripted({"p1": {"auditor": [{}, {"verdict": "reject", "summary": "no"}]}}, "a")
    other = scripted({"p1": {"auditor": [{}, {"verdict": "approve", "summary": "fine"}]}}, "b")
    brief = make_brief(phase=make_phase(risk="high"))
    result = audit(
        brief,
        diff=DIFF,
        test_delta={},
        risk={},
        door=door,
        models=[first, same, other],
        call_counter=calls,
    )
    assert result["auditors"] == [first.spec, other.spec]
    assert result["verdict"] == "approve"


def test_high_risk_with_one_model_says_so(door: ModelDoor, calls: Calls) -> None:
    model = scripted({"p1": {"auditor": [{"verdict": "approve", "summary": "ok"}]}})
    brief = make_brief(phase=make_phase(risk="high"))
    result = audit(
        brief, diff=DIFF, test_delta={}, risk={}, door=door, models=[model], call_counter=calls
    )
    assert result["auditors"] == [model.spec]
    assert "only one auditor model" in result["summary"]
