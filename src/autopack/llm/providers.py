"""The model providers Autopack speaks to, one line each.

A provider is a module that builds a :class:`~autopack.llm.base.Model` through its
official SDK (``build(provider, name, options)``) and, when it is reached over the
network, names the cheapest authenticated request that proves its address and key
(``models_request(base_url, key)``). ``PROVIDERS`` says which module serves which spec
prefix, with the key's environment variable and the address it answers at by default.
Everything that needs to know about providers asks here: ``resolve_model`` builds
from it, ``autopack doctor`` and the run preflight probe with it.

Adding a provider is one module plus one line in ``PROVIDERS``. The module is imported
only when a spec names it, so an SDK a run does not use is never loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from autopack.llm.errors import UnknownProvider

if TYPE_CHECKING:
    from autopack.llm.base import Model


@dataclass(frozen=True)
class Provider:
    """One provider: where its code lives and what it needs by default."""

    name: str
    module: str
    """Defines ``build(provider, name, options) -> Model`` and, unless ``local``,
    ``models_request(base_url, key) -> (url, headers)``."""
    key_env: str | None = None
    """The environment variable holding the API key, unless the configuration names one."""
    base_url: str | None = None
    """Where it answers, unless the configuration says; ``None``: it must be configured."""
    local: bool = False
    """Runs in this process (no address, no key, nothing to probe)."""

    def build(self, name: str, options: Mapping[str, Any]) -> Model:
        """The model ``name`` of this provider, with the configured ``options``."""
        given = dict(options)
        if self.key_env is not None:
            given.setdefault("api_key_env", self.key_env)
        model: Model = importlib.import_module(self.module).build(self.name, name, given)
        return model

    def models_request(self, base_url: str, key: str | None) -> tuple[str, dict[str, str]]:
        """The URL and headers of a request that lists the models (``doctor``'s probe)."""
        request = importlib.import_module(self.module).models_request
        url, headers = request(base_url.rstrip("/"), key)
        return str(url), dict(headers)


COMPATIBLE = "openai-compatible"
"""Any server that speaks OpenAI's Chat Completions API at a configured ``base_url``."""

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "anthropic",
            "autopack.llm.anthropic_provider",
            key_env="ANTHROPIC_API_KEY",
            base_url="https://api.anthropic.com",
        ),
        Provider(
            "openai",
            "autopack.llm.openai_provider",
            key_env="OPENAI_API_KEY",
            base_url="https://api.openai.com/v1",
        ),
        Provider(COMPATIBLE, "autopack.llm.openai_provider"),
        Provider("scripted", "autopack.llm.scripted", local=True),
    )
}


def provider_for(name: str, options: Mapping[str, Any]) -> Provider:
    """The provider a spec prefix names: a registered one, or any other name configured
    with a ``base_url`` (``[models.providers.<name>]``), served as OpenAI-compatible."""
    configured = options.get("base_url") is not None
    known = PROVIDERS.get(name)
    if known is not None and (known.base_url is not None or known.local or configured):
        return known
    if configured:
        return replace(PROVIDERS[COMPATIBLE], name=name)
    if known is not None:
        raise UnknownProvider(
            f"{name}: an OpenAI-compatible provider needs models.providers.{name}.base_url"
        )
    raise UnknownProvider(
        f"unknown model provider {name!r}: use {', '.join(PROVIDERS)}, or configure "
        f"models.providers.{name}.base_url for an OpenAI-compatible server"
    )
