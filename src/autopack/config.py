"""Settings: ``autopack.toml`` (or ``[tool.autopack]`` in ``pyproject.toml``), then ``AUTOPACK_*``.

Every field has a one-line description; unknown keys are errors, so a typo in the
config is reported (exit 2) instead of silently ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from autopack.configfile import (
    CONFIG_FILE,
    STATE_DIR,
    ConfigError,
    default_db_path,
    read_config_file,
)

MCP_NAME = r"^[a-z0-9][a-z0-9_-]{0,30}$"
"""An MCP server's name in ``[mcp.servers]``; a tool is offered to the model as
``mcp__NAME__TOOL``, which provider tool-name rules allow."""

__all__ = ["CONFIG_FILE", "STATE_DIR", "ConfigError", "Settings", "load_settings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelLimitSettings(_Section):
    """``[models.limits."provider:name"]``: one model's limits; unset keys keep the default."""

    max_output_tokens: int | None = Field(default=None, gt=0, description="Longest reply.")
    context_window: int | None = Field(default=None, gt=0, description="Prompt plus reply.")
    call_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Longest one call may take."
    )


class ProviderSettings(_Section):
    """``[models.providers.NAME]``: where a provider answers and how it is authenticated."""

    base_url: str | None = Field(default=None, description="Its address (any OpenAI-compatible).")
    api_key_env: str | None = Field(default=None, description="Env var holding its API key.")
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("timeout_seconds", "timeout"),
        description="Client timeout of one call (``timeout`` is accepted too).",
    )


class ModelSettings(_Section):
    """Which model plays which role; specs are ``provider:name``."""

    planner: str = Field(default="", description="Model that drafts plans.")
    builder: str = Field(default="", description="Model that writes the code.")
    auditor: str = Field(default="", description="Model that reviews each change.")
    second_auditor: str = Field(default="", description="Second auditor for high-risk phases.")
    escalation: dict[str, list[str]] = Field(
        default_factory=dict, description="Builder model per attempt, per risk level."
    )
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict, description="Per provider: base_url, api_key_env, timeout."
    )
    limits: dict[str, ModelLimitSettings] = Field(
        default_factory=dict,
        description="Per model spec: max_output_tokens, context_window, call_seconds.",
    )


class GateRule(_Section):
    """An override of one gate rule (see ``gate/policy.yaml``); unset keys keep the default."""

    decision: Literal["PASS", "RETRY", "NEEDS_APPROVAL", "BLOCK"] | None = Field(
        default=None, description="What the gate decides when the rule's fact holds."
    )
    reason: str | None = Field(default=None, description="The reason the decision gives.")
    unless_approved: bool | None = Field(
        default=None, description="A person's approval lifts the rule (NEEDS_APPROVAL only)."
    )


class GateSettings(_Section):
    """The ``[gate]`` table: the verify step's extra checks, and overrides of the policy."""

    ruff: bool = Field(default=False, description="Run ruff on the changed Python files.")
    risk_threshold: int | None = Field(default=None, description="Risk above this asks a person.")
    precedence: list[str] | None = Field(default=None, description="Decisions, strongest first.")
    protected_paths: list[str] | None = Field(
        default=None, description="Replaces the policy's protected globs (see also top level)."
    )
    sensitive_paths: list[str] | None = Field(
        default=None, description="Replaces the policy's sensitive globs (they raise the risk)."
    )
    rules: dict[str, GateRule] = Field(default_factory=dict, description="Rule overrides by id.")

    def policy_overrides(self) -> dict[str, Any]:
        """The keys that override ``gate/policy.yaml``: every one that was set."""
        data = self.model_dump(exclude_none=True, exclude={"ruff"})
        if not data.get("rules"):
            data.pop("rules", None)
        return data


class ApprovalSettings(_Section):
    """``[approvals]``: what happens while a phase waits for a person."""

    timeout_s: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Longest wait; unset = forever."
    )
    on_timeout: Literal["fail", "wait"] = Field(default="fail", description="fail or wait.")
    webhook_url: str = Field(default="", description="Where pending approvals are POSTed.")
    webhook_secret_env: str = Field(default="", description="Env var of the HMAC key.")


