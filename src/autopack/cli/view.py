"""Rich renderings of runs: the live view during ``autopack run`` and the status tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the tables are drawn without loading the store (fast `runs`, `status`)
    from autopack.events import Event
    from autopack.projection import RunView
    from autopack.rows import RunRow, RunStatus
    from autopack.store import Store

STATE_STYLE = {
    "QUEUED": "dim",
    "BUILDING": "cyan",
    "VERIFYING": "cyan",
    "AUDITING": "cyan",
    "GATING": "cyan",
    "AWAITING_APPROVAL": "bold yellow",
    "COMPLETE": "green",
    "FAILED": "bold red",
    "SKIPPED": "yellow",
    "RUNNING": "cyan",
    "SUCCEEDED": "bold green",
    "CANCELLED": "yellow",
    "PAUSED": "yellow",
}
"""Run and phase states (``autopack.states``) by name."""


def styled(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


@dataclass(frozen=True)
class PhaseLine:
    """One phase as the run table shows it."""

    id: str
    tier: int
    state: str
    attempt: int
    step: str
    tokens: int
    cost_usd: float
    note: str
    """Why it failed, or its gate's reasons."""


@dataclass(frozen=True)
class RunLines:
    """A run as the run table shows it: from a projected view or from the stored rows."""

    run_id: str
    state: str
    tokens: int
    cost_usd: float
    tiers: list[str]
    phases: list[PhaseLine]
    input_tokens: int = 0
    cache_read_tokens: int = 0
    """Part of ``input_tokens`` read from a provider's prompt cache."""
    cache_write_tokens: int = 0
    """Part of ``input_tokens`` written to a provider's prompt cache."""

    @classmethod
    def of_view(cls, view: RunView) -> RunLines:
        phases = [
            PhaseLine(
                p.id,
                p.tier,
                p.state.value,
                p.attempt,
                p.step or "",
                p.spend.tokens,
                p.spend.cost_usd,
                p.reason or "; ".join(p.steps.get("gate", {}).get("reasons", [])),
            )
            for p in view.phases.values()
        ]
        tiers = [tier.id for tier in view.plan.tiers]
        spend = view.spend
        return cls(
            view.run_id,
            view.state.value,
            spend.tokens,
            spend.cost_usd,
            tiers,
            phases,
            spend.input_tokens,
            spend.cache_read_tokens,
            spend.cache_write_tokens,
        )

    @classmethod
    def of_status(cls, status: RunStatus) -> RunLines:
        phases = [
            PhaseLine(
                p.phase_id,
                p.tier,
                p.state,
                p.attempt,
                p.step or "",
                p.tokens,
                p.cost_usd,
                p.reason or "; ".join(status.gate_reasons.get(p.phase_id, [])),
            )
            for p in status.phases
        ]
        run = status.run
        prompt, read, written = status.input_tokens
        return cls(
            run.id, run.state, run.tokens, run.cost_usd, status.tiers, phases, prompt, read, written
        )


