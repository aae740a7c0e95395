"""The transition tables: every illegal move raises; every legal one is reachable by events."""

from __future__ import annotations

import itertools

import pytest

from autopack.events import (
    ApprovalGranted,
    ApprovalRejected,
    Event,
    Payload,
    PhaseFailed,
    PhaseSkipped,
    PhaseStarted,
    RunCreated,
    RunFinished,
    RunPaused,
    RunStarted,
    StepCompleted,
    StepStarted,
)
from autopack.plan import parse_plan_text
from autopack.projection import RunView, apply
from autopack.states import (
    PHASE_TRANSITIONS,
    RUN_TRANSITIONS,
    IllegalTransition,
    PhaseState,
    RunState,
    check_phase_transition,
    check_run_transition,
)

PLAN = parse_plan_text(
    "run: {goal: g}\ntiers:\n  - id: t\n    phases:\n"
    "      - {id: a, goal: g, scope: {paths: [a.py]}}\n"
)
CREATED = RunCreated(
    plan=PLAN.model_dump(mode="json"),
    plan_digest=PLAN.digest(),
    plan_source="p",
    repo="/r",
    base_commit="0" * 40,
    branch="autopack/r",
)


def play(*payloads: Payload) -> RunView:
    view = apply(None, Event.of("r", CREATED).model_copy(update={"seq": 1}))
    for seq, payload in enumerate(payloads, start=2):
        apply(view, Event.of("r", payload).model_copy(update={"seq": seq}))
    return view


START = RunStarted(executor="t")
BUILDING = (START, PhaseStarted(phase_id="a", attempt=1, base_commit="b"))
VERIFYING = (*BUILDING, StepStarted(phase_id="a", attempt=1, step="verify"))
AUDITING = (*VERIFYING, StepStarted(phase_id="a", attempt=1, step="audit"))
GATING = (*AUDITING, StepStarted(phase_id="a", attempt=1, step="gate"))
NEEDS = StepCompleted(phase_id="a", attempt=1, step="gate", result={"decision": "NEEDS_APPROVAL"})
AWAITING = (*GATING, NEEDS)
FAIL = PhaseFailed(phase_id="a", attempt=1, reason="x")
RESUME = (RunFinished(state="FAILED", reason="x"), RunStarted(executor="t", resumed=True))

PHASE_PATHS: dict[tuple[PhaseState, PhaseState], tuple[Payload, ...]] = {
    (PhaseState.QUEUED, PhaseState.BUILDING): BUILDING,
    (PhaseState.QUEUED, PhaseState.SKIPPED): (START, PhaseSkipped(phase_id="a", reason="x")),
    (PhaseState.QUEUED, PhaseState.FAILED): (START, FAIL),
    (PhaseState.BUILDING, PhaseState.VERIFYING): VERIFYING,
    (PhaseState.BUILDING, PhaseState.GATING): (
        *BUILDING,
        StepStarted(phase_id="a", attempt=1, step="gate"),
    ),
    (PhaseState.BUILDING, PhaseState.FAILED): (*BUILDING, FAIL),
    (PhaseState.VERIFYING, PhaseState.AUDITING): AUDITING,
    (PhaseState.VERIFYING, PhaseState.GATING): (
        *VERIFYING,
        StepStarted(phase_id="a", attempt=1, step="gate"),
    ),
    (PhaseState.VERIFYING, PhaseState.FAILED): (*VERIFYING, FAIL),
    (PhaseState.AUDITING, PhaseState.GATING): GATING,
    (PhaseState.AUDITING, PhaseState.FAILED): (*AUDITING, FAIL),
    (PhaseState.GATING, PhaseState.COMPLETE): (
        *GATING,
        StepCompleted(phase_id="a", attempt=1, step="commit", result={"commit": "c"}),
    ),
    (PhaseState.GATING, PhaseState.BUILDING): (
        *GATING,
        PhaseStarted(phase_id="a", attempt=2, base_commit="b"),
    ),
    (PhaseState.GATING, PhaseState.AWAITING_APPROVAL): AWAITING,
    (PhaseState.GATING, PhaseState.FAILED): (
        *GATING,
        StepCompleted(phase_id="a", attempt=1, step="gate", result={"decision": "BLOCK"}),
    ),
    (PhaseState.AWAITING_APPROVAL, PhaseState.GATING): (
        *AWAITING,
        ApprovalGranted(phase_id="a", attempt=1),
    ),
    (PhaseState.AWAITING_APPROVAL, PhaseState.BUILDING): (
        *AWAITING,
        ApprovalRejected(phase_id="a", attempt=1, note="redo"),
        PhaseStarted(phase_id="a", attempt=2, base_commit="b"),
    ),
    (PhaseState.AWAITING_APPROVAL, PhaseState.FAILED): (
        *AWAITING,
        ApprovalRejected(phase_id="a", attempt=1, note="no", fail=True),
    ),
    (PhaseState.FAILED, PhaseState.QUEUED): (START, FAIL, *RESUME),
    (PhaseState.SKIPPED, PhaseState.QUEUED): (
        START,
        PhaseSkipped(phase_id="a", reason="x"),
        *RESUME,
    ),
}

