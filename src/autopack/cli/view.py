"""Rich renderings of runs: the live view during ``autopack run`` and the status tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autopack.events import Event
from autopack.projection import RunView
from autopack.states import PhaseState, RunState
from autopack.store import RunRow, Store

STATE_STYLE = {
    PhaseState.QUEUED: "dim",
    PhaseState.BUILDING: "cyan",
    PhaseState.VERIFYING: "cyan",
    PhaseState.AUDITING: "cyan",
    PhaseState.GATING: "cyan",
    PhaseState.AWAITING_APPROVAL: "bold yellow",
    PhaseState.COMPLETE: "green",
    PhaseState.FAILED: "bold red",
    PhaseState.SKIPPED: "yellow",
    RunState.RUNNING: "cyan",
    RunState.SUCCEEDED: "bold green",
    RunState.FAILED: "bold red",
    RunState.CANCELLED: "yellow",
    RunState.PAUSED: "yellow",
    RunState.QUEUED: "dim",
}


def styled(state: str) -> Text:
    style = next((v for k, v in STATE_STYLE.items() if k.value == state), "")
    return Text(state, style=style)


def run_table(view: RunView) -> Table:
    """Tiers and phases of one run: state, attempt, current step, spend."""
    title = (
        f"{view.run_id}  {view.state.value}  {view.spend.tokens} tokens  ${view.spend.cost_usd:.4f}"
    )
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("tier", "phase", "state", "attempt", "step", "tokens", "cost", "note"):
        table.add_column(column, no_wrap=column != "note")
    for phase in view.phases.values():
        tier = view.plan.tiers[phase.tier].id
        gate = phase.steps.get("gate", {})
        note = phase.reason or "; ".join(gate.get("reasons", []))[:80]
        table.add_row(
            tier,
            phase.id,
            styled(phase.state.value),
            str(phase.attempt or ""),
            phase.step or "",
            str(phase.spend.tokens),
            f"${phase.spend.cost_usd:.4f}",
            note,
        )
    return table


def runs_table(rows: list[RunRow]) -> Table:
    table = Table(title="runs", title_justify="left")
    for column in ("run", "state", "progress", "approvals", "tokens", "cost", "updated", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for row in rows:
        table.add_row(
            row.id,
            styled(row.state),
            f"{row.phases_complete}/{row.phases_total}",
            str(row.pending_approvals or ""),
            str(row.tokens),
            f"${row.cost_usd:.4f}",
            row.updated_at[:19],
            row.reason[:80],
        )
    return table


@contextmanager
def live_run(console: Console, store: Store, run_id: str) -> Iterator[None]:
    """Show the run updating in place on a terminal; one line per phase change otherwise."""
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def redraw(event: Event) -> None:
                if event.run_id == run_id:
                    live.update(Group(run_table(store.view(run_id))))

            store.subscribe(redraw)
            live.update(run_table(store.view(run_id)))
            yield
        return

    def line(event: Event) -> None:
        if event.run_id != run_id:
            return
        text = _event_line(event)
        if text:
            console.print(text, highlight=False)

    store.subscribe(line)
    yield


def _event_line(event: Event) -> str:
    data = event.data
    phase = data.get("phase_id", "")
    if event.type == "phase_started":
        return f"[{event.seq:>4}] {phase}: attempt {data['attempt']} started"
    if event.type == "step_completed" and data["step"] == "gate":
        reasons = "; ".join(data["result"].get("reasons", []))
        return f"[{event.seq:>4}] {phase}: gate {data['result'].get('decision')} {reasons}"
    if event.type == "step_completed" and data["step"] == "commit" and "commit" in data["result"]:
        return f"[{event.seq:>4}] {phase}: landed as {data['result']['commit'][:12]}"
    if event.type in ("phase_failed", "phase_skipped"):
        return f"[{event.seq:>4}] {phase}: {event.type.split('_')[1]}: {data['reason']}"
    if event.type == "run_finished":
        return f"[{event.seq:>4}] run {data['state']}: {data['reason']}"
    return ""
