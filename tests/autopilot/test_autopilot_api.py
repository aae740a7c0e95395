"""Autopilots over a real HTTP server and in a real browser: listed, shown iteration by
iteration with links to their runs, and a waiting plan answered with an ``operate`` key
(a ``read`` key is refused, 403, and changes nothing), while the autopilot waits in its
own process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from test_autopilot import journal, project
from test_autopilot import status as pilot_status
from test_autopilot_approval import (
    DEADLINE_S,
    autopilot_process,
    two_plans,
    wait_until,
    waiting_at,
)

from autopack.api import ApiConfig, create_app
from autopack.store.keys import create_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from web_helpers import CHROMIUM, CHROMIUM_ARGS, LiveServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WAIT_MS = DEADLINE_S * 1000


def keys(app: object) -> dict[str, dict[str, str]]:
    engine = app.state.ctx.rt.store.engine  # type: ignore[attr-defined]
    found = {}
    for name, scope in (("reader", "read"), ("operator", "operate")):
        _, secret = create_key(engine, name, scope)
        found[scope] = {"Authorization": f"Bearer {secret}"}
    return found


def test_the_api_lists_autopilots_and_answers_a_waiting_plan(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    app = create_app(ApiConfig(repo=repo, executor=False))
    key = keys(app)
    with LiveServer(app) as server, autopilot_process(repo, model) as pilot:
        url = server.url
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        assert httpx.get(f"{url}/autopilots").status_code == 401
        listed = httpx.get(f"{url}/autopilots", headers=key["read"])
        assert listed.status_code == 200, listed.text
        assert [(a["id"], a["state"]) for a in listed.json()["autopilots"]] == [
            (pilot_id, "AWAITING_APPROVAL")
        ]
        detail = httpx.get(f"{url}/autopilots/{pilot_id}", headers=key["read"]).json()
        (first,) = detail["iterations"]
        assert first["approval"] == "waiting" and first["run_id"] == f"autopilot-{pilot_id}-1"
        assert first["plan_path"].endswith("plan-1.yaml") and first["gaps"] == 2
        before = journal(repo)
        forbidden = httpx.post(f"{url}/autopilots/{pilot_id}/approve", headers=key["read"])
        assert forbidden.status_code == 403, forbidden.text
        assert (
            httpx.post(f"{url}/autopilots/{pilot_id}/stop", headers=key["read"]).status_code == 403
        )
        assert journal(repo) == before  # the read key changed nothing
        no_note = httpx.post(f"{url}/autopilots/{pilot_id}/reject", headers=key["operate"], json={})
        assert no_note.status_code == 422
        approved = httpx.post(
            f"{url}/autopilots/{pilot_id}/approve", headers=key["operate"], json={"note": "ok"}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json() == {"id": pilot_id, "state": "RUNNING", "iteration": 1}
        twice = httpx.post(f"{url}/autopilots/{pilot_id}/approve", headers=key["operate"])
        assert twice.status_code == 409 and "no plan waiting" in twice.text
        wait_until(waiting_at(repo, 2), pilot)
        rejected = httpx.post(
            f"{url}/autopilots/{pilot_id}/reject", headers=key["operate"], json={"note": "enough"}
        )
        assert rejected.status_code == 200, rejected.text
        out, _ = pilot.communicate(timeout=DEADLINE_S)
        assert pilot.returncode == 1 and "plan 2 rejected by operator: enough" in out
        detail = httpx.get(f"{url}/autopilots/{pilot_id}", headers=key["read"]).json()
        assert httpx.get(f"{url}/autopilots/0badc0de", headers=key["read"]).status_code == 404
    one, two = detail["iterations"]
    assert (one["approval"], one["decided_by"], one["note"], one["run_state"]) == (
        "approved", "operator", "ok", "SUCCEEDED"
    )  # fmt: skip
    assert (one["closed"], one["landed"]) == (1, True)
    assert (two["approval"], two["decided_by"], two["note"]) == ("rejected", "operator", "enough")
    assert detail["state"] == "STOPPED" and detail["runs"] == [f"autopilot-{pilot_id}-1"]
    assert pilot_status(repo, pilot_id)["stop_reason"] == "stopped by a person"


@pytest.mark.browser
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_the_dashboard_shows_iterations_and_answers_the_plan(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    repo = project(tmp_path / "calc")
    model = two_plans(tmp_path)
    app = create_app(ApiConfig(repo=repo, executor=False))
    secret = keys(app)["operate"]["Authorization"].removeprefix("Bearer ")
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        LiveServer(app) as server,
        sync_playwright() as pw,
        autopilot_process(repo, model) as pilot,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#key", secret)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("operator (operate)")
        page.click("text=Autopilots")
        pilot_id = wait_until(waiting_at(repo, 1), pilot)
        row = page.locator(f'tr[data-autopilot="{pilot_id}"]')
        expect(row).to_be_visible(timeout=WAIT_MS)
        row.locator("a").click()
        state = page.locator("#autopilot-state .badge")
        expect(state).to_have_attribute("data-state", "AWAITING_APPROVAL", timeout=WAIT_MS)
        expect(page.locator('tr[data-iteration="1"] .plan')).to_contain_text("auto-approval is off")
        page.screenshot(path=str(ARTIFACTS / "dashboard-autopilot-waiting.png"), full_page=True)
        page.fill("#plan-note", "looks right")
        page.click("#plan-approve")
        run_link = page.locator('tr[data-iteration="1"] .run-link')
        expect(run_link).to_have_text(f"autopilot-{pilot_id}-1", timeout=WAIT_MS)
        expect(page.locator('tr[data-iteration="2"]')).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#plan-reject")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator('tr[data-iteration="1"] .plan')).to_contain_text("approved by operator")
        page.fill("#plan-note", "enough for today")
        page.click("#plan-reject")
        expect(page.locator("#stop-reason")).to_contain_text(
            "rejected by operator: enough for today", timeout=WAIT_MS
        )
        expect(state).to_have_attribute("data-state", "STOPPED")
        page.screenshot(path=str(ARTIFACTS / "dashboard-autopilot.png"), full_page=True)
        run_link.click()
        expect(page.locator("#run-state .badge")).to_have_attribute("data-state", "SUCCEEDED")
        browser.close()
        pilot.communicate(timeout=DEADLINE_S)
    assert pilot.returncode == 1
