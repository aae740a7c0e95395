"""Which model a call uses, and how a model spec becomes a :class:`Model`.

A spec is ``provider:name``: ``anthropic:claude-sonnet-4-6``, ``openai:gpt-4.1``,
``openai-compatible:qwen2.5-coder`` (or ``<provider>:<name>`` for any provider given a
``base_url`` under ``[models.providers.<provider>]``), ``scripted:path/to/script.yaml``.
``settings`` is the ``[models]`` table of the configuration::

    [models]
    planner = "anthropic:claude-sonnet-4-6"
    builder = "anthropic:claude-sonnet-4-6"
    auditor = "openai:gpt-4.1"
    [models.escalation]
    low = ["anthropic:claude-haiku-4-5", "anthropic:claude-sonnet-4-6"]
    high = ["anthropic:claude-sonnet-4-6", "anthropic:claude-opus-4-6"]
    [models.providers.ollama]
    base_url = "http://127.0.0.1:11434/v1"
    api_key_env = "OLLAMA_API_KEY"   # optional for compatible servers
    timeout_seconds = 300            # "timeout" is accepted too
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autopack.llm.base import Model
from autopack.llm.errors import NoModelConfigured, UnknownProvider
from autopack.llm.limits import LimitTable
from autopack.llm.providers import provider_for

if TYPE_CHECKING:
    from autopack.plan import Plan

_PROVIDER_KEYS = ("base_url", "api_key_env", "timeout_seconds")
_ALIASES = {"timeout": "timeout_seconds"}


def choose_model(
    role: str,
    risk: str,
    attempt: int,
    settings: Mapping[str, Any] | None,
    override: str | None = None,
) -> str:
    """The spec for ``role`` on attempt ``attempt`` (from 1) of a phase of risk ``risk``.

    An override (``--model`` or the phase's ``models``) wins; else, for the Builder, the
    escalation chain of the risk level, one step per attempt and staying on its last
    model; else the role's configured model. The chain is the Builder's only: a retry
    needs a stronger author, while the Auditor should stay the independent reviewer
    it was configured to be.
    """
    if override:
        return override
    settings = settings or {}
    chain = (settings.get("escalation") or {}).get(risk) or []
    if chain and role == "builder":
        return str(chain[min(max(attempt, 1), len(chain)) - 1])
    configured = settings.get(role)
    if not configured:
        raise NoModelConfigured(
            f"no model for the {role}: set models.{role} in autopack.toml, "
            f"or pass --model provider:name"
        )
    return str(configured)


def missing_models(plan: Plan, settings: Mapping[str, Any] | None, override: str | None) -> str:
    """Why a run of ``plan`` could not call a model, or ``""`` when every phase's Builder
    and Auditor has one (from ``override``, the phase's ``models`` or ``[models]``).

    Asked before a run is accepted, so a run that could only pause at its first call
    is refused with what to configure instead."""
    roles: list[str] = []
    for _, phase in plan.phases():
        for role in ("builder", "auditor"):
            given = override or (getattr(phase.models, role, None) if phase.models else None)
            try:
                choose_model(role, phase.risk, 1, settings, given)
            except NoModelConfigured:
                if role not in roles:
                    roles.append(role)
    if not roles:
        return ""
    settings_named = " and ".join(f"models.{role}" for role in roles)
    return (
        f"no model for the {' and the '.join(roles)}: set {settings_named} "
        '(e.g. "anthropic:claude-sonnet-4-6") in autopack.toml, or give each phase of '
        "the plan its models ({builder: ..., auditor: ...})"
    )


def resolve_model(spec: str, *, settings: Mapping[str, Any] | None = None) -> Model:
    """The :class:`Model` a spec names (``llm/providers.py`` says which module builds
    it). SDKs are imported only for the providers used.

    Provider settings come from ``settings["providers"][provider]``; keys given at the top
    level of ``settings`` (``base_url``, ``api_key_env``, ``timeout_seconds``) apply too.
    The client's timeout is the model's ``call_seconds`` when ``[models.limits]`` sets it,
    else the provider's ``timeout_seconds``, else the model's default ``call_seconds``.
    """
    provider, sep, name = spec.partition(":")
    if not sep or not name:
        raise UnknownProvider(f"model spec {spec!r} is not provider:name")
    settings = settings or {}
    options = _provider_options(provider, settings)
    limits = LimitTable.default(settings.get("limits"))
    if limits.configured(spec, "call_seconds") or "timeout_seconds" not in options:
        options["timeout_seconds"] = limits.for_spec(spec).call_seconds
    return provider_for(provider, options).build(name, options)


def _provider_options(provider: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    given: dict[str, Any] = dict((settings.get("providers") or {}).get(provider) or {})
    given.update({k: settings[k] for k in _PROVIDER_KEYS if k in settings})
    section: dict[str, Any] = {_ALIASES.get(k, k): v for k, v in given.items() if v is not None}
    unknown = set(section) - set(_PROVIDER_KEYS)
    if unknown:
        raise UnknownProvider(
            f"models.providers.{provider} has unknown keys {sorted(unknown)}; "
            f"known: {list(_PROVIDER_KEYS)}"
        )
    if "timeout_seconds" in section:
        section["timeout_seconds"] = float(section["timeout_seconds"])
    return section