class McpServer(_Section):
    """``[mcp.servers.NAME]``: an MCP server whose tools phases may allow their Builder.

    A stdio server (``command``) is started in the phase's worktree through the same
    sandbox as every command; a ``url`` names a Streamable HTTP server.
    """

    command: list[str] | None = Field(
        default=None, min_length=1, description="Program and arguments of a stdio server."
    )
    url: str | None = Field(
        default=None, pattern=r"^https?://", description="Streamable HTTP endpoint."
    )
    network: bool = Field(default=False, description="Let a stdio server reach the network.")
    timeout_s: float = Field(
        default=60, gt=0, le=3600, allow_inf_nan=False, description="Longest one call may take."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (stdio) or url (HTTP)")
        return self


class MemorySettings(_Section):
    """``[memory]``: where the memory keeps its vectors."""

    vector_store: Literal["array", "qdrant"] = Field(
        default="array",
        description="array (NumPy, embedded) or qdrant (local mode, small memories only).",
    )
    qdrant_url: str = Field(default="", description="A Qdrant server; implies vector_store qdrant.")


class McpSettings(_Section):
    """``[mcp]``: MCP servers the Builder may use."""

    servers: dict[Annotated[str, StringConstraints(pattern=MCP_NAME)], McpServer] = Field(
        default_factory=dict, description="By name; a phase allows tools as NAME.TOOL."
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TelemetrySettings(_Section):
    """``[telemetry]``: runs as OpenTelemetry traces and metrics, see docs/telemetry.md.

    Sent over OTLP once, when a run ends; the standard ``OTEL_*`` variables apply too."""

    enabled: bool | None = Field(
        default=None,
        description="On or off; unset: on when an OTLP endpoint is set, here or in OTEL_*.",
    )
    endpoint: str = Field(default="", description="OTLP/HTTP base URL, e.g. http://localhost:4318.")
    protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf", description="OTLP transport (http/protobuf)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> the environment variable holding its value.",
    )
    include_content: bool = Field(
        default=False, description="Export prompt, reply and tool text (never by default)."
    )

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value

    @field_validator("headers")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            if not _ENV_NAME.fullmatch(env):
                raise ValueError(
                    f"{header}: the name of an environment variable that holds the value, "
                    "not the value itself"
                )
        return value


class SandboxLimits(_Section):
    """Resource limits of every sandboxed command; the defaults fit a real test suite."""

    max_processes: int = Field(
        default=1024, ge=16, description="Processes and threads a command may have at once."
    )
    memory_mb: int = Field(
        default=8192, ge=64, description="Heap and private memory per process (RLIMIT_DATA)."
    )
    max_file_mb: int = Field(default=2048, ge=1, description="Largest file a command may write.")
    tmp_mb: int = Field(default=2048, ge=16, description="Size of the sandbox's private /tmp.")


class PrSettings(_Section):
    """``[pr]``: the pull request (GitHub) or merge request (GitLab) of a run's branch."""

    open_on_finish: bool = Field(
        default=False, description="autopack serve opens or updates it when a run ends."
    )
    sync_approvals: bool = Field(
        default=False, description="autopack serve answers waiting phases from its reviews."
    )
    poll_s: float = Field(
        default=30,
        gt=0,
        allow_inf_nan=False,
        description="Seconds between serve's looks for ended runs and reviews.",
    )
    forge: Literal["", "github", "gitlab"] = Field(
        default="", description="github or gitlab; empty: told by the remote's host."
    )
    api_url: str = Field(
        default="", description="API base (GitHub Enterprise, self-hosted GitLab, tests)."
    )
    repository: str = Field(default="", description="owner/name; empty: the remote URL's path.")
    remote: str = Field(default="origin", description="The git remote the branch is pushed to.")
    base: str = Field(default="", description="Target branch; empty: the repository's default.")
    token_env: str = Field(
        default="", description="Env var of the token; empty: GITHUB_TOKEN or GITLAB_TOKEN."
    )


class Settings(_Section):
    """All of Autopack's settings for one repository."""

    db_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in .autopack/.")
    test_command: str | None = Field(default=None, description="Command that runs the tests.")
    test_timeout_s: float = Field(
        default=900, gt=0, allow_inf_nan=False, description="Timeout of one test command."
    )
    sandbox: Literal["auto", "bwrap", "subprocess"] = Field(
        default="auto", description="auto, bwrap or subprocess."
    )
    sandbox_limits: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Limits of every sandboxed command."
    )
    max_parallel: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Phases at once."
    )
    protected_paths: list[str] = Field(
        default_factory=list,
        description="Globs no phase may write, added to the gate policy's protected paths.",
    )
    models: ModelSettings = ModelSettings()
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="USD per million tokens, per model spec."
    )
    gate: GateSettings = Field(
        default_factory=GateSettings, description="Gate checks and policy overrides."
    )
    tidy_on_finish: bool = Field(default=False, description="Write ledgers when a run ends.")
    enable_sot_memory_indexing: bool = Field(default=False, description="Index the ledgers.")
    sot_retrieval_enabled: bool = Field(default=False, description="Give the Builder lessons.")
    memory: MemorySettings = Field(
        default_factory=MemorySettings, description="Memory service options."
    )
    approvals: ApprovalSettings = Field(
        default_factory=ApprovalSettings, description="Approval timeout policy and webhook."
    )
    mcp: McpSettings = Field(
        default_factory=McpSettings, description="MCP servers whose tools phases may allow."
    )
    pr: PrSettings = Field(
        default_factory=PrSettings, description="Pull requests of run branches (autopack pr)."
    )
    telemetry: TelemetrySettings = Field(
        default_factory=TelemetrySettings, description="OpenTelemetry export of runs."
    )

    _source: str = PrivateAttr(default="defaults")

    @property
    def source(self) -> str:
        """The file these settings were read from (``defaults`` when none)."""
        return self._source

    def database_url(self, repo: Path) -> str:
        return self.db_url or f"sqlite:///{default_db_path(repo)}"


