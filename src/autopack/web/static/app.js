// Autopack dashboard: plain DOM, no framework. Every view is a function of API data;
// live updates re-fetch that data when the server sends an event, so what is shown
// is always what the API says, never a client-side guess.
"use strict";

const main = document.getElementById("main");
const ACTIVE = ["BUILDING", "VERIFYING", "AUDITING", "GATING"];
let me = null;          // {key_id, name, scope} of the signed-in key
let stream = null;      // the EventSource of the current page
let generation = 0;     // bumps on navigation, so stale fetches do not repaint
let noteDraft = "";     // the approval note being typed
let poll = null;        // the timer of a page that follows another process's log

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const badge = (state) => h("span", { class: `badge s-${state}`, "data-state": state }, state.replace("_", " "));
const money = (usd) => `$${Number(usd).toFixed(usd >= 1 ? 2 : 4)}`;
const count = (n) => Number(n).toLocaleString();
const ago = (iso) => {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
};
const canOperate = () => me && (me.scope === "operate" || me.scope === "admin");

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  if (response.status === 401) throw new Unauthorized();
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.error ? body.error.message : response.statusText);
  return body;
}

function setLive(on) {
  const el = document.getElementById("live");
  el.textContent = on ? "live" : "offline";
  el.classList.toggle("on", on);
}

// Re-render at most every 150 ms however many events arrive.
function throttled(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    setTimeout(() => { queued = false; fn(); }, 150);
  };
}

function listen(url, onEvent) {
  if (stream) stream.close();
  stream = new EventSource(url);
  stream.onopen = () => setLive(true);
  stream.onerror = () => setLive(false);
  stream.onmessage = (message) => onEvent(JSON.parse(message.data));
}

// -- sign in ---------------------------------------------------------------------

function showSignIn() {
  main.replaceChildren(document.getElementById("signin").content.cloneNode(true));
  document.getElementById("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = document.getElementById("key").value.trim();
    try {
      await api("/auth/session", { method: "POST", headers: { Authorization: `Bearer ${key}` } });
      route();
    } catch (err) {
      document.getElementById("signin-error").textContent =
        err instanceof Unauthorized ? "That key is unknown or revoked." : err.message;
    }
  });
}

// -- runs list -------------------------------------------------------------------

