"""Proof signatures: an HMAC-SHA256 of each landing proof's hash, with a key kept outside
the repository.

Hashes and trailers only show that a proof was not changed by accident: whoever can
write the repository can rewrite a commit, its proof and its trailer together. The
signature needs a secret the repository never holds: ``AUTOPACK_PROOF_KEY`` (a user or
CI secret) or, failing that, a key file in the user's config folder
(``$XDG_CONFIG_HOME/autopack/proof.key``, default ``~/.config``), created with mode 0600
the first time a run lands a phase. The sandbox never sees either: it passes no such
variable and mounts no home folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEY_ENV = "AUTOPACK_PROOF_KEY"
SCHEME = "hmac-sha256"
TRAILER = "Autopack-Signature"
_KEY_ID_LABEL = b"autopack proof key id"


class ProofKeyError(ValueError):
    """The key cannot be used: inside the repository, or readable by others."""


@dataclass(frozen=True)
class ProofKey:
    """A signing key and where it came from (never the secret itself)."""

    secret: bytes
    source: str

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"ProofKey(source={self.source!r}, id={self.key_id})"

    @property
    def key_id(self) -> str:
        """Names the key in a signature, so a proof signed with another key says so."""
        return hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def sign(self, digest: str) -> str:
        """The ``Autopack-Signature`` trailer value for a landing proof's hash."""
        mac = hmac.new(self.secret, digest.encode(), hashlib.sha256).hexdigest()
        return f"{SCHEME} {self.key_id} {mac}"

    def check(self, signature: str, digest: str) -> str | None:
        """Why ``signature`` does not sign ``digest`` with this key; ``None`` when it does."""
        if not signature:
            return "the commit has no Autopack-Signature"
        parts = signature.split()
        if len(parts) != 3 or parts[0] != SCHEME:
            return f"unreadable signature {signature!r}"
        if parts[1] != self.key_id:
            return f"signed with another key ({parts[1]}, this key is {self.key_id})"
        if not hmac.compare_digest(signature, self.sign(digest)):
            return "the signature does not match the proof: the proof was forged or altered"
        return None


def key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the user's key file lives (it may not exist yet)."""
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home(), ".config"))
    return Path(config, "autopack", "proof.key")


def load_key(
    repo: Path, *, create: bool, environ: Mapping[str, str] | None = None
) -> ProofKey | None:
    """The key from the environment, else the user's key file (made when ``create``);
    ``None`` when there is none. A key file inside ``repo`` is refused: anyone who can
    write the repository could read it."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return ProofKey(env[KEY_ENV].encode(), f"${KEY_ENV}")
    path = key_path(env)
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(repo))
    if real == root or root in real.parents:
        raise ProofKeyError(f"the proof key {path} is inside the repository {repo}; set {KEY_ENV}")
    if not path.exists():
        if not create:
            return None
        _create(path)
    if path.stat().st_mode & 0o077:
        raise ProofKeyError(f"the proof key {path} is readable by others: chmod 600 {path}")
    secret = path.read_bytes().strip()
    if not secret:
        raise ProofKeyError(f"the proof key {path} is empty")
    return ProofKey(secret, str(path))


def _create(path: Path) -> None:
    """A new random key, readable by its owner only (a race with another run loses
    nothing: the first file stays and both read it)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
