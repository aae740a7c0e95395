"""API keys: who may call the HTTP API, with which scope. Only a hash of each secret is kept.

A secret is 32 random bytes, so a plain SHA-256 is enough to make a stolen database
useless (there is nothing to brute-force), and it lets a request find its key by one
indexed lookup instead of comparing against every stored hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Engine,
    RowMapping,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)

from autopack.store.tables import metadata

SCOPES: tuple[str, ...] = ("read", "operate", "admin")
"""Each scope includes the ones before it: an admin key may also operate and read."""
SECRET_PREFIX = "apk_"

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
)


class KeyNotFound(KeyError):
    """No API key with that id."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    scope: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, needed: str) -> bool:
        """Whether this key's scope covers ``needed`` (scopes are ordered)."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


ACTIVE_KEY = select(api_keys.c.id, api_keys.c.name, api_keys.c.scope).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
"""Every request reads its key afresh (one indexed row, about 20 us by
:meth:`Store.read_first`), so a key revoked from any process is refused on its next
request. A cache of verified keys would need a read of the same cost to hear of a
revocation, so there is none."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_key(engine: Engine, name: str, scope: str) -> tuple[ApiKey, str]:
    """Store a new key; returns it and its secret, which is never stored or shown again."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    key = ApiKey(f"key-{secrets.token_hex(4)}", name, scope, _now(), None)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key.id,
                name=name,
                scope=scope,
                key_hash=hash_secret(secret),
                created_at=key.created_at,
                revoked_at=None,
            )
        )
    return key, secret


def list_keys(engine: Engine) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    with engine.connect() as conn:
        return [_key(row) for row in conn.execute(query).mappings()]


def revoke_key(engine: Engine, key_id: str) -> ApiKey:
    """Mark a key revoked (kept for the record); revoking twice keeps the first time."""
    with engine.begin() as conn:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        )
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
    if row is None:
        raise KeyNotFound(key_id)
    return _key(row)


def _key(row: RowMapping) -> ApiKey:
    revoked = row["revoked_at"]
    return ApiKey(
        id=str(row["id"]),
        name=str(row["name"]),
        scope=str(row["scope"]),
        created_at=str(row["created_at"]),
        revoked_at=None if revoked is None else str(revoked),
    )
