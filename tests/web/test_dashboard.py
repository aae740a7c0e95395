"""The dashboard in a real headless Chromium while a scripted demo run executes.

Every phase of the run needs approval (risk threshold below any score), so the test sees
a phase wait, approves it with the button, and watches it become COMPLETE and the run go
on, all without reloading the page. A screenshot is kept under artifacts/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
import yaml
from web_helpers import CHROMIUM, CHROMIUM_ARGS, LiveServer

from autopack.api import ApiConfig, create_app
from autopack.cli.demo import demo_files, prepare_demo_repo
from autopack.store.keys import create_key

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WAIT_MS = 90_000


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    repo = prepare_demo_repo(tmp_path / "repo")
    config = repo / "autopack.toml"
    text = config.read_text().replace("# risk_threshold = 60", "risk_threshold = -1")
    config.write_text(text)
    return repo


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_watch_a_run_live_and_approve_a_waiting_phase(demo_repo: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    _, plan_path, script = demo_files()
    app = create_app(ApiConfig(repo=demo_repo, model_override=f"scripted:{script}"))
    _, secret = create_key(app.state.ctx.rt.store.engine, "operator", "operate")
    auth = {"Authorization": f"Bearer {secret}"}
    plan = yaml.safe_load(plan_path.read_text())
    plan["run"]["id"] = "browser-run"
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#key", secret)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("operator (operate)")
        page.evaluate("window.__sameDocument = true")

        started = httpx.post(f"{server.url}/runs/start", headers=auth, content=json.dumps(plan))
        assert started.status_code == 201, started.text
        row = page.locator('tr[data-run="browser-run"]')
        expect(row).to_be_visible(timeout=WAIT_MS)  # appeared live, via /events

        row.locator("a").click()
        slugify = page.locator('.phase[data-phase="slugify"]')
        expect(slugify).to_have_attribute("data-state", "AWAITING_APPROVAL", timeout=WAIT_MS)
        slugify.click()
        expect(page.locator("#approve")).to_be_visible()
        expect(page.locator(".reasons")).to_contain_text("score")
        page.screenshot(path=str(ARTIFACTS / "dashboard-phase-waiting.png"), full_page=True)
        page.click("#approve")
        state = page.locator("#phase-state .badge")
        expect(state).to_have_attribute("data-state", "COMPLETE", timeout=WAIT_MS)
        expect(page.locator("#proof")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))

        page.click("text=← browser-run")
        nxt = page.locator('.phase[data-phase="word-frequencies"]')
        expect(nxt).not_to_have_attribute("data-state", "QUEUED", timeout=WAIT_MS)
        expect(page.locator('.phase[data-phase="slugify"]')).to_have_attribute(
            "data-state", "COMPLETE"
        )
        page.screenshot(path=str(ARTIFACTS / "dashboard-run.png"), full_page=True)
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
        httpx.post(f"{server.url}/runs/browser-run/cancel", headers=auth)
        browser.close()
    assert app.state.ctx.rt.store.view("browser-run").phases["slugify"].commit


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_the_ledgers_page_lists_entries_searches_and_is_live(demo_repo: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from autopack.ledger.entries import Ledger, render_ledger

    ledger = Ledger.empty("build")
    ledger.append("2026-12-01", "Slugs for titles", {"Status": "done", "Changed": "slug.py"})
    ledger.append("2026-12-02", "Word counts", {"Status": "done", "Changed": "words.py"})
    (demo_repo / "docs").mkdir(exist_ok=True)
    (demo_repo / "docs" / "BUILD_HISTORY.md").write_text(render_ledger(ledger))
    app = create_app(ApiConfig(repo=demo_repo))
    _, secret = create_key(app.state.ctx.rt.store.engine, "reader", "read")
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#key", secret)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("reader (read)")
        page.goto(f"{server.url}/#/ledgers")
        entries = page.locator("section.entry")
        expect(entries).to_have_count(2)
        expect(page.locator('[data-entry="BUILD-002"]')).to_contain_text("Word counts")
        expect(page.locator("#main")).not_to_contain_text("[object")
        expect(page.locator("#live")).to_have_text("live")
        page.fill("#ledger-q", "slugs")
        page.press("#ledger-q", "Enter")
        expect(entries).to_have_count(1)
        expect(page.locator('[data-entry="BUILD-001"]')).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "dashboard-ledgers.png"), full_page=True)
        browser.close()


LONG_TEST = "tests/test_{i:03d}_a_module_with_a_long_name.py::test_a_case_whose_name_goes_on[{p}]"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_the_attempt_page_collapses_long_lists_and_fits_the_viewport(tmp_path: Path) -> None:
    """An attempt with 150 newly failing tests (long ids), a reason and a diff line with
    no space to break at: the lists are collapsed, and no card is wider than 1280 px."""
    from playwright.sync_api import expect, sync_playwright

    from autopack.engine.create import create_run
    from autopack.events import PhaseStarted, StepCompleted, StepStarted
    from autopack.plan import Plan

    repo = prepare_demo_repo(tmp_path / "repo")
    app = create_app(ApiConfig(repo=repo, executor=False))
    rt = app.state.ctx.rt
    _, secret = create_key(rt.store.engine, "reader", "read")
    phase = {"id": "wide", "goal": "Many tests", "scope": {"paths": ["src/**"]}}
    plan = Plan.model_validate({"run": {"goal": "Wide"}, "tiers": [{"id": "t", "phases": [phase]}]})
    run_id = create_run(rt, plan, plan_source="test", run_id="wide-run")
    failing = [LONG_TEST.format(i=i, p="x" * 60) for i in range(150)]
    folder = rt.attempt_dir(run_id, "wide", 1)
    delta = {"newly_failing": failing, "new_tests": failing[:40]}
    (folder / "verify.json").write_text(json.dumps({"passed": False, "delta": delta}))
    (folder / "changes.diff").write_text("diff --git a/src/a.py b/src/a.py\n+" + "y" * 900 + "\n")
    reason = "RETRY: tests that passed before now fail: " + ",".join(failing[:20])
    gate = {"decision": "RETRY", "reasons": [reason], "proof_hash": "ab" * 32}
    rt.store.append(run_id, PhaseStarted(phase_id="wide", attempt=1, base_commit="0" * 40))
    rt.store.append(run_id, StepStarted(phase_id="wide", attempt=1, step="gate"))
    rt.store.append(run_id, StepCompleted(phase_id="wide", attempt=1, step="gate", result=gate))
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#key", secret)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("reader (read)")
        page.goto(f"{server.url}/#/runs/{run_id}/phases/wide/1")
        lists = page.locator(".delta details")
        expect(lists).to_have_count(2)
        expect(lists.first.locator("summary")).to_contain_text("Newly failing (150)")
        expect(lists.first.locator("li").first).not_to_be_visible()  # collapsed
        widths = page.evaluate(
            "[...document.querySelectorAll('.card, pre.diff')]"
            ".map(e => e.getBoundingClientRect().right)"
        )
        assert widths and max(widths) <= 1280, widths
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        lists.first.locator("summary").click()
        expect(lists.first.locator("li").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "dashboard-wide-attempt.png"), full_page=True)
        browser.close()


def test_a_phase_page_lists_the_builders_mcp_calls(demo_repo: Path) -> None:
    """The build step's MCP calls, as the engine records them, on the phase's page."""
    from playwright.sync_api import expect, sync_playwright

    from autopack.engine.create import create_run
    from autopack.events import PhaseStarted, StepCompleted
    from autopack.plan import load_plan

    _, plan_path, _ = demo_files()
    app = create_app(ApiConfig(repo=demo_repo, executor=False))
    rt = app.state.ctx.rt
    plan = load_plan(plan_path)
    phase_id = plan.phase_ids()[0]
    run_id = create_run(rt, plan, plan_source="test")
    rt.store.append(run_id, PhaseStarted(phase_id=phase_id, attempt=1, base_commit="0" * 40))
    calls = [
        {"server": "notes", "tool": "lookup", "is_error": False, "detail": "",
         "duration_ms": 12, "replayed": False},
        {"server": "notes", "tool": "hang", "is_error": True,
         "detail": "no answer within 2 s; the server was stopped", "duration_ms": 2004,
         "replayed": False},
    ]  # fmt: skip
    build = StepCompleted(phase_id=phase_id, attempt=1, step="build", result={"mcp_calls": calls})
    rt.store.append(run_id, build)
    _, secret = create_key(rt.store.engine, "reader", "read")
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#key", secret)
        page.click("button[type=submit]")
        expect(page.locator("#who")).to_have_text("reader (read)")
        page.goto(f"{server.url}/#/runs/{run_id}/phases/{phase_id}")
        card = page.locator("#mcp-calls li")
        expect(card).to_have_count(2)
        expect(card.nth(0)).to_contain_text("notes.lookup ok 12 ms")
        expect(card.nth(1)).to_contain_text("notes.hang error: no answer within 2 s")
        browser.close()
