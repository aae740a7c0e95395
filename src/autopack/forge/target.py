"""Which forge, repository and API a run's branch goes to, and the token for it.

The forge and ``owner/name`` are read from the URL of the git remote: the URL as
configured, or as ``url.<base>.insteadOf`` rewrites it (the first that names a forge; the
push itself goes by the remote's name, so git applies the rewrite): github.com is GitHub,
a host whose name has ``gitlab`` in it is GitLab. ``--forge``, ``--api-url`` and
``--repository`` (or ``[pr]`` in ``autopack.toml``) say it for any other host: GitHub
Enterprise, a self-hosted GitLab, a remote that is a path. The token is read from the
environment only and kept in memory: never printed, stored or written to git config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from autopack.config import ConfigError, PrSettings
from autopack.workspace import git

TOKEN_ENV = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN"}
PUSH_USER = {"github": "x-access-token", "gitlab": "oauth2"}
"""The user name each forge expects with a token over HTTPS."""
SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class ForgeTarget:
    """Where the pull request goes. ``token`` is excluded from ``repr``."""

    forge: str
    repository: str
    api_url: str
    remote: str
    remote_url: str
    token_env: str
    token: str = field(repr=False)

    @property
    def label(self) -> str:
        return {"github": "GitHub", "gitlab": "GitLab"}[self.forge]


@dataclass(frozen=True)
class TargetOptions:
    """What the command line says; empty strings defer to ``[pr]``, then the remote."""

    forge: str = ""
    api_url: str = ""
    repository: str = ""
    remote: str = ""


def redacted(url: str) -> str:
    """``url`` without any user or password in it, for messages."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname and (parts.username or parts.password):
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=host).geturl()
    return url


def host_and_path(url: str) -> tuple[str, str] | None:
    """Host and repository path of a remote URL; ``None`` for a local path or file URL."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ssh", "git") and parts.hostname:
        return parts.hostname.lower(), parts.path
    scp = SCP_LIKE.match(url)
    if not parts.scheme and scp and not url.startswith(("/", ".")):
        return scp["host"].lower(), scp["path"]
    return None


def forge_of_host(host: str) -> str:
    if host == "github.com" or host.endswith(".github.com"):
        return "github"
    return "gitlab" if "gitlab" in host else ""


def default_api(forge: str, host: str) -> str:
    if forge == "github":
        return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
    return f"https://{host}"


def _remote_url(repo: Path, remote: str) -> tuple[str, tuple[str, str] | None]:
    """The remote's URL that names the forge (as configured, else as rewritten by
    ``insteadOf``), with its host and path; a path remote has none."""
    rewritten = git.run_git(repo, "remote", "get-url", remote)
    if rewritten.returncode != 0:
        raise ConfigError(f"the repository has no git remote {remote!r} (--remote, [pr] remote)")
    configured = git.run_git(repo, "config", "--get", f"remote.{remote}.url").stdout.strip()
    urls = [u for u in (configured, rewritten.stdout.strip()) if u]
    found = [(u, host_and_path(u)) for u in urls]
    for url, where in found:
        if where and forge_of_host(where[0]):
            return url, where
    return next(((u, w) for u, w in found if w), (urls[-1], None))


def resolve(
    repo: Path, settings: PrSettings, options: TargetOptions, environ: dict[str, str] | None = None
) -> ForgeTarget:
    """The target of ``repo``'s pull requests; :class:`ConfigError` (exit 2) names what is
    missing, :class:`~autopack.forge.clients.ForgeProblem` a missing token (exit 3)."""
    from autopack.forge.clients import ForgeProblem

    remote = options.remote or settings.remote
    url, where = _remote_url(repo, remote)
    forge = options.forge or settings.forge or (forge_of_host(where[0]) if where else "")
    if forge not in TOKEN_ENV:
        raise ConfigError(
            f"cannot tell the forge of remote {remote} ({redacted(url)}): "
            "give --forge github|gitlab or [pr] forge"
        )
    path = where[1].strip("/").removesuffix(".git") if where else ""
    repository = options.repository or settings.repository or path
    if repository.count("/") < 1 or not all(repository.split("/")):
        raise ConfigError(
            f"cannot tell owner/name from remote {remote} ({redacted(url)}): "
            "give --repository OWNER/NAME or [pr] repository"
        )
    api_url = options.api_url or settings.api_url
    if not api_url:
        if where is None:
            raise ConfigError(f"remote {remote} is a local path: give --api-url or [pr] api_url")
        api_url = default_api(forge, where[0])
    token_env = settings.token_env or TOKEN_ENV[forge]
    token = (os.environ if environ is None else environ).get(token_env, "")
    if not token:
        raise ForgeProblem(f"no token: set {token_env} to a {forge} token for {repository}")
    return ForgeTarget(forge, repository, api_url.rstrip("/"), remote, url, token_env, token)
