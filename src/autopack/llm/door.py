"""The one door every model call goes through.

For each call :class:`ModelDoor` counts the prompt, reserves the worst case from the
:class:`BudgetLedger`, calls the model, retries infrastructure failures with capped
exponential backoff and jitter (re-reserving each time), shrinks a prompt the model
says is too long, reconciles the ledger with the reported usage, appends the exchange
to the cassette and reports a :class:`~autopack.events.ModelCalled` to the engine.
Replies bound to a JSON schema are validated, and a reply that does not parse gets
one repair turn before it counts as a model failure. Roles never talk to a provider
any other way.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jsonschema

from autopack.events import ModelCalled, ModelRetrying
from autopack.llm.base import Message, Model, ModelRequest, ModelResponse, Usage
from autopack.llm.budget import BudgetLedger, Caps, Reservation, Spent
from autopack.llm.cassette import Cassette
from autopack.llm.errors import (
    CallTimedOut,
    ContextTooLong,
    MalformedReply,
    ModelError,
    ProviderTimeout,
)
from autopack.llm.limits import LimitTable
from autopack.llm.pricing import Price, PriceTable
from autopack.llm.selection import choose_model, resolve_model
from autopack.llm.tokens import estimate_prompt_tokens

__all__ = [
    "BudgetLedger",
    "Caps",
    "ModelDoor",
    "Reservation",
    "RetryPolicy",
    "Spent",
    "choose_model",
    "estimate_prompt_tokens",
    "resolve_model",
    "shrink_request",
]

log = logging.getLogger(__name__)
_ELIDED = "\n[... {n} characters elided to fit the model's context ...]\n"
_MIN_SHRINKABLE = 256


@dataclass(frozen=True)
class RetryPolicy:
    """How the door retries retryable failures, shrinks long prompts and repairs replies."""

    max_retries: int = 6
    """Retries of one call after rate limits, overload, timeouts or dropped connections."""
    base_delay: float = 1.0
    """Seconds before the first retry; doubles on each further retry."""
    max_delay: float = 60.0
    """Cap on one backoff wait (a provider's ``retry-after`` may ask for longer)."""
    max_retry_after: float = 300.0
    """Cap on a provider's ``retry-after``, so a misbehaving server cannot stall a run."""
    jitter: float = 0.5
    """Fraction of each backoff drawn at random, so parallel phases do not retry in step."""
    context_shrinks: int = 3
    """How many times a too-long prompt is halved before the call fails."""
    repair_turns: int = 1
    """Turns a model gets to fix an unparseable reply before it is a model failure."""
    timeout_retries: int = 1
    """Retries of a call that ran past the model's time limit (a dropped connection and a
    model that never stops look the same from here; each retry may take as long again)."""

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.max_delay, self.base_delay * 2.0**retry)
        return backoff * (1 - self.jitter) + backoff * self.jitter * random.random()


def shrink_request(request: ModelRequest) -> ModelRequest | None:
    """The request with its longest non-system message cut to half, middle elided.

    The start of a message (what it is) and its end (the latest output) are kept. Returns
    ``None`` when nothing is long enough to be worth cutting.
    """
    candidates = [(len(m.content), i) for i, m in enumerate(request.messages) if m.role != "system"]
    if not candidates or max(candidates)[0] < _MIN_SHRINKABLE:
        return None
    length, index = max(candidates)
    content = request.messages[index].content
    keep = length // 4
    cut = content[:keep] + _ELIDED.format(n=length - 2 * keep) + content[length - keep :]
    messages = list(request.messages)
    messages[index] = replace(messages[index], content=cut)
    return replace(request, messages=tuple(messages))


