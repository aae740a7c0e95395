"""Model call failures, classified once so every caller handles them the same way."""

from __future__ import annotations


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
