"""The budget ledger: caps per run and per phase, checked before every model call.

A call first *reserves* its worst case (counted prompt tokens plus ``max_tokens`` at
the model's price). The reservation is refused when spent plus everything reserved by
calls in flight plus this worst case would pass a cap, so parallel phases cannot
overshoot together. After the call the reservation is *reconciled* with the usage the
provider reported (that is what counts as spent), or *released* when the call failed
without usage. ``reserve``/``reconcile``/``release`` are the whole interface, so a
database-backed ledger can replace this in-memory one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autopack.events import ModelCalled
from autopack.llm.errors import BudgetExceeded, BudgetKind, BudgetScope

_COST_EPSILON = 1e-12
"""Float slack when comparing USD sums, so 0.1 + 0.2 does not break a 0.3 cap."""


@dataclass(frozen=True)
class Caps:
    """Limits for a run or a phase; ``None`` means no limit of that kind."""

    tokens: int | None = None
    cost_usd: float | None = None
    model_calls: int | None = None

    @classmethod
    def of(cls, budget: Any) -> Caps:
        """Caps from anything with ``tokens``/``cost_usd``/``model_calls`` (e.g. a plan Budget)."""
        if budget is None:
            return cls()
        return cls(
            tokens=getattr(budget, "tokens", None),
            cost_usd=getattr(budget, "cost_usd", None),
            model_calls=getattr(budget, "model_calls", None),
        )


@dataclass
class Spent:
    """What was spent: input plus output tokens, USD and completed model calls."""

    tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0

    def add(self, tokens: int, cost_usd: float, calls: int) -> None:
        self.tokens += tokens
        self.cost_usd += cost_usd
        self.model_calls += calls


@dataclass(frozen=True)
class Reservation:
    """A worst case held against the caps while one call is in flight."""

    id: int
    phase_id: str | None
    tokens: int
    cost_usd: float


@dataclass
class _Scope:
    name: BudgetScope
    label: str
    caps: Caps
    spent: Spent
    held: Spent = field(default_factory=Spent)

    def check(self, tokens: int, cost_usd: float) -> None:
        check_caps(self.label, self.name, self.caps, self.spent, self.held, tokens, cost_usd)


class BudgetLedger:
    """Thread-safe in-memory ledger for one run; phases may call from parallel threads."""

    def __init__(
        self,
        run_caps: Caps,
        phase_caps: Mapping[str, Caps],
        spent_run: Spent,
        spent_phases: Mapping[str, Spent],
    ) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._run = _Scope("run", "run", run_caps, replace(spent_run))
        self._phase_caps = dict(phase_caps)
        self._phases = {
            pid: _Scope("phase", f"phase {pid!r}", self._phase_caps.get(pid, Caps()), replace(s))
            for pid, s in spent_phases.items()
        }
        self._open: dict[int, Reservation] = {}

    @classmethod
    def resumed(
        cls, run_caps: Caps, phase_caps: Mapping[str, Caps], calls: Iterable[ModelCalled]
    ) -> BudgetLedger:
        """A ledger whose spend is the sum of a run's recorded calls (for resume)."""
        run, phases = Spent(), dict[str, Spent]()
        for call in calls:
            tokens = call.input_tokens + call.output_tokens
            run.add(tokens, call.cost_usd, 1)
            if call.phase_id is not None:
                phases.setdefault(call.phase_id, Spent()).add(tokens, call.cost_usd, 1)
        return cls(run_caps, phase_caps, run, phases)

    def reserve(self, phase_id: str | None, tokens: int, cost_usd: float) -> Reservation:
        """Hold a call's worst case; raises :class:`BudgetExceeded` if it does not fit."""
        with self._lock:
            scopes = self._scopes(phase_id)
            for scope in scopes:
                scope.check(tokens, cost_usd)
            reservation = Reservation(next(self._ids), phase_id, tokens, cost_usd)
            for scope in scopes:
                scope.held.add(tokens, cost_usd, 1)
            self._open[reservation.id] = reservation
            return reservation

    def reconcile(
        self, reservation: Reservation, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """The call completed: replace its reservation with what the provider reported."""
        with self._lock:
            for scope in self._settle(reservation):
                scope.spent.add(input_tokens + output_tokens, cost_usd, 1)

    def release(self, reservation: Reservation) -> None:
        """The call failed without usage: free its reservation."""
        with self._lock:
            self._settle(reservation)

    def spent(self, phase_id: str | None = None) -> Spent:
        """A copy of what the run (or one phase) has spent; reservations not included."""
        with self._lock:
            if phase_id is None:
                return replace(self._run.spent)
            scope = self._phases.get(phase_id)
            return replace(scope.spent) if scope else Spent()

    def reserved(self, phase_id: str | None = None) -> Spent:
        """What calls in flight hold right now (``model_calls`` counts those calls)."""
        with self._lock:
            scope = self._run if phase_id is None else self._phases.get(phase_id)
            return replace(scope.held) if scope else Spent()

    def _scopes(self, phase_id: str | None) -> list[_Scope]:
        if phase_id is None:
            return [self._run]
        if phase_id not in self._phases:
            caps = self._phase_caps.get(phase_id, Caps())
            self._phases[phase_id] = _Scope("phase", f"phase {phase_id!r}", caps, Spent())
        return [self._phases[phase_id], self._run]

    def _settle(self, reservation: Reservation) -> list[_Scope]:
        if self._open.pop(reservation.id, None) is None:
            raise ValueError(f"reservation {reservation.id} was already settled")
        scopes = self._scopes(reservation.phase_id)
        for scope in scopes:
            scope.held.add(-reservation.tokens, -reservation.cost_usd, -1)
        return scopes


def check_caps(
    label: str,
    scope: BudgetScope,
    caps: Caps,
    spent: Spent,
    held: Spent,
    tokens: int,
    cost_usd: float,
) -> None:
    """Refuse a call whose worst case (``tokens``, ``cost_usd``, one call) on top of what
    is spent and held would pass a cap; shared by every ledger, in memory or in a store."""
    wanted: tuple[tuple[BudgetKind, float, float, float | None], ...] = (
        ("tokens", spent.tokens, held.tokens + tokens, caps.tokens),
        ("cost_usd", spent.cost_usd, held.cost_usd + cost_usd, caps.cost_usd),
        ("model_calls", spent.model_calls, held.model_calls + 1, caps.model_calls),
    )
    for kind, done, pending, cap in wanted:
        if cap is not None and done + pending > cap + _COST_EPSILON:
            raise BudgetExceeded(
                f"{label} budget: the next model call could take {kind} to "
                f"{done + pending:g} (spent {done:g}, in flight and this call "
                f"{pending:g}), over the cap of {cap:g}",
                kind=kind,
                scope=scope,
            )