class ModelDoor:
    """Budgeted, retried, recorded model calls for one run. Safe to share between threads."""

    def __init__(
        self,
        *,
        run_id: str,
        ledger: BudgetLedger,
        prices: PriceTable,
        on_call: Callable[[ModelCalled], None],
        cassette: Cassette | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        cancel: threading.Event | None = None,
        on_retry: Callable[[ModelRetrying], None] | None = None,
        limits: LimitTable | None = None,
    ) -> None:
        """``cancel``: when it is set, a backoff wait ends at once and the call gives up
        with its last failure (Ctrl-C does not wait out a ``retry-after``); ``sleep``
        waits when there is none. ``on_retry`` hears of each retry before its wait."""
        self.run_id = run_id
        self.ledger = ledger
        self.prices = prices
        self.on_call = on_call
        self.cassette = cassette
        self.retry = retry
        self.sleep = sleep
        self.cancel = cancel
        self.on_retry = on_retry
        self.limits = limits or LimitTable.default()

    def complete(self, model: Model, request: ModelRequest) -> ModelResponse:
        """One logical call: budgeted, retried, and repaired once if the reply does not parse.

        Raises :class:`BudgetExceeded` when the worst case does not fit, the last
        retryable error when retries run out, :class:`MalformedReply` when the repair
        failed too, and environment errors (bad key, unknown price) at once.
        """
        price = self.prices.price_for(model.spec)
        most = self.limits.for_spec(model.spec).max_output_tokens
        if request.max_tokens > most:
            request = replace(request, max_tokens=most)
        for turn in range(self.retry.repair_turns + 1):
            try:
                response = self._call(model, request, price)
                _check_schema(request, response)
                return response
            except MalformedReply as exc:
                if turn == self.retry.repair_turns:
                    raise
                request = _repair_request(request, exc)
        raise AssertionError("unreachable: the last repair turn returns or raises")

    def _call(self, model: Model, request: ModelRequest, price: Price) -> ModelResponse:
        retries = shrinks = timeouts = 0
        while True:
            prompt, most = estimate_prompt_tokens(request), request.max_tokens
            reservation = self.ledger.reserve(
                request.phase_id, prompt + most, price.worst_cost(prompt, most)
            )
            started = time.monotonic()
            try:
                response = model.complete(request)
            except MalformedReply as exc:
                self._settle(model, request, reservation, price, exc.response, started, exc)
                raise
            except ContextTooLong as exc:
                self.ledger.release(reservation)
                self._record(model, request, None, exc)
                smaller = shrink_request(request)
                if smaller is None or shrinks >= self.retry.context_shrinks:
                    raise
                request, shrinks = smaller, shrinks + 1
                continue
            except ProviderTimeout as exc:
                self.ledger.release(reservation)
                if timeouts >= self.retry.timeout_retries or retries >= self.retry.max_retries:
                    raise CallTimedOut(_timed_out(model, timeouts + 1)) from exc
                delay = self.retry.delay(retries)
                timeouts, retries = timeouts + 1, retries + 1
                self._announce_retry(model, request, retries, delay, exc)
                if not self._back_off(delay):
                    raise
                continue
            except ModelError as exc:
                self.ledger.release(reservation)
                if not exc.retryable or retries >= self.retry.max_retries:
                    raise
                delay = self.retry.delay(retries, getattr(exc, "retry_after", None))
                retries += 1
                self._announce_retry(model, request, retries, delay, exc)
                if not self._back_off(delay):
                    raise  # cancelled while waiting: the last failure stands
                continue
            except BaseException:
                self.ledger.release(reservation)
                raise
            self._settle(model, request, reservation, price, response, started, None)
            return response

    def _announce_retry(
        self, model: Model, request: ModelRequest, retry: int, delay: float, exc: ModelError
    ) -> None:
        if self.on_retry is not None:
            self.on_retry(
                ModelRetrying(
                    phase_id=request.phase_id,
                    attempt=request.attempt,
                    role=request.role,
                    model=model.spec,
                    retry=retry,
                    max_retries=self.retry.max_retries,
                    delay_s=round(delay, 3),
                    reason=str(exc),
                )
            )

    def _back_off(self, seconds: float) -> bool:
        """Wait before a retry; ``False`` when the run was cancelled meanwhile."""
        if self.cancel is None:
            self.sleep(seconds)
            return True
        return not self.cancel.wait(seconds)

    def _settle(
        self,
        model: Model,
        request: ModelRequest,
        reservation: Reservation,
        price: Price,
        response: ModelResponse | None,
        started: float,
        error: ModelError | None,
    ) -> None:
        if response is None:
            self.ledger.release(reservation)
            self._record(model, request, None, error)
            return
        charge = charge_for(response.usage, request, reservation, price)
        if charge.fault:
            log.warning("%s: %s", model.spec, charge.fault)
        self.ledger.reconcile(
            reservation, charge.usage.input_tokens, charge.usage.output_tokens, charge.cost
        )
        self._record(model, request, response, error)
        self.on_call(
            ModelCalled(
                phase_id=request.phase_id,
                attempt=request.attempt,
                role=request.role,
                model=model.spec,
                input_tokens=charge.usage.input_tokens,
                output_tokens=charge.usage.output_tokens,
                cache_read_tokens=charge.usage.cache_read_tokens,
                cache_write_tokens=charge.usage.cache_write_tokens
                + charge.usage.cache_write_1h_tokens,
                cost_usd=charge.cost,
                duration_ms=int((time.monotonic() - started) * 1000),
                usage_fault=charge.fault,
            )
        )

    def _record(
        self,
        model: Model,
        request: ModelRequest,
        response: ModelResponse | None,
        error: ModelError | None,
    ) -> None:
        if self.cassette is not None:
            self.cassette.record(request, response, model=model.spec, error=error)


