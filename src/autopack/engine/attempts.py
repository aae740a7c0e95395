"""One step of a phase attempt, carried out and recorded: the part both engines share.

The local executor and the Temporal activities differ in where a step runs and how
its files and branch travel, never in what a step's outcome means: a phase failure, a
budget stop, an infrastructure failure retried without costing an attempt, a problem
of the environment that stops the run, and the index of each model call all come
from this module, so a run behaves the same on either engine.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from autopack.engine import steps
from autopack.engine.approvals import ApprovalPolicy, announce
from autopack.engine.decider import RunStep, StartAttempt
from autopack.engine.runtime import Runtime
from autopack.events import Payload, PhaseFailed, PhaseStarted, StepCompleted, StepStarted
from autopack.llm.door import ModelDoor
from autopack.llm.errors import BudgetExceeded, ModelError
from autopack.projection import RunView
from autopack.states import PhaseState
from autopack.store import Store
from autopack.verify.hidden import HiddenTestsUnusable
from autopack.verify.sanity import BaselineUnusable

INFRA_RETRIES = 3
"""Retries of a step that failed for infrastructure reasons, which cost no attempt."""

STEP_FUNCTIONS: dict[str, Callable[[steps.StepContext], dict[str, Any]]] = {
    "build": steps.build,
    "apply": steps.apply,
    "verify": steps.verify_step,
    "audit": steps.audit,
    "commit": steps.commit,
}

Dispatch = Callable[[steps.StepContext, str], dict[str, Any]]
"""Carries out a named step; engines differ in how the gate is ordered and how a commit
reaches the run branch."""


class EnvironmentProblem(RuntimeError):
    """Something outside the run is wrong (a key, a provider, the remote); the run stops."""


def phase_started(view: RunView, command: StartAttempt, head: str) -> PhaseStarted:
    """The event that starts an attempt on the run branch's ``head``; an attempt that
    re-lands a change merged onto a moved branch starts from that merge instead."""
    landing = view.phases[command.phase_id].steps.get("commit", {})
    return PhaseStarted(
        phase_id=command.phase_id,
        attempt=command.attempt,
        base_commit=landing.get("rebased_onto", head),
        rebase_tree=landing.get("rebased_tree", ""),
    )


def call_recorder(store: Store, run_id: str) -> Callable[[Payload], None]:
    """What the model door calls after each call (and before each retry's wait): the
    call, or the retry, becomes an event of the run."""

    def record(call: Payload) -> None:
        store.append(run_id, call)

    return record


def call_counter(store: Store, run_id: str, phase_id: str, attempt: int) -> Callable[[str], int]:
    """Index of a role's next model call: its calls in earlier attempts, plus the calls
    this step made so far (a repair turn the door adds counts too). Calls a crashed try
    of the same step made are not counted, so a step run again asks as the first did."""

    def counts() -> tuple[Counter[str], Counter[str]]:
        calls = store.view(run_id).phases[phase_id].calls
        earlier = Counter(role for role, number in calls if number < attempt)
        current = Counter(role for role, number in calls if number == attempt)
        return earlier, current

    earlier, at_start = counts()

    def next_index(role: str) -> int:
        _, now = counts()
        return earlier[role] + now[role] - at_start[role]

    return next_index


class StepRunner:
    """Carries out steps of one run's attempts and records each outcome as events."""

    def __init__(
        self,
        rt: Runtime,
        dispatch: Dispatch,
        cancel: threading.Event,
    ) -> None:
        self.rt = rt
        self.dispatch = dispatch
        self.cancel = cancel
        self.approvals = ApprovalPolicy.from_settings(rt.settings.approvals)
        self.budget_stop = ""
        """Why the run must stop: a step found the run's budget exhausted."""
        self._infra_failures: Counter[tuple[str, int, str]] = Counter()

    def run(self, run_id: str, command: RunStep, door: ModelDoor) -> None:
        """Carry out ``command`` and record how it ended: completed, the phase failed, or
        nothing when an infrastructure failure waits to run it again or the run was
        cancelled. A problem of the environment raises."""
        store, phase_id, attempt = self.rt.store, command.phase_id, command.attempt
        store.append(run_id, StepStarted(phase_id=phase_id, attempt=attempt, step=command.step))
        view = store.view(run_id)
        ctx = steps.StepContext(
            rt=self.rt,
            view=view,
            phase=view.plan.phase(phase_id),
            attempt=attempt,
            door=door,
            call_counter=call_counter(store, run_id, phase_id, attempt),
            cancel=self.cancel,
        )
        result = self._outcome(ctx, command)
        if result is None or self.cancel.is_set():
            return  # an interrupted step is not recorded: it runs again
        done = StepCompleted(phase_id=phase_id, attempt=attempt, step=command.step, result=result)
        store.append(run_id, done)
        waiting = store.view(run_id).phases[phase_id].state is PhaseState.AWAITING_APPROVAL
        if command.step == "gate" and waiting:
            announce(self.approvals, _pending(run_id, phase_id, attempt, result))

    def _outcome(self, ctx: steps.StepContext, command: RunStep) -> dict[str, Any] | None:
        """The step's result, or ``None`` when it ended otherwise (recorded here)."""
        try:
            return self.dispatch(ctx, command.step)
        except steps.PhaseFailure as exc:
            self._fail(ctx.run_id, command, str(exc))
        except (BaselineUnusable, HiddenTestsUnusable) as exc:
            if self.cancel.is_set():
                return None  # the cancel killed the baseline run: nothing is wrong with it
            raise EnvironmentProblem(str(exc)) from exc
        except BudgetExceeded as exc:
            self._fail(ctx.run_id, command, f"budget: {exc}")
            if exc.scope == "run":
                self.budget_stop = f"run budget exhausted ({exc.kind})"
        except OSError as exc:  # the sandbox or a tool could not even start
            self._infrastructure_failure(ctx.run_id, command, exc)
        except ModelError as exc:
            if self.cancel.is_set():
                return None
            if not exc.retryable:
                if exc.environment:
                    detail = getattr(exc, "diff", "")
                    raise EnvironmentProblem(f"{exc}\n{detail}".rstrip()) from exc
                raise
            self._infrastructure_failure(ctx.run_id, command, exc)
        return None

    def _infrastructure_failure(self, run_id: str, command: RunStep, exc: Exception) -> None:
        """A provider outage or a sandbox that cannot start costs no attempt: the step runs
        again after a backoff, up to its own cap."""
        key = (command.phase_id, command.attempt, command.step)
        self._infra_failures[key] += 1
        if self._infra_failures[key] <= INFRA_RETRIES:
            self.cancel.wait(min(30.0, 2.0 ** self._infra_failures[key]))  # Ctrl-C ends it
            return
        reason = f"infrastructure: {command.step} failed {INFRA_RETRIES + 1} times: {exc}"
        self._fail(run_id, command, reason)

    def _fail(self, run_id: str, command: RunStep, reason: str) -> None:
        failed = PhaseFailed(phase_id=command.phase_id, attempt=command.attempt, reason=reason)
        self.rt.store.append(run_id, failed)


def _pending(run_id: str, phase_id: str, attempt: int, gate: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "approval_pending",
        "run_id": run_id,
        "phase_id": phase_id,
        "attempt": attempt,
        "reasons": gate.get("reasons", []),
        "proof_hash": gate.get("proof_hash", ""),
    }