async function runsPage(gen) {
  const [list, waiting] = await Promise.all([api("/runs?limit=100"), api("/approvals")]);
  if (gen !== generation) return;
  const by = (state) => list.runs.filter((r) => r.state === state).length;
  const strip = h("div", { class: "strip" },
    h("div", { class: "stat RUNNING" }, h("b", { id: "count-running" }, by("RUNNING")), "running"),
    h("div", { class: "stat WAITING" }, h("b", { id: "count-waiting" }, waiting.length), "waiting for you"),
    h("div", { class: "stat FAILED" }, h("b", {}, by("FAILED")), "failed"),
    h("div", { class: "stat SUCCEEDED" }, h("b", {}, by("SUCCEEDED")), "succeeded"),
    h("div", { class: "stat" }, h("b", {}, list.total), "runs in all"));
  const approvals = waiting.length === 0 ? null : h("section", { class: "card waiting" },
    h("strong", {}, "Waiting for your approval"),
    h("ul", {}, waiting.map((a) => h("li", {},
      h("a", { href: `#/runs/${a.run_id}/phases/${a.phase_id}` }, `${a.run_id} / ${a.phase_id}`),
      ` — ${a.goal} `, h("span", { class: "muted" }, `(${a.risk} risk, ${ago(a.waiting_since)})`)))));
  const rows = list.runs.map((r) => h("tr", { class: r.pending_approvals ? "wait" : "", "data-run": r.id },
    h("td", {}, badge(r.state)),
    h("td", {}, h("a", { href: `#/runs/${r.id}` }, r.id), h("div", { class: "muted" }, r.goal)),
    h("td", {}, h("div", { class: "bar", title: `${r.phases_complete}/${r.phases_total}` },
      h("span", { style: `width:${r.phases_total ? (100 * r.phases_complete) / r.phases_total : 0}%` })),
      h("div", { class: "muted" }, `${r.phases_complete}/${r.phases_total} phases`)),
    h("td", {}, r.pending_approvals ? h("b", {}, `${r.pending_approvals} waiting`) : ""),
    h("td", { class: "mono" }, money(r.cost_usd), h("div", { class: "muted" }, `${count(r.tokens)} tok`)),
    h("td", { class: "muted" }, ago(r.updated_at))));
  main.replaceChildren(strip, approvals || "",
    rows.length ? h("table", {}, h("thead", {}, h("tr", {},
      ["State", "Run", "Progress", "Approvals", "Cost", "Updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
      : h("p", { class: "card muted" }, "No runs yet. Start one with `autopack run plan.yaml` or POST /runs/start."));
}

// -- run page --------------------------------------------------------------------

function budgetBar(label, used, cap, fmt) {
  const pct = cap ? Math.min(100, (100 * used) / cap) : 0;
  return h("div", {},
    h("div", {}, `${label}: `, h("b", {}, fmt(used)), cap ? ` of ${fmt(cap)}` : " (no cap)"),
    h("div", { class: `bar budget ${pct > 85 ? "high" : ""}` }, h("span", { style: `width:${pct}%` })));
}

function costChart(phases) {
  const width = 600, row = 26, left = 150, height = row * phases.length + 10;
  const max = Math.max(1, ...phases.map((p) => p.tokens));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Tokens and cost per phase");
  phases.forEach((p, i) => {
    const y = 5 + i * row, w = ((width - left - 130) * p.tokens) / max;
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", 0); label.setAttribute("y", y + 15); label.setAttribute("font-size", "12");
    label.textContent = p.id;
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    bar.setAttribute("x", left); bar.setAttribute("y", y + 3); bar.setAttribute("height", 16);
    bar.setAttribute("width", Math.max(1, w)); bar.setAttribute("rx", 3);
    bar.setAttribute("fill", p.state === "FAILED" ? "#cf222e" : "#0b69d4");
    const value = document.createElementNS(svg.namespaceURI, "text");
    value.setAttribute("x", left + Math.max(1, w) + 6); value.setAttribute("y", y + 15);
    value.setAttribute("font-size", "12"); value.setAttribute("fill", "#687083");
    value.textContent = `${count(p.tokens)} tok · ${money(p.cost_usd)}`;
    svg.append(label, bar, value);
  });
  return h("div", { class: "chart" }, svg);
}

function phaseCard(runId, p) {
  const step = ACTIVE.includes(p.state) && p.step ? ` · ${p.step}` : "";
  return h("a", { class: "phase", href: `#/runs/${runId}/phases/${p.id}`, "data-phase": p.id, "data-state": p.state },
    h("div", { class: "id" }, p.id, " ", badge(p.state)),
    h("div", {}, p.goal),
    h("div", { class: "meta" },
      `attempt ${p.attempt}${step}`, p.decision ? ` · gate ${p.decision}` : "",
      ` · ${count(p.tokens)} tok · ${money(p.cost_usd)}`),
    p.reason ? h("div", { class: "meta error" }, p.reason) : "");
}

function cached(d) {
  return d.cached_tokens ? ` (${count(d.cached_tokens)} read from cache, ${count(d.uncached_tokens)} uncached)` : "";
}

async function runAction(runId, action) {
  try { await api(`/runs/${runId}/${action}`, { method: "POST", body: "{}" }); }
  catch (err) { alert(err.message); }
}

async function runPage(gen, runId) {
  const detail = await api(`/runs/${runId}`);
  if (gen !== generation) return;
  const r = detail.run, phases = detail.tiers.flatMap((t) => t.phases);
  const ended = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(r.state);
  const actions = canOperate() ? h("div", { class: "actions" },
    !ended ? h("button", { class: "danger", onclick: () => runAction(runId, "cancel") }, "Cancel") : "",
    r.state !== "SUCCEEDED" && !detail.executing ? h("button", { onclick: () => runAction(runId, "resume") }, "Resume") : "") : "";
  const b = detail.budget;
  main.replaceChildren(
    h("div", { class: "head" },
      h("div", {}, h("h1", {}, r.id, " ", h("span", { id: "run-state" }, badge(r.state))),
        h("div", {}, r.goal),
        h("div", { class: "muted" }, `branch ${r.branch} · ${r.phases_complete}/${r.phases_total} phases · updated ${ago(r.updated_at)}`),
        r.reason ? h("div", { class: ended && r.state !== "SUCCEEDED" ? "error" : "muted" }, r.reason) : ""),
      actions),
    h("div", { class: "budgets card" },
      budgetBar("Tokens", b.used.tokens, b.caps.tokens, count),
      budgetBar("Cost", b.used.cost_usd, b.caps.cost_usd, money),
      budgetBar("Model calls", b.used.model_calls, b.caps.model_calls, count)),
    h("h2", {}, "Timeline"),
    h("div", { class: "timeline" }, detail.tiers.map((t, i) => h("div", { class: "tier" },
      h("h3", {}, `Tier ${i + 1}: ${t.name}`), t.phases.map((p) => phaseCard(runId, p))))),
    h("h2", {}, "Tokens and cost per phase"),
    costChart(phases));
}

// -- phase page ------------------------------------------------------------------

function diffView(text) {
  if (!text) return h("p", { class: "muted" }, "No diff recorded for this attempt.");
  return h("pre", { class: "diff" }, text.split("\n").map((line) => h("div", {
    class: line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : "" }, line || " ")));
}

const DELTA = [["newly_failing", "Newly failing", "bad"], ["fail_to_pass_failing", "Required but failing", "bad"],
  ["collection_errors", "Collection errors", "bad"], ["run_errors", "Run errors", "bad"],
  ["fixed", "Fixed", "good"], ["new_tests", "New tests", "good"], ["still_failing", "Still failing", ""],
  ["removed_tests", "Removed", ""], ["flaky", "Flaky", ""]];

const OPEN_UP_TO = 5;  // a list longer than this starts collapsed: the page stays one screen
let listOpen = new Map();  // what the reader opened or closed survives live re-renders

function deltaView(delta, passed) {
  const lists = DELTA.filter(([key]) => (delta[key] || []).length).map(([key, label, cls]) => {
    const open = listOpen.has(key) ? listOpen.get(key) : delta[key].length <= OPEN_UP_TO;
    const box = h("details", { class: cls, open, "data-list": key },
      h("summary", {}, `${label} (${delta[key].length})`),
      h("ul", {}, delta[key].map((t) => h("li", { class: "mono" }, t))));
    box.addEventListener("toggle", () => listOpen.set(key, box.open));
    return box;
  });
  const verdict = passed === null ? "Tests did not run." : passed ? "Tests passed." : "Tests failed.";
  return h("div", {}, h("p", {}, verdict), lists.length ? h("div", { class: "delta" }, lists) : h("p", { class: "muted" }, "No test changed outcome."));
}

function approvalBox(runId, phaseId) {
  const note = h("textarea", { id: "note", placeholder: "Note (required to reject; the next attempt sees it)",
    oninput: () => { noteDraft = note.value; } });
  note.value = noteDraft;  // live re-renders must not wipe what is being typed
  const decide = async (action, extra) => {
    try {
      await api(`/runs/${runId}/phases/${phaseId}/${action}`, { method: "POST",
        body: JSON.stringify({ note: note.value, ...extra }) });
    } catch (err) { alert(err.message); }
  };
  return h("section", { class: "card approve-box" },
    h("strong", {}, "This phase waits for your decision"),
    note,
    h("div", { class: "actions" },
      h("button", { id: "approve", class: "primary", onclick: () => decide("approve", {}) }, "Approve"),
      h("button", { id: "reject", onclick: () => decide("reject", { fail: false }) }, "Reject, try again"),
      h("button", { id: "reject-fail", class: "danger", onclick: () => decide("reject", { fail: true }) }, "Reject, fail phase")));
}

async function phasePage(gen, runId, phaseId, attempt) {
  const query = attempt ? `?attempt=${attempt}` : "";
  const d = await api(`/runs/${runId}/phases/${phaseId}${query}`);
  if (gen !== generation) return;
  const p = d.phase, e = d.evidence;
  const waiting = p.state === "AWAITING_APPROVAL" && (!attempt || Number(attempt) === p.attempt);
  main.replaceChildren(
    h("div", {}, h("a", { href: `#/runs/${runId}` }, `← ${runId}`)),
    h("div", { class: "head" }, h("div", {},
      h("h1", {}, p.id, " ", h("span", { id: "phase-state" }, badge(p.state))),
      h("div", {}, p.goal),
      h("div", { class: "muted" }, `${p.risk} risk · ${count(p.tokens)} tok${cached(d)} · ${money(p.cost_usd)}`),
      p.reason ? h("div", { class: "error" }, p.reason) : ""),
      h("div", { class: "actions" }, d.attempts.map((n) => h("a", { href: `#/runs/${runId}/phases/${phaseId}/${n}` },
        h("button", { disabled: e && e.attempt === n }, `attempt ${n}`))))),
    waiting && canOperate() ? approvalBox(runId, phaseId) : "",
    !e ? h("p", { class: "card muted" }, "This phase has not started.") : h("div", {},
      h("div", { class: "grid2" },
        h("section", { class: "card" }, h("h2", {}, "Gate"),
          h("p", {}, e.decision ? badge(e.decision) : h("span", { class: "muted" }, "not decided yet")),
          h("ul", { class: "reasons" }, e.reasons.map((r) => h("li", {}, r))),
          h("div", { class: "muted" }, "proof ", h("span", { class: "mono", id: "proof" }, e.proof_hash || "—"))),
        h("section", { class: "card" }, h("h2", {}, "Test delta"), deltaView(e.test_delta, e.tests_passed))),
      h("section", { class: "card", style: "margin-top:16px" }, h("h2", {}, "Auditor"),
        h("p", {}, e.audit_summary || h("span", { class: "muted" }, "no audit yet")),
        h("ul", { class: "issues" }, e.audit_issues.map((i) => h("li", {},
          i.severity ? h("b", {}, `${i.severity}: `) : "", i.message || i.description || JSON.stringify(i))))),
      mcpCalls(e.steps.build),
      h("h2", {}, "Diff"), diffView(e.diff)));
}

function mcpCalls(build) {
  const calls = (build && build.mcp_calls) || [];
  if (!calls.length) return "";
  return h("section", { class: "card", id: "mcp-calls", style: "margin-top:16px" }, h("h2", {}, "MCP calls"),
    h("ul", {}, calls.map((c) => h("li", {}, h("span", { class: "mono" }, `${c.server}.${c.tool}`), " ",
      c.is_error ? h("span", { class: "error" }, `error: ${c.detail}`) : "ok",
      h("span", { class: "muted" }, ` ${c.duration_ms} ms${c.replayed ? " (replayed)" : ""}`)))));
}

// -- autopilots ------------------------------------------------------------------

async function autopilotsPage(gen) {
  const data = await api("/autopilots?limit=100");
  if (gen !== generation) return;
  const rows = data.autopilots.map((a) => h("tr", { "data-autopilot": a.id, class: a.state === "AWAITING_APPROVAL" ? "wait" : "" },
    h("td", {}, badge(a.state)),
    h("td", {}, h("a", { href: `#/autopilots/${a.id}` }, a.id), h("div", { class: "muted" }, a.branch)),
    h("td", {}, `${a.iteration_count} of ${a.max_iterations}`),
    h("td", {}, a.stop_reason ? `${a.stop_reason}${a.stop_detail ? ` (${a.stop_detail})` : ""}` : ""),
    h("td", { class: "mono" }, money(a.cost_usd), h("div", { class: "muted" }, `${count(a.tokens)} tok`)),
    h("td", { class: "muted" }, ago(a.updated_at))));
  main.replaceChildren(h("h1", {}, "Autopilots"),
    rows.length ? h("table", {}, h("thead", {}, h("tr", {},
      ["State", "Autopilot", "Iterations", "Stopped because", "Cost", "Updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
      : h("p", { class: "card muted" }, "No autopilots yet. Start one with `autopack autopilot`."));
}

function planBox(id) {
  const note = h("textarea", { id: "plan-note", placeholder: "Note (required to reject)",
    oninput: () => { noteDraft = note.value; } });
  note.value = noteDraft;
  const decide = async (action) => {
    try {
      await api(`/autopilots/${id}/${action}`, { method: "POST", body: JSON.stringify({ note: note.value }) });
      noteDraft = "";
      await autopilotPage(generation, id);
    } catch (err) { alert(err.message); }
  };
  return h("section", { class: "card approve-box" },
    h("strong", {}, "This autopilot's plan waits for your decision"),
    note,
    h("div", { class: "actions" },
      h("button", { id: "plan-approve", class: "primary", onclick: () => decide("approve") }, "Approve plan"),
      h("button", { id: "plan-reject", class: "danger", onclick: () => decide("reject") }, "Reject plan")));
}

function iterationRow(it) {
  const plan = it.approval === "approved"
    ? `approved by ${it.decided_by}${it.auto_approved ? " (policy)" : ""}`
    : it.approval === "rejected" ? `rejected by ${it.decided_by}: ${it.note}`
    : it.approval === "waiting" ? `waits: ${it.reasons.join("; ")}` : "drafting";
  return h("tr", { "data-iteration": it.iteration },
    h("td", {}, it.iteration),
    h("td", {}, `${it.gaps} gaps`, h("div", { class: "muted mono" }, it.tip.slice(0, 12))),
    h("td", { class: "plan" }, plan, it.plan_path ? h("div", { class: "muted mono" }, it.plan_path) : ""),
    h("td", {}, it.run_state ? h("a", { href: `#/runs/${it.run_id}`, class: "run-link" }, it.run_id) : it.run_id
      ? h("span", { class: "muted" }, it.run_id) : "", it.run_state ? h("div", {}, badge(it.run_state)) : ""),
    h("td", {}, it.ended ? `${it.closed} closed, ${it.gaps_after} left${it.landed ? "" : " (nothing landed)"}` : "",
      it.detail ? h("div", { class: "error" }, it.detail) : ""),
    h("td", { class: "mono" }, money(it.cost_usd), h("div", { class: "muted" }, `${count(it.tokens)} tok`)));
}

async function autopilotPage(gen, id) {
  const a = await api(`/autopilots/${id}`);
  if (gen !== generation) return;
  const stopped = a.state === "STOPPED";
  const actions = canOperate() && !stopped && !a.stop_requested_by ? h("div", { class: "actions" },
    h("button", { id: "autopilot-stop", class: "danger", onclick: async () => {
      try { await api(`/autopilots/${id}/stop`, { method: "POST", body: "{}" }); await autopilotPage(generation, id); }
      catch (err) { alert(err.message); } } }, "Stop")) : "";
  main.replaceChildren(
    h("div", {}, h("a", { href: "#/autopilots" }, "← autopilots")),
    h("div", { class: "head" },
      h("div", {}, h("h1", {}, `autopilot ${a.id} `, h("span", { id: "autopilot-state" }, badge(a.state))),
        h("div", { class: "muted" }, `branch ${a.branch} · ${a.iteration_count} of ${a.max_iterations} iterations · ${money(a.cost_usd)} · ${count(a.model_calls)} calls · updated ${ago(a.updated_at)}`),
        stopped ? h("div", { id: "stop-reason" }, `${a.stop_reason}${a.stop_detail ? `: ${a.stop_detail}` : ""}`)
          : a.stop_requested_by ? h("div", { class: "muted" }, `stop requested by ${a.stop_requested_by}`) : ""),
      actions),
    a.state === "AWAITING_APPROVAL" && canOperate() ? planBox(a.id) : "",
    h("table", { id: "iterations" }, h("thead", {}, h("tr", {},
      ["#", "Scan", "Plan", "Run", "Progress", "Cost"].map((t) => h("th", {}, t)))),
      h("tbody", {}, a.iterations.map(iterationRow))));
}

// -- ledgers ---------------------------------------------------------------------

async function ledgersPage(gen, q = "", kind = "") {
  const params = new URLSearchParams({ q });
  if (kind) params.set("kind", kind);
  const data = await api(`/ledgers/entries?${params}`);
  if (gen !== generation) return;
  const input = h("input", { id: "ledger-q", type: "search", value: q, placeholder: "Search entries…" });
  const select = h("select", { id: "ledger-kind" }, [["", "All ledgers"], ["build", "BUILD_HISTORY"],
    ["debug", "DEBUG_LOG"], ["decision", "ARCHITECTURE_DECISIONS"]].map(([v, t]) => h("option", { value: v, selected: v === kind }, t)));
  const search = () => ledgersPage(generation, input.value, select.value);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
  select.addEventListener("change", search);
  main.replaceChildren(
    h("h1", {}, "Ledgers"),
    h("div", { class: "search" }, input, select, h("button", { onclick: search }, "Search")),
    h("p", { class: "muted" }, `${data.total} entries`),
    ...data.entries.map((e) => h("section", { class: "card entry", "data-entry": e.id },
      h("strong", {}, `${e.id} · ${e.title}`), h("span", { class: "muted" }, ` ${e.date}`),
      h("pre", {}, e.body.trim()))));
}

// -- routing ---------------------------------------------------------------------

async function route() {
  const gen = ++generation;
  noteDraft = "";
  listOpen = new Map();
  if (stream) { stream.close(); stream = null; setLive(false); }
  if (poll) { clearInterval(poll); poll = null; }
  try {
    me = await api("/auth/whoami");
  } catch (err) {
    if (err instanceof Unauthorized) return showSignIn();
    main.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  document.getElementById("who").textContent = `${me.name} (${me.scope})`;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  let render;
  if (parts[0] === "runs" && parts[2] === "phases" && parts[3]) {
    render = () => phasePage(gen, parts[1], parts[3], parts[4]);
    listen(`/runs/${encodeURIComponent(parts[1])}/events`, throttled(() => render().catch(show)));
  } else if (parts[0] === "runs" && parts[1]) {
    render = () => runPage(gen, parts[1]);
    listen(`/runs/${encodeURIComponent(parts[1])}/events`, throttled(() => render().catch(show)));
  } else if (parts[0] === "autopilots") {
    // An autopilot's log is written by its own process: the page follows it by polling,
    // and by the run events of its iterations.
    render = parts[1] ? () => autopilotPage(gen, parts[1]) : () => autopilotsPage(gen);
    const typing = () => document.activeElement?.id === "plan-note";
    const again = throttled(() => typing() || render().catch(show));
    listen("/events", again);
    poll = setInterval(again, 2000);
  } else if (parts[0] === "ledgers") {
    // Runs that end write ledger entries (tidy_on_finish): the page follows them live.
    render = () => ledgersPage(gen, document.getElementById("ledger-q")?.value || "",
      document.getElementById("ledger-kind")?.value || "");
    const typing = () => document.activeElement?.id === "ledger-q";
    listen("/events", throttled(() => typing() || render().catch(show)));
  } else {
    render = () => runsPage(gen);
    listen("/events", throttled(() => render().catch(show)));
  }
  await render().catch(show);
}

function show(err) {
  if (err instanceof Unauthorized) return showSignIn();
  main.replaceChildren(h("p", { class: "card error" }, err.message));
}

window.addEventListener("hashchange", route);
route();
