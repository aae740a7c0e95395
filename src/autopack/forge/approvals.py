"""A pull request's reviews answer the phases that wait for approval.

An APPROVED review approves every waiting phase, CHANGES_REQUESTED rejects them with the
review's text as the Builder's feedback, through the engine's commands
(:mod:`autopack.engine.commands`), as ``autopack approve`` and ``reject``, the API and MCP. A review
counts only when its writer is neither the pull request's author nor the token's user and
may write to the repository (anyone may review a public one), when it was submitted after
the phase began to wait, and when it has not answered a phase before (its id is in the
answer's note): an old approval never lands a new change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from autopack.engine import commands
from autopack.events import ApprovalGranted, ApprovalRejected
from autopack.forge.clients import Forge, PullRequest, Review
from autopack.projection import PhaseView
from autopack.states import PhaseState
from autopack.store import Store

ANSWERS = ("APPROVED", "CHANGES_REQUESTED")
NOTE_LIMIT = 4000
"""Characters of a review's text kept as the answer's note (the Builder's feedback)."""
NOTE = re.compile(r"^(GitHub|GitLab) review (\S+) by ")


@dataclass(frozen=True)
class Answered:
    phase_id: str
    review: Review
    approved: bool


@dataclass(frozen=True)
class Ignored:
    review: Review
    why: str


def used_reviews(store: Store, run_id: str) -> set[str]:
    """Ids of the reviews that answered a phase of the run already."""
    used = set()
    for event in store.events(run_id):
        payload = event.payload()
        if isinstance(payload, ApprovalGranted | ApprovalRejected):
            found = NOTE.match(payload.note)
            if found:
                used.add(f"{found[1]}:{found[2]}")
    return used


def _when(text: str) -> datetime:
    """The moment a phase began to wait, to the second: forges time reviews in seconds."""
    moment = datetime.fromisoformat(text).replace(microsecond=0)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _deciding(phase: PhaseView, reviews: list[Review], label: str, used: set[str]) -> Review | None:
    """The latest review that may answer ``phase``."""
    since = _when(phase.awaiting_since) if phase.awaiting_since else None
    fit = [
        r
        for r in reviews
        if f"{label}:{r.id}" not in used
        and (since is None or (r.submitted_at is not None and r.submitted_at >= since))
    ]
    return max(fit, key=lambda r: r.submitted_at or datetime.min.replace(tzinfo=UTC), default=None)


def sync_approvals(
    store: Store, run_id: str, forge: Forge, pull: PullRequest
) -> tuple[list[Answered], list[Ignored]]:
    """Answer the run's waiting phases from the pull request's reviews."""
    view = store.view(run_id)
    waiting = [p for p in view.phases.values() if p.state is PhaseState.AWAITING_APPROVAL]
    if not waiting:
        return [], []
    reviews = [r for r in forge.reviews(pull) if r.state in ANSWERS]
    counted, ignored = _who_may_answer(forge, pull, reviews)
    used = used_reviews(store, run_id)
    answered = []
    for phase in sorted(waiting, key=lambda p: p.position):
        review = _deciding(phase, counted, forge.label, used)
        if review is None:
            continue
        approved = review.state == "APPROVED"
        said = review.body.strip()[:NOTE_LIMIT] or ("approved" if approved else "changes requested")
        note = f"{forge.label} review {review.id} by {review.user} on #{pull.number}: {said}"
        by = f"{forge.label.lower()}:{review.user}"
        try:
            if approved:
                commands.approve(store, run_id, phase.id, by=by, note=note, attempt=phase.attempt)
            else:
                commands.reject(store, run_id, phase.id, by=by, note=note, attempt=phase.attempt)
        except commands.NotWaiting:  # answered meanwhile (the dashboard, the CLI)
            continue
        answered.append(Answered(phase.id, review, approved))
    return answered, ignored


def _who_may_answer(
    forge: Forge, pull: PullRequest, reviews: list[Review]
) -> tuple[list[Review], list[Ignored]]:
    """The reviews whose writers may answer, and the others with why not."""
    own = {pull.author, forge.token_user()}
    counted: list[Review] = []
    ignored: list[Ignored] = []
    allowed: dict[str, bool] = {}
    for review in reviews:
        if review.user in own:
            ignored.append(
                Ignored(review, "written by the pull request's author or the token's user")
            )
            continue
        if review.user not in allowed:
            allowed[review.user] = forge.may_answer(review)
        if allowed[review.user]:
            counted.append(review)
        else:
            ignored.append(Ignored(review, "its writer may not write to the repository"))
    return counted, ignored
