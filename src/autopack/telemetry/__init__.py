"""OpenTelemetry for runs: traces and metrics derived from a run's record, sent at its end.

This module decides *whether* and *where* to export, from ``[telemetry]`` and the
standard ``OTEL_*`` variables, without importing OpenTelemetry; :mod:`.export` builds
and sends (it needs the ``telemetry`` extra); :mod:`.spans` derives the spans.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from autopack.config import TelemetrySettings
from autopack.llm.cassette import register_secret_env

TELEMETRY_FILE = "telemetry.json"
"""In the run's folder: the outcome of its export (trace id, span count, or the error)."""
DEFAULT_ENDPOINT = "http://localhost:4318"
"""Where OTLP/HTTP goes when telemetry is on and no endpoint is configured anywhere."""


class TelemetryError(RuntimeError):
    """An export that could not be made (no SDK, a missing header variable, a collector
    that refused); the run has ended by then, so it is recorded, never raised to the user."""


@dataclass(frozen=True)
class Destination:
    """Where one run's telemetry goes. Header values are read from the environment when
    the export is made and kept nowhere else."""

    traces_url: str | None
    """``None``: the OTLP exporter reads the ``OTEL_EXPORTER_OTLP_*`` variables itself."""
    metrics_url: str | None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    include_content: bool = False

    def shown(self, url: str | None = None) -> str:
        """An endpoint (by default the traces') as a record may show it: no user, password,
        query or headers."""
        url = url or self.traces_url
        url = url or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT)
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}{parts.path}" if parts.port else parts.path
        )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def telemetry_enabled(
    settings: TelemetrySettings, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether runs export telemetry. Off by default. ``OTEL_SDK_DISABLED=true`` or
    ``enabled = false`` turn it off whatever else is set; ``enabled = true``, an
    ``endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` turn it on."""
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")) or settings.enabled is False:
        return False
    return bool(settings.enabled or settings.endpoint or _env_endpoint(env))


def _env_endpoint(env: Mapping[str, str]) -> str:
    return env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""
    )


def destination(
    settings: TelemetrySettings, environ: Mapping[str, str] | None = None
) -> Destination:
    """Where an enabled telemetry goes; raises :class:`TelemetryError` for a header whose
    variable is unset."""
    env = os.environ if environ is None else environ
    headers = {}
    for header, variable in settings.headers.items():
        register_secret_env(variable)  # its value is redacted wherever Autopack writes
        value = env.get(variable)
        if not value:
            raise TelemetryError(f"[telemetry] headers: {header}: ${variable} is not set")
        headers[header] = value
    base = settings.endpoint or ("" if _env_endpoint(env) else DEFAULT_ENDPOINT)
    if not base:
        return Destination(None, None, headers, settings.include_content)
    base = base.rstrip("/")
    return Destination(f"{base}/v1/traces", f"{base}/v1/metrics", headers, settings.include_content)
