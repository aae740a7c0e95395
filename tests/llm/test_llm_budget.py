"""The budget ledger and the door's use of it: caps hold, spend equals reported usage."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopack.events import ModelCalled
from autopack.llm.base import Message, ModelRequest, ModelResponse, Usage
from autopack.llm.door import BudgetLedger, Caps, ModelDoor, RetryPolicy, Spent
from autopack.llm.errors import (
    BudgetExceeded,
    CallTimedOut,
    ConnectionDropped,
    MalformedReply,
    ModelError,
    Overloaded,
    ProviderTimeout,
    RateLimited,
    UnknownPrice,
)
from autopack.llm.pricing import PriceTable
from autopack.llm.tokens import estimate_prompt_tokens

PHASES = (None, "a", "b", "c")
FAULTS = ("rate", "overload", "timeout", "drop", "malformed")


@dataclass
class Outcome:
    """What one attempt at the provider does: a fault, or a reply with this share of usage."""

    fault: str | None
    input_share: float
    output_share: float


@dataclass
class FlakyModel:
    """A priced model whose attempts follow a script; remembers the usage it reported."""

    outcomes: Iterator[Outcome]
    spec: str = "openai:gpt-4.1"
    reported: dict[str | None, list[Usage]] = field(default_factory=dict)

    def complete(self, request: ModelRequest) -> ModelResponse:
        outcome = next(self.outcomes, Outcome(None, 1.0, 1.0))
        usage = Usage(
            math.floor(estimate_prompt_tokens(request) * outcome.input_share),
            math.floor(request.max_tokens * outcome.output_share),
        )
        if outcome.fault in ("rate", "overload", "timeout", "drop"):
            raise {
                "rate": RateLimited("429", retry_after=1.0),
                "overload": Overloaded("529"),
                "timeout": ProviderTimeout("slow"),
                "drop": ConnectionDropped("reset"),
            }[outcome.fault]
        self.reported.setdefault(request.phase_id, []).append(usage)
        response = ModelResponse(text="ok", usage=usage, model=self.spec)
        if outcome.fault == "malformed":
            raise MalformedReply("tool arguments are not JSON", response=response)
        return response


outcomes = st.builds(
    Outcome,
    fault=st.one_of(st.none(), st.none(), st.sampled_from(FAULTS)),
    input_share=st.floats(0.0, 1.0),
    output_share=st.floats(0.0, 1.0),
)
calls = st.tuples(
    st.sampled_from(PHASES),
    st.integers(1, 20_000),  # prompt characters
    st.integers(1, 8_000),  # max_tokens
)
caps = st.builds(
    Caps,
    tokens=st.one_of(st.none(), st.integers(1_000, 200_000)),
    cost_usd=st.one_of(st.none(), st.floats(0.001, 1.0)),
    model_calls=st.one_of(st.none(), st.integers(1, 40)),
)
CALLS_MADE = [0]


def check_caps(spent: Spent, cap: Caps) -> None:
    assert cap.tokens is None or spent.tokens <= cap.tokens
    assert cap.cost_usd is None or spent.cost_usd <= cap.cost_usd + 1e-12
    assert cap.model_calls is None or spent.model_calls <= cap.model_calls


def check_matches(spent: Spent, usages: list[Usage], events: list[ModelCalled]) -> None:
    price = PriceTable.default().price_for("openai:gpt-4.1")
    assert spent.tokens == sum(u.input_tokens + u.output_tokens for u in usages)
    assert spent.model_calls == len(usages) == len(events)
    expected = sum(price.cost(u.input_tokens, u.output_tokens) for u in usages)
    assert spent.cost_usd == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert spent.cost_usd == pytest.approx(sum(e.cost_usd for e in events), rel=1e-9, abs=1e-12)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(
    run_cap=caps,
    phase_cap=caps,
    script=st.lists(st.tuples(calls, st.lists(outcomes, max_size=4)), min_size=25, max_size=40),
)
def run_random_calls(run_cap: Caps, phase_cap: Caps, script: list[Any]) -> None:
    phase_caps = {"a": phase_cap, "b": phase_cap}
    ledger = BudgetLedger(run_cap, phase_caps, Spent(), {})
    events: list[ModelCalled] = []
    model = FlakyModel(iter(()))
    door = ModelDoor(
        run_id="r",
        ledger=ledger,
        prices=PriceTable.default(),
        on_call=events.append,
        retry=RetryPolicy(max_retries=2),
        sleep=lambda seconds: None,
    )
    for (phase, chars, max_tokens), attempts in script:
        model.outcomes = iter(attempts)
        request = ModelRequest(
            messages=(Message("user", "x" * chars),), max_tokens=max_tokens, phase_id=phase
        )
        CALLS_MADE[0] += 1
        try:
            door.complete(model, request)
        except (BudgetExceeded, MalformedReply, CallTimedOut) as exc:
            assert not exc.retryable
        except ModelError as exc:
            assert exc.retryable, "only retryable errors escape after retries run out"
        check_caps(ledger.spent(), run_cap)
        for pid, cap in phase_caps.items():
            check_caps(ledger.spent(pid), cap)
        assert ledger.reserved() == Spent(), "every reservation is settled"

    everything = [u for usages in model.reported.values() for u in usages]
    check_matches(ledger.spent(), everything, events)
    for phase in PHASES[1:]:
        mine = [e for e in events if e.phase_id == phase]
        check_matches(ledger.spent(phase), model.reported.get(phase, []), mine)


def test_spend_never_passes_a_cap_and_equals_reported_usage_over_1000_calls() -> None:
    CALLS_MADE[0] = 0
    run_random_calls()
    assert CALLS_MADE[0] >= 1000


def priced_request(
    phase: str | None = "p", chars: int = 300, max_tokens: int = 100
) -> ModelRequest:
    message = Message("user", "x" * chars)
    return ModelRequest(messages=(message,), max_tokens=max_tokens, phase_id=phase)


def door_with(ledger: BudgetLedger, events: list[ModelCalled] | None = None) -> ModelDoor:
    sink: list[ModelCalled] = [] if events is None else events
    return ModelDoor(run_id="r", ledger=ledger, prices=PriceTable.default(), on_call=sink.append)


def test_a_call_whose_worst_case_does_not_fit_is_refused_before_it_is_made() -> None:
    ledger = BudgetLedger(Caps(), {"p": Caps(tokens=500)}, Spent(), {})
    model = FlakyModel(iter(()))
    with pytest.raises(BudgetExceeded) as caught:
        door_with(ledger).complete(model, priced_request(max_tokens=450))
    assert (caught.value.kind, caught.value.scope) == ("tokens", "phase")
    assert "phase 'p'" in str(caught.value) and "500" in str(caught.value)
    assert model.reported == {}, "the provider was never called"


def test_run_cost_cap_refuses_across_phases() -> None:
    price = PriceTable.default().price_for("openai:gpt-4.1")
    one_call = price.cost(estimate_prompt_tokens(priced_request()), 100)
    ledger = BudgetLedger(Caps(cost_usd=one_call * 2.5), {}, Spent(), {})
    door = door_with(ledger)
    model = FlakyModel(iter(()))
    door.complete(model, priced_request("a"))
    door.complete(model, priced_request("b"))
    with pytest.raises(BudgetExceeded) as caught:
        door.complete(model, priced_request("c"))
    assert (caught.value.kind, caught.value.scope) == ("cost_usd", "run")


def test_a_model_without_a_price_is_refused_not_free() -> None:
    model = FlakyModel(iter(()), spec="openai:gpt-99-unreleased")
    with pytest.raises(UnknownPrice) as caught:
        door_with(BudgetLedger(Caps(), {}, Spent(), {})).complete(model, priced_request())
    assert caught.value.environment and '[prices."openai:gpt-99-unreleased"]' in str(caught.value)
    assert model.reported == {}


def test_configured_price_and_dated_snapshots() -> None:
    table = PriceTable.default({"ollama:qwen": {"input_per_mtok": 0.1, "output_per_mtok": 0.2}})
    assert table.price_for("ollama:qwen").cost(1_000_000, 1_000_000) == pytest.approx(0.3)
    dated = table.price_for("anthropic:claude-sonnet-4-5-20250929")
    assert dated == table.price_for("anthropic:claude-sonnet-4-5")
    assert table.price_for("scripted:demo.yaml").cost(10**9, 10**9) == 0


def test_usage_above_the_reservation_is_a_fault_charged_at_the_reservation() -> None:
    """A report above the call's worst case (here: three times the prompt estimate) cannot
    take the spend past what was reserved under the cap; the event says what was reported."""
    ledger, events = BudgetLedger(Caps(tokens=2_000), {}, Spent(), {}), list[ModelCalled]()
    door = door_with(ledger, events)
    overshooting = FlakyModel(iter([Outcome(None, 3.0, 1.0)]))
    request = priced_request(None, chars=1_500, max_tokens=100)
    door.complete(overshooting, request)
    worst_case = estimate_prompt_tokens(request) + request.max_tokens
    assert ledger.spent().tokens == worst_case
    (event,) = events
    reported = overshooting.reported[None][0].input_tokens
    assert f"input_tokens {reported} is above the {worst_case - 100} reserved" in event.usage_fault


@pytest.mark.parametrize(
    ("usage", "fault"),
    [
        (Usage(10, 200_000), "output_tokens 200000 is above max_tokens 100"),
        (Usage(-1_900_000, 5), "input_tokens -1900000 is negative"),
        (Usage(10, -5), "output_tokens -5 is negative"),
    ],
)
def test_usage_outside_the_request_is_a_fault_and_never_passes_the_cap(
    usage: Usage, fault: str
) -> None:
    ledger, events = BudgetLedger(Caps(tokens=2_000, cost_usd=1.0), {}, Spent(), {}), []
    door = door_with(ledger, events)

    class Lying:
        spec = "openai:gpt-4.1"

        def complete(self, request: ModelRequest) -> ModelResponse:
            return ModelResponse(text="ok", usage=usage)

    request = priced_request(None, chars=300, max_tokens=100)
    door.complete(Lying(), request)
    worst_case = estimate_prompt_tokens(request) + request.max_tokens
    spent = ledger.spent()
    assert 0 < spent.tokens <= worst_case
    assert spent.cost_usd > 0
    (event,) = events
    assert fault in event.usage_fault
    assert event.input_tokens >= 0 and event.output_tokens >= 0


def test_resumed_ledger_counts_the_calls_already_recorded() -> None:
    earlier = [
        ModelCalled(
            phase_id="p",
            role="builder",
            model="m",
            input_tokens=50,
            output_tokens=10,
            cost_usd=0.25,
        ),
        ModelCalled(
            phase_id=None, role="planner", model="m", input_tokens=5, output_tokens=5, cost_usd=0.5
        ),
    ]
    ledger = BudgetLedger.resumed(Caps(cost_usd=1.0), {"p": Caps(model_calls=1)}, earlier)
    assert ledger.spent() == Spent(tokens=70, cost_usd=0.75, model_calls=2)
    assert ledger.spent("p") == Spent(tokens=60, cost_usd=0.25, model_calls=1)
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("p", 1, 0.0)
    assert (caught.value.kind, caught.value.scope) == ("model_calls", "phase")


def test_released_reservations_free_capacity_and_settle_once() -> None:
    ledger = BudgetLedger(Caps(tokens=100), {}, Spent(), {})
    held = ledger.reserve(None, 100, 0.0)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(None, 1, 0.0)
    ledger.release(held)
    ledger.reconcile(ledger.reserve(None, 100, 0.0), 40, 20, 0.0)
    assert ledger.spent() == Spent(tokens=60, cost_usd=0.0, model_calls=1)
    with pytest.raises(ValueError, match="already settled"):
        ledger.release(held)


def test_parallel_phases_never_overshoot_a_shared_run_cap() -> None:
    ledger = BudgetLedger(Caps(tokens=50_000, model_calls=150), {}, Spent(), {})
    events: list[ModelCalled] = []
    door = door_with(ledger, events)
    refused = []

    def phase(pid: str) -> None:
        model = FlakyModel(iter([Outcome(None, 0.9, 0.7)] * 100))
        for _ in range(100):
            try:
                door.complete(model, priced_request(pid, chars=600, max_tokens=200))
            except BudgetExceeded:
                refused.append(pid)

    threads = [threading.Thread(target=phase, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = ledger.spent()
    assert spent.tokens <= 50_000 and spent.model_calls <= 150
    assert refused, "the cap was reached"
    assert spent.tokens == sum(e.input_tokens + e.output_tokens for e in events)
    assert ledger.reserved() == Spent()
