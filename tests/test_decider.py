"""The decider is pure: the same projected state always gives the same commands."""

from __future__ import annotations

from autopack.engine.decider import (
    FailPhase,
    FinishRun,
    RunStep,
    SkipPhase,
    StartAttempt,
    decide,
)
from autopack.events import (
    Event,
    Payload,
    PhaseFailed,
    PhaseStarted,
    RunCreated,
    RunStarted,
    StepCompleted,
)
from autopack.plan import parse_plan_text
from autopack.projection import RunView, apply
from autopack.states import RunState

PLAN = parse_plan_text(
    """\
run: {goal: g, max_attempts: 2}
tiers:
  - id: one
    phases:
      - {id: a, goal: g, scope: {paths: [a.py]}}
      - {id: b, goal: g, scope: {paths: [b.py]}}
      - {id: c, goal: g, scope: {paths: [c.py]}, depends_on: [a]}
  - id: two
    phases:
      - {id: d, goal: g, scope: {paths: [d.py]}}
"""
)


def play(*payloads: Payload) -> RunView:
    created = RunCreated(
        plan=PLAN.model_dump(mode="json"),
        plan_digest=PLAN.digest(),
        plan_source="p",
        repo="/r",
        base_commit="b",
        branch="autopack/r",
    )
    view = apply(None, Event.of("r", created).model_copy(update={"seq": 1}))
    for seq, payload in enumerate((RunStarted(executor="t"), *payloads), start=2):
        apply(view, Event.of("r", payload).model_copy(update={"seq": seq}))
    return view


def done(phase: str, attempt: int, step: str, **result: object) -> StepCompleted:
    return StepCompleted(phase_id=phase, attempt=attempt, step=step, result=dict(result))


def landed(phase: str) -> list[Payload]:
    return [
        PhaseStarted(phase_id=phase, attempt=1, base_commit="b"),
        done(phase, 1, "build"),
        done(phase, 1, "apply", applied=True, tree="t"),
        done(phase, 1, "verify", passed=True),
        done(phase, 1, "audit", verdict="approve"),
        done(phase, 1, "gate", decision="PASS", proof_hash="p"),
        done(phase, 1, "commit", commit="c", proof_hash="p"),
    ]


def test_ready_phases_start_up_to_max_parallel_in_plan_order() -> None:
    view = play()
    assert decide(view, max_parallel=1) == [StartAttempt("a", 1)]
    assert decide(view, max_parallel=4) == [StartAttempt("a", 1), StartAttempt("b", 1)]
    assert decide(view, max_parallel=4) == decide(view, max_parallel=4)


def test_steps_follow_the_pipeline_and_skip_audit_when_tests_fail() -> None:
    started = [PhaseStarted(phase_id="a", attempt=1, base_commit="b")]
    assert decide(play(*started))[0] == RunStep("a", 1, "build")
    failing = [*started, done("a", 1, "build"), done("a", 1, "apply", applied=True, tree="t")]
    assert decide(play(*failing))[0] == RunStep("a", 1, "verify")
    verified = [*failing, done("a", 1, "verify", passed=False)]
    assert decide(play(*verified))[0] == RunStep("a", 1, "gate")


def test_retry_starts_next_attempt_until_the_cap() -> None:
    first = [
        PhaseStarted(phase_id="a", attempt=1, base_commit="b"),
        done("a", 1, "build"),
        done("a", 1, "apply", applied=False),
        done("a", 1, "gate", decision="RETRY", reasons=["refused"]),
    ]
    assert decide(play(*first))[0] == StartAttempt("a", 2)
    second = [
        *first,
        PhaseStarted(phase_id="a", attempt=2, base_commit="b"),
        done("a", 2, "build"),
        done("a", 2, "apply", applied=False),
        done("a", 2, "gate", decision="RETRY", reasons=["refused again"]),
    ]
    command = decide(play(*second))[0]
    assert isinstance(command, FailPhase) and "refused again" in command.reason


def test_failure_skips_dependants_and_later_tiers_then_fails_the_run() -> None:
    failed = [
        PhaseStarted(phase_id="a", attempt=1, base_commit="b"),
        PhaseFailed(phase_id="a", attempt=1, reason="x"),
    ]
    skips = decide(play(*failed))
    assert {type(s) for s in skips} == {SkipPhase}
    assert {s.phase_id for s in skips if isinstance(s, SkipPhase)} == {"c", "d"}


def test_run_succeeds_when_every_phase_landed() -> None:
    view = play(*landed("a"), *landed("b"), *landed("c"), *landed("d"))
    (finish,) = decide(view)
    assert isinstance(finish, FinishRun) and finish.state is RunState.SUCCEEDED


def test_waiting_for_approval_blocks_nothing_else() -> None:
    waiting = [
        PhaseStarted(phase_id="a", attempt=1, base_commit="b"),
        done("a", 1, "build"),
        done("a", 1, "apply", applied=True, tree="t"),
        done("a", 1, "verify", passed=True),
        done("a", 1, "audit", verdict="approve"),
        done("a", 1, "gate", decision="NEEDS_APPROVAL", proof_hash="p"),
    ]
    assert decide(play(*waiting), max_parallel=1) == [StartAttempt("b", 1)]