def _table(title: str) -> Table:
    """A compact table for 80 columns: no outer box, one space between columns."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))


def _whole(table: Table, header: str, values: list[str]) -> None:
    """A column that is never cut: as wide as its longest value (ids, costs, states)."""
    width = max([len(header), *map(len, values)])
    table.add_column(header, no_wrap=True, min_width=width)


def _notes(notes: list[tuple[str, str]]) -> Text:
    """Long reasons under the table, one per line, whole (a table cell would wrap them)."""
    text = Text()
    for name, note in notes:
        text.append(f"{name}: ", style="bold")
        text.append(note + "\n")
    return text


def run_table(run: RunView | RunLines) -> RenderableType:
    """Tiers and phases of one run: state, attempt, current step, spend; notes below."""
    lines = run if isinstance(run, RunLines) else RunLines.of_view(run)
    title = f"{lines.run_id}  {lines.state}  {lines.tokens} tokens  ${lines.cost_usd:.4f}"
    read, written = lines.cache_read_tokens, lines.cache_write_tokens
    if read or written:
        uncached = lines.input_tokens - read - written
        title += f"\ninput: {uncached} uncached, cache {read} read, {written} written"
    phases = lines.phases
    table = _table(title)
    _whole(table, "tier / phase", [f"  {p.id}" for p in phases] + lines.tiers)
    _whole(table, "state", [p.state for p in phases])
    table.add_column("try", no_wrap=True, justify="right")
    table.add_column("step", no_wrap=True, min_width=6)
    _whole(table, "tokens", [str(p.tokens) for p in phases])
    _whole(table, "cost", [f"${p.cost_usd:.4f}" for p in phases])
    notes: list[tuple[str, str]] = []
    tier = -1
    for phase in phases:
        if phase.tier != tier:  # a tier is a heading row: one column less to fit in 80
            tier = phase.tier
            table.add_row(Text(lines.tiers[tier], style="bold"))
        table.add_row(
            f"  {phase.id}",
            styled(phase.state),
            str(phase.attempt or ""),
            phase.step,
            str(phase.tokens),
            f"${phase.cost_usd:.4f}",
        )
        if phase.note:
            notes.append((phase.id, phase.note))
    return Group(table, _notes(notes)) if notes else table


def runs_table(rows: list[RunRow]) -> RenderableType:
    """Runs, newest first: ids and costs whole; reasons and waiting approvals below."""
    table = _table("runs")
    _whole(table, "run", [row.id for row in rows])
    _whole(table, "state", [row.state for row in rows])
    table.add_column("done", no_wrap=True, justify="right")
    _whole(table, "tokens", [str(row.tokens) for row in rows])
    _whole(table, "cost", [f"${row.cost_usd:.4f}" for row in rows])
    table.add_column("updated", no_wrap=True)
    notes: list[tuple[str, str]] = []
    for row in rows:
        table.add_row(
            row.id,
            styled(row.state),
            f"{row.phases_complete}/{row.phases_total}",
            str(row.tokens),
            f"${row.cost_usd:.4f}",
            row.updated_at[5:16].replace("T", " "),
        )
        waiting = f"{row.pending_approvals} phase(s) await approval" * bool(row.pending_approvals)
        note = "; ".join(part for part in (waiting, row.reason) if part)
        if note:
            notes.append((row.id, note))
    return Group(table, _notes(notes)) if notes else table


@contextmanager
def live_run(console: Console, store: Store, run_id: str) -> Iterator[None]:
    """Show the run updating in place on a terminal; one line per phase change otherwise."""
    if console.is_terminal:
        from rich.live import Live

        retrying: dict[str, str] = {}
        """Per phase, the retry its model call waits for (until a call goes through)."""

        def frame() -> RenderableType:
            table = run_table(store.view(run_id))
            if not retrying:
                return table
            return Group(table, Text("\n".join(retrying.values()), style="yellow"))

        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def redraw(event: Event) -> None:
                if event.run_id != run_id:
                    return
                if event.type == "model_retrying":
                    retrying[event.phase_id or ""] = retry_line(event.data)
                elif event.type in ("model_called", "phase_failed", "run_finished"):
                    retrying.pop(event.phase_id or "", None)
                live.update(frame())

            store.subscribe(redraw)
            live.update(frame())
            yield
        return

    def line(event: Event) -> None:
        if event.run_id != run_id:
            return
        text = _event_line(event)
        if text:
            console.print(text, soft_wrap=True)  # one greppable line per event

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
    if event.type == "mcp_called":
        outcome = f"error: {data['detail']}" if data["is_error"] else "ok"
        return f"[{event.seq:>4}] {phase}: MCP {data['server']}.{data['tool']} {outcome}"
    if event.type in ("phase_failed", "phase_skipped"):
        return f"[{event.seq:>4}] {phase}: {event.type.split('_')[1]}: {data['reason']}"
    if event.type == "run_finished":
        return f"[{event.seq:>4}] run {data['state']}: {data['reason']}"
    if event.type == "model_retrying":
        return f"[{event.seq:>4}] {retry_line(data)}"
    return ""


def retry_line(data: dict[str, object]) -> str:
    """Which call failed and why, which retry this is and how long it waits first."""
    phase = f"{data['phase_id']}: " if data.get("phase_id") else ""
    return (
        f"{phase}{data['role']} call to {data['model']} failed ({data['reason']}); "
        f"retry {data['retry']}/{data['max_retries']} in {float(str(data['delay_s'])):.3g} s"
    )