_ENV_FIELDS = {
    "DB_URL": "db_url",
    "TEST_COMMAND": "test_command",
    "SANDBOX": "sandbox",
    "MAX_PARALLEL": "max_parallel",
    "ENABLE_SOT_MEMORY_INDEXING": "enable_sot_memory_indexing",
    "SOT_RETRIEVAL_ENABLED": "sot_retrieval_enabled",
    "TIDY_ON_FINISH": "tidy_on_finish",
}


def load_settings(repo: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read the repository's settings; raise :class:`ConfigError` naming the bad key."""
    environ = dict(os.environ if environ is None else environ)
    data, source = read_config_file(repo)
    for suffix, field in _ENV_FIELDS.items():
        value = environ.get(f"AUTOPACK_{suffix}")
        if value is not None:
            data[field] = value
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"]
        if first["type"] == "extra_forbidden":  # most often a typo
            message = "unknown setting (docs/config-reference.md lists them)"
        raise ConfigError(f"{source}: {where}: {message}") from exc
    settings._source = source
    return settings


def autopack_table(pyproject_text: str) -> dict[str, Any] | None:
    """The ``[tool.autopack]`` table of a ``pyproject.toml`` (``None`` when it has none);
    raises ``tomllib.TOMLDecodeError`` on text that is not TOML."""
    table = tomllib.loads(pyproject_text).get("tool", {}).get("autopack")
    return dict(table) if isinstance(table, dict) else None


def render_default_config(test_command: str | None) -> str:
    """The ``autopack.toml`` that ``autopack init`` writes."""
    command = f'"{test_command}"' if test_command else '""  # no tests detected'
    return f"""# Autopack settings for this repository. Every key is optional.
test_command = {command}
# max_parallel = 2
# protected_paths = ["deploy/**"]  # added to the gate policy's (CI config, autopack.toml, ...)

[models]
# builder = "anthropic:claude-sonnet-4-6"
# auditor = "openai:gpt-4.1"
# planner = "anthropic:claude-sonnet-4-6"

[gate]
# risk_threshold = 60
# ruff = true  # ruff check on changed Python files, when the project configures ruff
"""
