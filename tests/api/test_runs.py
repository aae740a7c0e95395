"""Runs through the API: start, list, read, approve, reject, cancel; errors keep one shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_helpers import plan, wait_for_approval
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autopack.plan import PlanError, parse_plan_text

BAD_PLAN = """{
  "run": {"goal": "Broken"},
  "tiers": [
    {"id": "t1", "phases": [
      {"id": "a", "goal": "A", "scope": {"paths": ["/etc/passwd"]}},
      {"id": "b", "goal": "B", "scope": {"paths": ["x.py"]}, "depends_on": ["zzz"],
       "colour": "red"}
    ]}
  ]
}
"""

Keys = dict[str, dict[str, str]]


def test_a_bad_plan_gets_422_with_the_cli_issues_and_nothing_is_stored(
    client: TestClient, keys: Keys
) -> None:
    response = client.post(
        "/runs/start",
        content=BAD_PLAN,
        headers={**keys["operate"], "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_plan"
    with pytest.raises(PlanError) as cli:
        parse_plan_text(BAD_PLAN, source="request")
    assert error["details"] == [issue.model_dump() for issue in cli.value.issues]
    assert [(d["line"], d["field"]) for d in error["details"]] == [(7, "tiers[0].phases[1].colour")]
    assert client.get("/runs", headers=keys["read"]).json()["total"] == 0


def test_yaml_plans_and_non_plans_are_validated_the_same_way(
    client: TestClient, keys: Keys
) -> None:
    yaml_plan = (
        "run:\n  goal: from yaml\n  id: y1\ntiers:\n  - id: t\n    phases:\n"
        "      - id: p\n        goal: g\n        scope: {paths: [p.py]}\n"
    )
    headers = {**keys["operate"], "Content-Type": "application/yaml"}
    assert client.post("/runs/start", content=yaml_plan, headers=headers).status_code == 201
    for body in ("[1, 2]", "run: [unclosed", "\xff"):
        response = client.post("/runs/start", content=body.encode("latin-1"), headers=headers)
        assert response.status_code == 422, body
        assert response.json()["error"]["details"][0]["file"] == "request"


def test_runs_are_listed_newest_first_filtered_and_paginated(
    client: TestClient, keys: Keys
) -> None:
    for index in range(5):
        client.post("/runs/start", headers=keys["operate"], json=plan(f"r{index}"))
    client.post("/runs/r0/cancel", headers=keys["operate"])
    page = client.get("/runs?limit=2&offset=0", headers=keys["read"]).json()
    assert page["total"] == 5 and len(page["runs"]) == 2
    rest = client.get("/runs?limit=10&offset=2", headers=keys["read"]).json()["runs"]
    seen = [r["id"] for r in page["runs"] + rest]
    assert sorted(seen) == [f"r{i}" for i in range(5)]
    cancelled = client.get("/runs?state=CANCELLED", headers=keys["read"]).json()
    assert [r["id"] for r in cancelled["runs"]] == ["r0"] and cancelled["total"] == 1
    bad = client.get("/runs?state=BORED", headers=keys["read"])
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "query.state"


def test_a_run_its_progress_and_its_phases(client: TestClient, keys: Keys) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    detail = client.get("/runs/r1", headers=keys["read"]).json()
    assert detail["run"]["goal"] == "Add a greeting"
    assert [p["id"] for t in detail["tiers"] for p in t["phases"]] == ["greet"]
    progress = client.get("/runs/r1/progress", headers=keys["read"]).json()
    assert progress["phases_total"] == 1 and progress["fraction"] == 0
    phase = client.get("/runs/r1/phases/greet", headers=keys["read"]).json()
    assert phase["phase"]["state"] == "QUEUED" and phase["evidence"] is None
    missing = client.get("/runs/nope", headers=keys["read"])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/runs/r1/phases/nope", headers=keys["read"]).status_code == 404


def test_a_waiting_phase_is_listed_and_approved_by_name(
    app: FastAPI, client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    store = app.state.ctx.rt.store
    from autopack.events import RunStarted

    store.append("r1", RunStarted(executor="test"))
    wait_for_approval(store, "r1")
    waiting = client.get("/approvals", headers=keys["read"]).json()
    assert [(a["run_id"], a["phase_id"], a["reasons"]) for a in waiting] == [
        ("r1", "greet", ["risk 72 > 60"])
    ]
    phase = client.get("/runs/r1/phases/greet", headers=keys["read"]).json()
    assert phase["evidence"]["decision"] == "NEEDS_APPROVAL"
    assert phase["evidence"]["proof_hash"] == "ab" * 32
    approved = client.post(
        "/runs/r1/phases/greet/approve", headers=keys["operate"], json={"note": "looks fine"}
    )
    assert approved.status_code == 200
    assert approved.json()["phase_state"] == "GATING"
    granted = [e for e in store.events("r1") if e.type == "approval_granted"]
    assert granted[0].data["by"] == "operate-tester" and granted[0].data["note"] == "looks fine"
    again = client.post("/runs/r1/phases/greet/approve", headers=keys["operate"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_waiting"
    assert client.get("/approvals", headers=keys["read"]).json() == []


def test_rejecting_needs_a_note_and_can_fail_the_phase(
    app: FastAPI, client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    store = app.state.ctx.rt.store
    from autopack.events import RunStarted

    store.append("r1", RunStarted(executor="test"))
    wait_for_approval(store, "r1")
    url = "/runs/r1/phases/greet/reject"
    assert client.post(url, headers=keys["operate"], json={"note": ""}).status_code == 422
    response = client.post(url, headers=keys["operate"], json={"note": "too risky", "fail": True})
    assert response.json()["phase_state"] == "FAILED"
    phase = client.get("/runs/r1/phases/greet", headers=keys["read"]).json()
    assert phase["phase"]["reason"] == "rejected: too risky"


def test_cancel_ends_a_queued_run_at_once_and_an_ended_run_conflicts(
    client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    response = client.post("/runs/r1/cancel", headers=keys["operate"], json={"reason": "not now"})
    assert response.status_code == 202 and response.json()["state"] == "CANCELLED"
    assert client.get("/runs/r1", headers=keys["read"]).json()["run"]["reason"] == "not now"
    again = client.post("/runs/r1/cancel", headers=keys["operate"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_ended"
    dup = client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "run_exists"
    assert client.post("/runs/r1/resume", headers=keys["operate"]).status_code == 503


def test_metrics_count_runs_by_state_and_gate_decisions(
    app: FastAPI, client: TestClient, keys: Keys
) -> None:
    client.post("/runs/start", headers=keys["operate"], json=plan("r1"))
    client.post("/runs/start", headers=keys["operate"], json=plan("r2"))
    client.post("/runs/r2/cancel", headers=keys["operate"])
    from autopack.events import RunStarted

    app.state.ctx.rt.store.append("r1", RunStarted(executor="test"))
    wait_for_approval(app.state.ctx.rt.store, "r1")
    response = client.get("/metrics", headers=keys["read"])
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    assert 'autopack_runs{state="RUNNING"} 1' in lines
    assert 'autopack_runs{state="CANCELLED"} 1' in lines
    assert 'autopack_gate_decisions_total{decision="NEEDS_APPROVAL"} 1' in lines
    assert "# TYPE autopack_phase_duration_seconds histogram" in lines


def test_ledger_entries_are_listed_and_searched(repo: Path, client: TestClient, keys: Keys) -> None:
    docs = repo / "docs"
    docs.mkdir()
    (docs / "BUILD_HISTORY.md").write_text(
        "# Build history\n\n## BUILD-001 | 2026-11-20 | Slugs\n- Status: SUCCEEDED\n"
        "- Changed: slug.py\n- Verified: pytest\n\n"
        "## BUILD-002 | 2026-11-21 | Word counts\n- Status: FAILED\n- Changed: stats.py\n"
        "- Verified: pytest\n"
    )
    (docs / "DEBUG_LOG.md").write_text(
        "# Debug log\n\n## DBG-001 | 2026-11-21 | Hyphens split\n- Symptom: hyphenated words "
        "split\n- Signature: x\n- Root cause: regex\n- Fix: keep hyphens\n- Verified: test\n"
    )
    everything = client.get("/ledgers/entries", headers=keys["read"]).json()
    assert [e["id"] for e in everything["entries"]][:1] in (["BUILD-002"], ["DBG-001"])
    assert everything["total"] == 3
    found = client.get("/ledgers/entries?q=HYPHEN", headers=keys["read"]).json()
    assert [e["id"] for e in found["entries"]] == ["DBG-001"]
    builds = client.get("/ledgers/entries?kind=build", headers=keys["read"]).json()
    assert [e["fields"]["Status"] for e in builds["entries"]] == ["FAILED", "SUCCEEDED"]


def test_memory_search_answers_from_the_keyword_index(client: TestClient, keys: Keys) -> None:
    response = client.get("/memory/search?q=slug&mode=keyword", headers=keys["read"])
    assert response.status_code == 200
    assert json.loads(response.text) == {"hits": []}
