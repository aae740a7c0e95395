"""The provider registry: one line per provider, and everything asks it.

A provider registered with one line is built by ``resolve_model`` and probed by
``autopack doctor`` (its key variable, its address, its models request) with no other
change; an unknown one is refused with the registered names."""

from __future__ import annotations

import importlib

import pytest
from fakeserver import FakeServer

from autopack.ci.doctor import check_provider
from autopack.llm.errors import UnknownProvider
from autopack.llm.providers import PROVIDERS, Provider, provider_for
from autopack.llm.selection import resolve_model

KEY = "acme-TESTKEY-0123456789abcdefghijklmnop"


def test_every_registered_module_provides_what_the_registry_calls() -> None:
    for provider in PROVIDERS.values():
        module = importlib.import_module(provider.module)
        assert callable(module.build), provider
        if not provider.local:
            assert callable(module.models_request), provider


def test_each_spec_prefix_builds_its_provider_s_model(tmp_path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("version: 1\nreplies: {}\n")
    compatible = {"providers": {"ollama": {"base_url": "http://127.0.0.1:9/v1"}}}
    built = {
        "anthropic:claude-sonnet-4-6": resolve_model("anthropic:claude-sonnet-4-6"),
        "openai:gpt-4.1": resolve_model("openai:gpt-4.1"),
        "ollama:qwen": resolve_model("ollama:qwen", settings=compatible),
        f"scripted:{script}": resolve_model(f"scripted:{script}"),
    }
    assert {spec: type(model).__name__ for spec, model in built.items()} == {
        "anthropic:claude-sonnet-4-6": "AnthropicModel",
        "openai:gpt-4.1": "OpenAIModel",
        "ollama:qwen": "OpenAIModel",
        f"scripted:{script}": "ScriptedModel",
    }
    assert all(model.spec == spec for spec, model in built.items())


def test_an_unknown_provider_is_refused_with_the_registered_names() -> None:
    with pytest.raises(UnknownProvider) as refused:
        resolve_model("acme:m1")
    assert "'acme'" in str(refused.value) and "anthropic, openai" in str(refused.value)
    with pytest.raises(UnknownProvider, match=r"models\.providers\.openai-compatible\.base_url"):
        provider_for("openai-compatible", {})


def test_a_provider_added_with_one_line_is_built_and_probed_by_the_doctor(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor takes the key variable, the default address and the probe from the
    registry line: nothing else names the new provider."""
    server.api_key = KEY
    line = Provider("acme", "autopack.llm.openai_provider", "ACME_API_KEY", server.openai_url)
    monkeypatch.setitem(PROVIDERS, "acme", line)
    model = resolve_model("acme:m1")
    assert type(model).__name__ == "OpenAIModel" and model.spec == "acme:m1"

    missing = check_provider("acme", ["m1"], {}, env={})
    assert (missing.level, missing.detail) == ("fail", "ACME_API_KEY is not set")

    wrong = check_provider("acme", ["m1"], {}, env={"ACME_API_KEY": KEY + "x"})
    assert wrong.level == "fail" and "refused the key in ACME_API_KEY (HTTP 401)" in wrong.detail

    ok = check_provider("acme", ["m1"], {}, env={"ACME_API_KEY": KEY})
    assert ok.level == "ok", ok
    assert ok.detail == f"{server.openai_url}/models answered with the key from ACME_API_KEY"
