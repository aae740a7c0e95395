"""Model call failures, classified once so every caller handles them the same way.

Three families, told apart by two class attributes:

* ``retryable``: infrastructure trouble (rate limits, overload, timeouts, dropped
  connections). The door retries these with backoff; they never cost a phase attempt.
* ``environment``: the setup is wrong (bad key, unknown model or price, a replay that
  diverged). Retrying cannot help, so the run stops with exit code 3 and the message
  names the provider and the setting to fix.
* everything else is a model failure (an unparseable reply, an exhausted script):
  it costs the phase an attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from autopack.llm.base import ModelResponse

BudgetKind = Literal["tokens", "cost_usd", "model_calls"]
BudgetScope = Literal["run", "phase"]


class ModelError(Exception):
    """Base of every model call failure.

    ``retryable`` errors are infrastructure trouble (rate limits, overload, dropped
    connections): retried by the door without consuming a phase attempt.
    ``environment`` errors (bad key, unknown model) stop the run with exit code 3.
    Everything else is a model failure that costs the phase an attempt.
    """

    retryable = False
    environment = False


class ScriptExhausted(ModelError):
    """The scripted model has no reply left for this role and phase."""


class ScriptError(ModelError):
    """A script file that cannot be read or has the wrong shape."""

    environment = True


class UnknownProvider(ModelError):
    """A model spec names a provider Autopack does not know."""

    environment = True


class UnknownPrice(ModelError):
    """No price is known for a model; a call is never counted as free by accident."""

    environment = True


class BudgetExceeded(ModelError):
    """The worst case of the next call does not fit a cap; the phase fails with ``budget``."""

    def __init__(self, message: str, *, kind: BudgetKind, scope: BudgetScope) -> None:
        super().__init__(message)
        self.kind: BudgetKind = kind
        self.scope: BudgetScope = scope


class RateLimited(ModelError):
    """HTTP 429; ``retry_after`` is the provider's requested wait in seconds, if it said."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(ModelError):
    """The provider is overloaded or failed on its side (5xx, 529); ``retry_after`` is the
    wait it asked for (a 503 or 529 may carry ``Retry-After``), if it said."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeout(ModelError):
    """The call took longer than the configured timeout."""

    retryable = True


class CallTimedOut(ModelError):
    """A call ran past the model's time limit again after its retry: a model failure."""


class ConnectionDropped(ModelError):
    """The connection failed or the reply was cut off before it was complete."""

    retryable = True


class ContextTooLong(ModelError):
    """The prompt does not fit the model's context; the door shrinks it and tries again."""


class AuthError(ModelError):
    """The provider refused the credentials (or none were configured)."""

    environment = True


class InvalidRequest(ModelError):
    """The provider refused the request itself (unknown model, bad parameter)."""

    environment = True


class MalformedReply(ModelError):
    """A reply that cannot be used: tool arguments or schema-bound JSON that do not parse.

    ``response`` is what came back (with its usage, which was paid for), so the door can
    account for it and ask the model to repair it once.
    """

    def __init__(self, message: str, *, response: ModelResponse | None = None) -> None:
        super().__init__(message)
        self.response = response


class ReplayDivergence(ModelError):
    """A replayed run asked for something the recording does not hold; ``diff`` shows how."""

    environment = True

    def __init__(self, message: str, *, diff: str = "") -> None:
        super().__init__(f"{message}\n{diff}" if diff else message)
        self.diff = diff


class NoModelConfigured(ModelError):
    """A role has no model: none on the command line, the phase, or in ``[models]``."""

    environment = True
