"""Choosing a model per role, risk and attempt, and turning specs into models."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopack.llm.anthropic_provider import AnthropicModel
from autopack.llm.door import choose_model, resolve_model
from autopack.llm.errors import NoModelConfigured, UnknownProvider
from autopack.llm.openai_provider import OpenAIModel
from autopack.llm.scripted import ScriptedModel

SETTINGS = {
    "planner": "anthropic:claude-opus-4-5",
    "builder": "anthropic:claude-haiku-4-5",
    "auditor": "openai:gpt-4.1",
    "escalation": {"high": ["anthropic:claude-sonnet-4-5", "anthropic:claude-opus-4-5"]},
}


def test_override_wins_over_everything() -> None:
    assert choose_model("builder", "high", 1, SETTINGS, "openai:gpt-5") == "openai:gpt-5"


def test_escalation_steps_one_model_per_attempt_and_stays_on_the_last() -> None:
    chosen = [choose_model("builder", "high", attempt, SETTINGS, None) for attempt in (1, 2, 3, 9)]
    assert chosen == [
        "anthropic:claude-sonnet-4-5",
        "anthropic:claude-opus-4-5",
        "anthropic:claude-opus-4-5",
        "anthropic:claude-opus-4-5",
    ]


def test_without_a_chain_for_the_risk_the_role_model_is_used() -> None:
    assert choose_model("builder", "low", 3, SETTINGS, None) == "anthropic:claude-haiku-4-5"


def test_the_escalation_chain_is_the_builders_only() -> None:
    assert choose_model("auditor", "high", 2, SETTINGS, None) == "openai:gpt-4.1"
    assert choose_model("planner", "high", 1, SETTINGS, None) == "anthropic:claude-opus-4-5"


def test_a_role_without_a_model_names_the_setting() -> None:
    with pytest.raises(NoModelConfigured, match=r"models\.builder") as caught:
        choose_model("builder", "low", 1, {}, None)
    assert caught.value.environment


def test_specs_resolve_to_their_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x" * 4)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x" * 8)
    script = tmp_path / "script.yaml"
    script.write_text("version: 1\nreplies: {'*': {builder: [hi]}}\n")
    assert isinstance(resolve_model(f"scripted:{script}"), ScriptedModel)
    assert resolve_model(f"scripted:{script}").spec == f"scripted:{script}"
    assert isinstance(resolve_model("anthropic:claude-opus-4-5"), AnthropicModel)
    assert isinstance(resolve_model("openai:gpt-4.1"), OpenAIModel)
    flat = resolve_model(
        "openai-compatible:llama3", settings={"base_url": "http://127.0.0.1:8080/v1"}
    )
    assert flat.spec == "openai-compatible:llama3"
    named = {"providers": {"vllm": {"base_url": "http://127.0.0.1:8000/v1", "api_key_env": "VK"}}}
    assert resolve_model("vllm:qwen", settings=named).spec == "vllm:qwen"


@pytest.mark.parametrize(
    ("spec", "settings", "match"),
    [
        ("claude", None, "provider:name"),
        ("mystery:model", None, r"models\.providers\.mystery\.base_url"),
        ("openai-compatible:llama3", None, "base_url"),
        ("openai:gpt-4.1", {"providers": {"openai": {"base_ulr": "x"}}}, "base_ulr"),
    ],
)
def test_bad_specs_are_environment_errors(
    spec: str, settings: dict[str, object] | None, match: str
) -> None:
    with pytest.raises(UnknownProvider, match=match) as caught:
        resolve_model(spec, settings=settings)
    assert caught.value.environment