CANCEL = RunFinished(state="CANCELLED", reason="x")
STOPPED_IN = {
    PhaseState.BUILDING: BUILDING,
    PhaseState.VERIFYING: VERIFYING,
    PhaseState.AUDITING: AUDITING,
    PhaseState.GATING: GATING,
    PhaseState.AWAITING_APPROVAL: AWAITING,
}
# A cancelled run stops its phases where they stand; a resume puts them back there.
for _state, _events in STOPPED_IN.items():
    PHASE_PATHS[(_state, PhaseState.CANCELLED)] = (*_events, CANCEL)
    PHASE_PATHS[(PhaseState.CANCELLED, _state)] = (
        *_events,
        CANCEL,
        RunStarted(executor="t", resumed=True),
    )

RUN_PATHS: dict[tuple[RunState, RunState], tuple[Payload, ...]] = {
    (RunState.QUEUED, RunState.RUNNING): (START,),
    (RunState.QUEUED, RunState.CANCELLED): (RunFinished(state="CANCELLED"),),
    (RunState.QUEUED, RunState.FAILED): (RunFinished(state="FAILED"),),
    (RunState.RUNNING, RunState.PAUSED): (START, RunPaused()),
    (RunState.RUNNING, RunState.SUCCEEDED): (START, RunFinished(state="SUCCEEDED")),
    (RunState.RUNNING, RunState.FAILED): (START, RunFinished(state="FAILED")),
    (RunState.RUNNING, RunState.CANCELLED): (START, RunFinished(state="CANCELLED")),
    (RunState.PAUSED, RunState.RUNNING): (START, RunPaused(), START),
    (RunState.PAUSED, RunState.CANCELLED): (START, RunPaused(), RunFinished(state="CANCELLED")),
    (RunState.PAUSED, RunState.FAILED): (START, RunPaused(), RunFinished(state="FAILED")),
    (RunState.FAILED, RunState.RUNNING): (START, RunFinished(state="FAILED"), START),
    (RunState.CANCELLED, RunState.RUNNING): (START, RunFinished(state="CANCELLED"), START),
}


def test_every_legal_phase_move_is_reached_by_events() -> None:
    legal = {(a, b) for a, targets in PHASE_TRANSITIONS.items() for b in targets}
    assert legal == set(PHASE_PATHS)
    for (source, target), events in PHASE_PATHS.items():
        before = play(*events[:-1]).phases["a"].state
        assert before is source, (source, target)
        assert play(*events).phases["a"].state is target, (source, target)


def test_every_legal_run_move_is_reached_by_events() -> None:
    legal = {(a, b) for a, targets in RUN_TRANSITIONS.items() for b in targets}
    assert legal == set(RUN_PATHS)
    for (source, target), events in RUN_PATHS.items():
        assert play(*events[:-1]).state is source
        assert play(*events).state is target


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (a, b)
        for a, b in itertools.product(PhaseState, PhaseState)
        if a != b and b not in PHASE_TRANSITIONS[a]
    ],
)
def test_illegal_phase_moves_raise(source: PhaseState, target: PhaseState) -> None:
    with pytest.raises(IllegalTransition):
        check_phase_transition(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a, b in itertools.product(RunState, RunState) if b not in RUN_TRANSITIONS[a]],
)
def test_illegal_run_moves_raise(source: RunState, target: RunState) -> None:
    with pytest.raises(IllegalTransition):
        check_run_transition(source, target)


def test_an_event_implying_an_illegal_move_is_not_projected() -> None:
    with pytest.raises(IllegalTransition):
        play(*BUILDING, PhaseSkipped(phase_id="a", reason="too late"))
    with pytest.raises(IllegalTransition):
        play(START, RunFinished(state="SUCCEEDED"), START)