@dataclass(frozen=True)
class Charge:
    """What one call counts as spent; ``fault`` says how the reported usage was wrong."""

    usage: Usage
    cost: float
    fault: str = ""


def charge_for(
    usage: Usage, request: ModelRequest, reservation: Reservation, price: Price
) -> Charge:
    """The reported usage, held to what the request allowed, priced by tier.

    A provider's report is what a call costs only within the call's worst case, which the
    reservation fitted under the caps: a negative count is unknown usage and is charged
    at the worst case, output above ``max_tokens`` at ``max_tokens``, cached parts never
    above the whole prompt, and the whole never above the reservation, so no report can
    take the spend past a cap (nor below zero).
    """
    most = request.max_tokens
    prompt = max(reservation.tokens - most, 0)
    faults = []
    given_in, given_out = usage.input_tokens, usage.output_tokens
    if given_in < 0:
        faults.append(f"input_tokens {given_in} is negative")
    if given_out < 0:
        faults.append(f"output_tokens {given_out} is negative")
    elif given_out > most:
        faults.append(f"output_tokens {given_out} is above max_tokens {most}")
    output = min(given_out, most) if given_out >= 0 else most
    input_tokens = given_in if given_in >= 0 else prompt
    if input_tokens + output > reservation.tokens:
        faults.append(f"input_tokens {input_tokens} is above the {prompt} reserved")
        input_tokens = reservation.tokens - output
    tiers = _cache_tiers(usage, input_tokens, faults)
    held = Usage(input_tokens, output, *tiers)
    cost = min(price.cost_of(held), reservation.cost_usd)
    fault = "; ".join(faults)
    if fault:
        fault = f"reported usage outside the request ({fault}); charged within its reservation"
    return Charge(held, cost, fault)


def _cache_tiers(usage: Usage, input_tokens: int, faults: list[str]) -> tuple[int, int, int]:
    """Cache read, 5-minute write and 1-hour write tokens, together within the prompt.

    A negative count is dropped (those tokens are then priced as uncached input); parts
    that add up to more than the prompt are cut, reads first, the dearer writes kept."""
    given = (usage.cache_read_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens)
    if any(n < 0 for n in given):
        faults.append(f"cache token counts {list(given)} include a negative count")
    read, write, write_1h = (max(n, 0) for n in given)
    if read + write + write_1h > input_tokens:
        cached = read + write + write_1h
        faults.append(f"cached tokens {cached} are above the prompt's {input_tokens}")
        write_1h = min(write_1h, input_tokens)
        write = min(write, input_tokens - write_1h)
        read = min(read, input_tokens - write_1h - write)
    return read, write, write_1h


def _timed_out(model: Model, tries: int) -> str:
    seconds = getattr(model, "timeout_seconds", None)
    limit = f"its time limit of {seconds:g} s per call" if seconds else "its time limit per call"
    return (
        f"{model.spec} gave no reply within {limit} ({tries} tries); a model that may "
        f'need longer gets [models.limits."{model.spec}"] call_seconds, one that never '
        "stops a lower max_output_tokens"
    )


def _check_schema(request: ModelRequest, response: ModelResponse) -> None:
    if request.json_schema is None:
        return
    try:
        value: Any = json.loads(_strip_fence(response.text))
    except json.JSONDecodeError as exc:
        raise MalformedReply(f"the reply is not JSON: {exc}", response=response) from exc
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(request.json_schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise MalformedReply(
            f"the reply does not match the schema at {where}: {error.message}", response=response
        )


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence even when told not to."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        return stripped.rsplit("```", 1)[0]
    return stripped


def _repair_request(request: ModelRequest, error: MalformedReply) -> ModelRequest:
    """The request plus the bad reply and what was wrong with it.

    The malformed reply was a completed call (it is in the event log), so the repair
    is the role's next call and takes the next ``call_index``.
    """
    said = error.response.text if error.response is not None and error.response.text else ""
    feedback = f"Your last reply could not be used: {error}. " + (
        "Reply again with only a JSON value that matches the schema."
        if request.json_schema is not None
        else "Make the call again with arguments that are valid JSON for the tool."
    )
    return replace(
        request,
        call_index=request.call_index + 1,
        messages=(
            *request.messages,
            Message(role="assistant", content=said or "(a reply that could not be parsed)"),
            Message(role="user", content=feedback),
        ),
    )
