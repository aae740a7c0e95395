"""What happens around a phase that waits for a person: the timeout policy and the webhook.

Configured in ``autopack.toml``::

    [approvals]
    timeout_s = 3600              # how long a phase may wait; unset = forever
    on_timeout = "fail"           # "fail" the phase, or "wait" (keep waiting)
    webhook_url = "https://example.invalid/hooks/autopack"
    webhook_secret_env = "AUTOPACK_WEBHOOK_SECRET"   # HMAC-SHA256 key, read from the env

The webhook receives a JSON POST per pending approval, signed in the header
``X-Autopack-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from autopack.config import ApprovalSettings
from autopack.projection import RunView
from autopack.states import PhaseState

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Autopack-Signature"


@dataclass(frozen=True)
class ApprovalPolicy:
    """The ``[approvals]`` table, checked."""

    timeout_s: float | None = None
    fail_on_timeout: bool = True
    webhook_url: str = ""
    webhook_secret_env: str = ""

    @classmethod
    def from_settings(cls, section: ApprovalSettings) -> ApprovalPolicy:
        """The policy of the ``[approvals]`` table (checked when the file was loaded)."""
        return cls(
            timeout_s=section.timeout_s,
            fail_on_timeout=section.on_timeout == "fail",
            webhook_url=section.webhook_url,
            webhook_secret_env=section.webhook_secret_env,
        )


def timed_out(view: RunView, policy: ApprovalPolicy, now: datetime) -> Iterator[tuple[str, int]]:
    """Phases (id, attempt) whose wait for approval exceeded the policy's timeout."""
    if policy.timeout_s is None or not policy.fail_on_timeout:
        return
    for phase in view.phases.values():
        if phase.state is PhaseState.AWAITING_APPROVAL and phase.awaiting_since:
            waited = (now - datetime.fromisoformat(phase.awaiting_since)).total_seconds()
            if waited > policy.timeout_s:
                yield phase.id, phase.attempt


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def announce(policy: ApprovalPolicy, payload: dict[str, Any]) -> bool:
    """POST a pending approval to the webhook; a failure is logged, never raised."""
    if not policy.webhook_url:
        return False
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json"}
    secret = os.environ.get(policy.webhook_secret_env, "") if policy.webhook_secret_env else ""
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    try:
        response = httpx.post(policy.webhook_url, content=body, headers=headers, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("approval webhook %s failed: %s", policy.webhook_url, exc)
        return False
    return True
