"""The pull request's text, read in a minute: the run's goal and state, one table row per
phase (what changed, tests against the baseline, the gate's decision, the audit, spend,
proof), the phases that wait for the reviewer, then the details folded away.

Everything comes from the run's projected state and the repository: a landed phase's
change is its commit (``git diff --numstat``), a waiting phase's is its attempt's diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopack.forge.clients import CommitVerdict
from autopack.gate.proof import NOTES_REF
from autopack.projection import PhaseView, RunView, Spend
from autopack.states import PhaseState
from autopack.workspace import git

MARKER = "<!-- autopack-run:{run_id} -->"
"""First line of every body Autopack writes: which run the pull request shows."""
FILES_LISTED = 10
BODY_LIMIT = 60_000
"""Characters of text before the details are left out (GitHub takes 65,536)."""
SHOW_HINT = "`autopack show RUN PHASE` gives each phase's evidence."


@dataclass(frozen=True)
class PhaseChange:
    """One phase as the reviewer sees it."""

    phase: PhaseView
    goal: str
    files: list[tuple[str, int, int]]

    @property
    def gate(self) -> dict[str, Any]:
        return self.phase.steps.get("gate") or {}

    @property
    def decision(self) -> str:
        return str(self.gate.get("decision", "")) or "-"


def numstat(text: str) -> list[tuple[str, int, int]]:
    """(path, added, removed) per line of ``git --numstat`` output (binary files as 0/0)."""
    files = []
    for line in text.splitlines():
        added, removed, path = [*line.split("\t", 2), "", ""][:3]
        if path:
            files.append(
                (
                    path,
                    int(added) if added.isdigit() else 0,
                    int(removed or 0) if removed.isdigit() else 0,
                )
            )
    return files


def phase_files(repo: Path, run_dir: Path, phase: PhaseView) -> list[tuple[str, int, int]]:
    if phase.commit:
        out = git.run_git(
            repo, "diff", "--numstat", "--no-renames", f"{phase.commit}^", phase.commit
        )
        return numstat(out.stdout)
    diff = run_dir / "phases" / phase.id / str(phase.attempt) / "changes.diff"
    if phase.attempt == 0 or not diff.is_file():
        return []
    text = diff.read_text(encoding="utf-8", errors="replace")
    out = git.run_git(repo, "apply", "--numstat", "-", input_text=text)
    return numstat(out.stdout) if out.returncode == 0 else []


def collect(view: RunView, repo: Path, run_dir: Path) -> list[PhaseChange]:
    return [
        PhaseChange(phase, view.plan.phase(phase.id).goal, phase_files(repo, run_dir, phase))
        for phase in sorted(view.phases.values(), key=lambda p: p.position)
    ]


def _spend(spend: Spend) -> str:
    return f"${spend.cost_usd:.4f}, {spend.tokens:,} tokens, {spend.model_calls} calls"


def _tests(phase: PhaseView) -> str:
    counts = (phase.steps.get("verify") or {}).get("counts") or {}
    now, base = counts.get("full") or counts.get("selected") or {}, counts.get("baseline") or {}
    if not now and not base:
        return "not run"
    parts = []
    for outcome in dict.fromkeys([*base, *now]):
        before, after = int(base.get(outcome, 0)), int(now.get(outcome, 0))
        if before or after:
            parts.append(f"{outcome} {before}→{after}" if before != after else f"{outcome} {after}")
    return ", ".join(parts)


def _changed(files: list[tuple[str, int, int]]) -> str:
    if not files:
        return "none"
    added, removed = sum(f[1] for f in files), sum(f[2] for f in files)
    return f"{len(files)} file(s) +{added} -{removed}"


def _audit(phase: PhaseView) -> str:
    return str((phase.steps.get("audit") or {}).get("verdict", "")) or "-"


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def title(view: RunView) -> str:
    return _short(f"Autopack: {view.plan.run.goal}", 120)


def render(view: RunView, changes: list[PhaseChange]) -> str:
    landed = sum(1 for c in changes if c.phase.state is PhaseState.COMPLETE)
    lines = [
        MARKER.format(run_id=view.run_id),
        f"**Goal:** {_short(view.plan.run.goal, 400)}",
        "",
        f"Run `{view.run_id}` is **{view.state.value}**: {landed} of {len(changes)} phases "
        f"landed; spend {_spend(view.spend)}."
        + (
            f" {_short(view.reason, 300)}"
            if view.reason and view.state.value != "SUCCEEDED"
            else ""
        ),
        "",
        "| phase | state | changed | tests (baseline→now) | gate | audit | spend | proof |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in changes:
        p = c.phase
        proof = f"`{p.proof_hash[:12]}`" if p.proof_hash else "-"
        tries = f" ({p.attempt} attempts)" if p.attempt > 1 else ""
        lines.append(
            f"| `{p.id}` | {p.state.value}{tries} | {_changed(c.files)} | {_tests(p)} | "
            f"**{c.decision}** | {_audit(p)} | ${p.spend.cost_usd:.4f} | {proof} |"
        )
    lines += _waiting(view, changes)
    details = ["", "<details><summary>Per phase: files, gate reasons, audit, attempts</summary>"]
    for c in changes:
        details += _details(c)
    details += ["", "</details>"]
    if sum(len(line) + 1 for line in lines + details) > BODY_LIMIT:
        details = ["", f"Per-phase details left out (over the forge's limit): {SHOW_HINT}"]
    return "\n".join([*lines, *details, "", *_proofs(view)]) + "\n"


def _waiting(view: RunView, changes: list[PhaseChange]) -> list[str]:
    waiting = [c for c in changes if c.phase.state is PhaseState.AWAITING_APPROVAL]
    if not waiting:
        return []
    lines = ["", "### Waiting for your approval", ""]
    for c in waiting:
        reasons = "; ".join(_short(r, 200) for r in c.gate.get("reasons", [])) or "the gate asks"
        lines.append(f"- `{c.phase.id}` (attempt {c.phase.attempt}): {reasons}")
    lines += [
        "",
        "Approve this pull request to land them; request changes to send them back (the "
        "review's text is the Builder's feedback). The author's own approval does not count. "
        f"Applied by `autopack pr {view.run_id} --sync-approvals`.",
    ]
    return lines


def _details(c: PhaseChange) -> list[str]:
    p = c.phase
    lines = ["", f"#### `{p.id}`: {_short(c.goal, 200)}", ""]
    for path, added, removed in c.files[:FILES_LISTED]:
        lines.append(f"- `{path}` +{added} -{removed}")
    if len(c.files) > FILES_LISTED:
        lines.append(f"- … and {len(c.files) - FILES_LISTED} more files")
    lines.append(f"- gate: **{c.decision}**")
    lines += [f"  - {_short(r, 300)}" for r in c.gate.get("reasons", [])]
    audit = p.steps.get("audit") or {}
    if audit:
        lines.append(f"- audit: {_audit(p)}: {_short(audit.get('summary', ''), 300)}")
    for earlier in p.attempts:
        gate = (earlier.get("steps") or {}).get("gate") or {}
        decision = str(gate.get("decision", "-"))
        reasons = "; ".join(
            _short(str(r).removeprefix(f"{decision}: "), 150) for r in gate.get("reasons", [])
        )
        lines.append(f"- attempt {earlier['attempt']}: {decision} ({reasons})")
    if p.approval:
        lines.append(
            f"- approved by {p.approval.get('by', '?')}: {_short(p.approval.get('note', ''))}"
        )
    lines.append(f"- spend: {_spend(p.spend)}")
    if p.commit:
        lines.append(f"- commit {p.commit} proof `{p.proof_hash}`")
    return lines


def _proofs(view: RunView) -> list[str]:
    return [
        f"Proofs: every phase commit carries `Autopack-Proof` trailers and a git note under "
        f"`{NOTES_REF}` (pushed with this branch). Check them: "
        f"`git fetch origin {NOTES_REF}:{NOTES_REF} {view.branch}:{view.branch} && "
        f"autopack verify-proof {view.run_id} --base {view.base_commit[:12]}`.",
    ]


def verdicts(view: RunView, changes: list[PhaseChange], head: str) -> list[CommitVerdict]:
    """One verdict per landed phase's commit, and one for the head when it is no phase's."""
    found = []
    for c in changes:
        p = c.phase
        if not p.commit:
            continue
        approved = f", approved by {p.approval.get('by', '?')}" if p.approval else ""
        summary = "\n".join(
            [
                f"Phase `{p.id}`: {_short(c.goal, 300)}",
                f"Gate: **{c.decision}**{approved}",
                *[f"- {_short(r, 300)}" for r in c.gate.get("reasons", [])],
                f"Tests (baseline→now): {_tests(p)}; audit: {_audit(p)}",
                f"Proof: `{p.proof_hash}`",
            ]
        )
        found.append(
            CommitVerdict(
                sha=p.commit,
                conclusion="success" if p.state is PhaseState.COMPLETE else "neutral",
                title=f"{p.id}: {c.decision}{approved} · proof {p.proof_hash[:12]}",
                summary=summary,
                proof_hash=p.proof_hash,
            )
        )
    if head not in {v.sha for v in found}:
        found.append(_run_verdict(view, changes, head))
    return found


def _run_verdict(view: RunView, changes: list[PhaseChange], head: str) -> CommitVerdict:
    state = view.state.value
    conclusion = {"SUCCEEDED": "success", "FAILED": "failure"}.get(state, "neutral")
    rows = [f"- `{c.phase.id}`: {c.phase.state.value}, gate {c.decision}" for c in changes]
    return CommitVerdict(
        sha=head,
        conclusion=conclusion,
        title=f"run {view.run_id}: {state} · last proof {view.last_proof_hash[:12] or '-'}",
        summary="\n".join(
            [f"Run `{view.run_id}`: {state}", *rows, f"Last proof: `{view.last_proof_hash or '-'}`"]
        ),
        proof_hash=view.last_proof_hash,
    )
