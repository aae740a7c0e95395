"""``autopack doctor``: can a run start here, and if not, what to do about it.

Each check looks at one thing a run needs and returns a :class:`Finding` that names
the problem and its fix. A warning is something a run survives (it records it in the
evidence); a failure is something that stops a run, and only failures make the exit
code non-zero. Credentials are read to be checked, never printed: findings name the
environment variable, not its value.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from autopack.config import Settings
from autopack.gate.signing import KEY_ENV, ProofKeyError, key_path, load_key
from autopack.workspace import git
from autopack.workspace.runner import Sandbox, SubprocessSandbox, bwrap_works, sandbox_for

if TYPE_CHECKING:
    from autopack.llm.providers import Provider

Level = Literal["ok", "warn", "fail"]
MIN_GIT = (2, 25)
REACH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: what was found and, unless ``ok``, how to fix it."""

    check: str
    level: Level
    detail: str
    fix: str = ""


def diagnose(
    repo: Path,
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    temporal: str | None = None,
    model: str | None = None,
) -> list[Finding]:
    """Every finding for a run in ``repo``; the test command runs only when git works.

    ``model`` is a run's ``--model``: it replaces every configured model, so only it is
    checked."""
    env = dict(os.environ if environ is None else environ)
    findings = [check_git(repo), check_sandbox(settings.sandbox)]
    findings += check_providers(settings, env, model)
    findings += check_prices(
        settings, [model] if model else configured_specs(settings.models.model_dump())
    )
    findings.append(check_database(settings.database_url(repo)))
    findings.append(check_proof_key(repo, env))
    if temporal:
        findings.append(check_temporal(temporal))
    if findings[0].level == "ok":
        findings.append(check_tests(repo, settings))
    return findings


# -- git -----------------------------------------------------------------------------


def check_git(repo: Path) -> Finding:
    """git is installed, new enough for worktrees and trailers, and ``repo`` has a commit."""
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return Finding("git", "fail", "git is not installed", "install git (apt-get install git)")
    found = re.search(r"(\d+)\.(\d+)", out.stdout)
    version = (int(found[1]), int(found[2])) if found else (0, 0)
    wanted = ".".join(map(str, MIN_GIT))
    if version < MIN_GIT:
        return Finding(
            "git",
            "fail",
            f"{out.stdout.strip()} is older than {wanted}",
            f"install git {wanted} or newer",
        )
    if not git.is_repo(repo) or git.rev_parse(repo, "HEAD") is None:
        return Finding(
            "git",
            "fail",
            f"{repo} is not a git repository with a commit",
            "run `git init` and commit the project, or pass --repo",
        )
    return Finding("git", "ok", out.stdout.strip())


# -- sandbox -------------------------------------------------------------------------

_BWRAP_FIX = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap)"
_USERNS_FIX = (
    "allow unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1; "
    "on Ubuntu 24.04+ also kernel.apparmor_restrict_unprivileged_userns=0), "
    "or run where the container permits them"
)


def check_sandbox(kind: str) -> Finding:
    """bubblewrap works. Under ``auto`` a run survives without it (warn); under ``bwrap``
    it does not start (fail)."""
    if kind == "subprocess":
        return Finding(
            "sandbox",
            "warn",
            'disabled by configuration (sandbox = "subprocess")',
            'set sandbox = "auto" in autopack.toml to isolate commands',
        )
    level: Level = "fail" if kind == "bwrap" else "warn"
    consequence = "" if kind == "bwrap" else ": commands would run without a sandbox"
    path = shutil.which("bwrap")
    if path is None:
        return Finding("sandbox", level, f"bubblewrap is not installed{consequence}", _BWRAP_FIX)
    if not bwrap_works(path):
        return Finding(
            "sandbox",
            level,
            f"bubblewrap cannot create its namespaces here{consequence}",
            _USERNS_FIX,
        )
    return Finding("sandbox", "ok", f"bubblewrap at {path}")


# -- providers -----------------------------------------------------------------------


def configured_specs(models: Mapping[str, Any]) -> list[str]:
    """Every model spec the configuration names, each once, in a stable order."""
    specs = [models.get(role) or "" for role in ("planner", "builder", "auditor", "second_auditor")]
    for chain in (models.get("escalation") or {}).values():
        specs += list(chain)
    return list(dict.fromkeys(spec for spec in specs if spec))


def check_providers(
    settings: Settings,
    env: Mapping[str, str],
    override: str | None = None,
    extra_specs: list[str] | None = None,
) -> list[Finding]:
    """The roles a run needs have models, and each provider's key is set and accepted."""
    models = settings.models.model_dump()
    findings = []
    for role in ("builder", "auditor"):
        if (
            override is None
            and not models[role]
            and not (role == "builder" and models["escalation"])
        ):
            findings.append(
                Finding(
                    f"model {role}",
                    "fail",
                    f"no model for the {role}",
                    f'set models.{role} = "provider:name" in autopack.toml, or give '
                    "runs (and doctor) --model provider:name",
                )
            )
    providers: dict[str, list[str]] = {}
    specs = [override] if override else configured_specs(models)
    for spec in dict.fromkeys([*specs, *(extra_specs or [])]):
        provider, _, name = spec.partition(":")
        providers.setdefault(provider, []).append(name)
    for provider, names in providers.items():
        where = "--model" if override else "[models] in autopack.toml"
        findings.append(check_provider(provider, names, models, env, where))
    return findings


def check_prices(settings: Settings, specs: list[str]) -> list[Finding]:
    """Each model has a price: a call is never counted as free by accident."""
    from autopack.llm.errors import UnknownPrice
    from autopack.llm.pricing import PriceTable

    table = PriceTable.default(settings.prices)
    findings = []
    for spec in specs:
        try:
            table.price_for(spec)
        except UnknownPrice as exc:
            findings.append(Finding(f"price {spec}", "fail", str(exc)))  # it names the fix
    return findings


def preflight(
    settings: Settings, override: str | None = None, extra_specs: list[str] | None = None
) -> list[Finding]:
    """What must hold before a run's first model call: each role has a model with a
    price, and each provider answers with its key. Only failures are returned.

    ``autopack run`` and ``resume`` ask this first, so an unreachable provider or a
    refused key ends the command within seconds with the fix, not after minutes of
    retries. ``extra_specs`` are the plan's per-phase models."""
    env = dict(os.environ)
    models = settings.models.model_dump()
    specs = [override] if override else configured_specs(models)
    specs = list(dict.fromkeys([*specs, *(extra_specs or [])]))
    findings = check_providers(settings, env, override, extra_specs)
    findings += check_prices(settings, specs)
    return [finding for finding in findings if finding.level == "fail"]


def check_provider(
    provider: str,
    names: list[str],
    models: Mapping[str, Any],
    env: Mapping[str, str],
    where: str = "[models] in autopack.toml",
) -> Finding:
    """The door accepts the provider's specs, its key is set, and a cheap authenticated
    request succeeds."""
    from autopack.llm.errors import AuthError, ModelError
    from autopack.llm.providers import provider_for
    from autopack.llm.sdk_errors import ProviderInfo
    from autopack.llm.selection import resolve_model

    check = f"provider {provider}"
    for name in names:
        try:
            resolve_model(f"{provider}:{name}", settings=models)
        except ModelError as exc:
            return Finding(check, "fail", str(exc), f"correct {where}")
    given = (models.get("providers") or {}).get(provider) or {}
    options = {key: value for key, value in given.items() if value is not None}
    kind = provider_for(provider, options)
    if kind.local:
        return Finding(check, "ok", f"scripts {', '.join(names)}")
    base_url = str(options.get("base_url") or kind.base_url)
    key_env = options.get("api_key_env") or kind.key_env
    key = env.get(key_env) if key_env else None
    if key_env and not key:
        return Finding(
            check,
            "fail",
            f"{key_env} is not set",
            f"export {key_env}=<your {provider} API key>, or name the variable that "
            f"holds it in models.providers.{provider}.api_key_env",
        )
    if key_env:
        try:
            ProviderInfo(provider, names[0], key_env, base_url).check_key(key)
        except AuthError as exc:
            return Finding(check, "fail", str(exc), f"put the key in {key_env} as issued")
    return _reach(check, kind, base_url, key, key_env)


def _reach(
    check: str, kind: Provider, base_url: str, key: str | None, key_env: str | None
) -> Finding:
    """List the models: the cheapest request that proves both the address and the key."""
    provider = kind.name
    url, headers = kind.models_request(base_url, key)
    try:
        response = httpx.get(url, headers=headers, timeout=REACH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Finding(
            check,
            "fail",
            f"cannot reach {url}: {type(exc).__name__}: {exc}",
            f"check the network, or models.providers.{provider}.base_url",
        )
    if response.status_code in (401, 403):
        return Finding(
            check,
            "fail",
            f"{url} refused the key in {key_env} (HTTP {response.status_code})",
            f"put a valid key in {key_env}",
        )
    if response.status_code >= 400:
        return Finding(
            check,
            "fail",
            f"{url} answered HTTP {response.status_code}",
            f"check models.providers.{provider}.base_url",
        )
    return Finding(check, "ok", f"{url} answered with the key from {key_env or 'no key'}")


# -- database ------------------------------------------------------------------------


def check_database(url: str) -> Finding:
    """The database answers ``SELECT 1``; a SQLite file's folder is writable."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        return Finding(
            "database",
            "fail",
            f"db_url is not a database URL: {exc}",
            "set db_url (or AUTOPACK_DB_URL) to a SQLAlchemy URL",
        )
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return _check_sqlite_folder(Path(parsed.database), shown)
    fix = "start the database server, or point db_url (AUTOPACK_DB_URL) at one that runs"
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(parsed, connect_args=connect_args)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except ModuleNotFoundError as exc:
        return Finding(
            "database", "fail", f"no driver for {shown}: {exc}", "pip install 'autopack[postgres]'"
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
        return Finding("database", "fail", f"cannot connect to {shown}: {reason}", fix)
    return Finding("database", "ok", shown)


def _check_sqlite_folder(path: Path, shown: str) -> Finding:
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    if not os.access(folder, os.W_OK):
        return Finding(
            "database",
            "fail",
            f"{folder} is not writable, so {shown} cannot be created",
            "make the folder writable, or set db_url elsewhere",
        )
    return Finding("database", "ok", shown)


# -- temporal ------------------------------------------------------------------------


def check_proof_key(repo: Path, env: Mapping[str, str]) -> Finding:
    """The key that signs what lands is usable: outside the repository, owner-only."""
    try:
        key = load_key(repo, create=False, environ=env)
    except ProofKeyError as exc:
        fix = f"keep the key outside the repository with mode 0600, or set {KEY_ENV}"
        return Finding("proof key", "fail", str(exc), fix)
    if key is None:
        return Finding("proof key", "ok", f"the first phase that lands creates {key_path(env)}")
    return Finding("proof key", "ok", f"proofs are signed with the key from {key.source}")


def check_temporal(address: str) -> Finding:
    """Temporal's frontend accepts a connection at ``host:port``."""
    host, _, port = address.rpartition(":")
    fix = "start Temporal (temporal server start-dev), or pass the address it listens on"
    if not host or not port.isdigit():
        return Finding("temporal", "fail", f"{address!r} is not host:port", fix)
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        return Finding("temporal", "fail", f"cannot connect to {address}: {exc}", fix)
    return Finding("temporal", "ok", address)


# -- the test command ----------------------------------------------------------------


def check_tests(repo: Path, settings: Settings) -> Finding:
    """The test command gives a usable baseline on a clean checkout of HEAD: the same run
    and the same judgement (:func:`autopack.verify.baseline_problem`) that stop a run
    before its first Builder call.

    Failing tests are only a warning: the gate counts them as pre-existing.
    """
    from autopack.verify import baseline_problem, detect_test_command, measure_baseline

    command = settings.test_command or detect_test_command(repo)
    if not command:
        return Finding(
            "tests",
            "warn",
            "no test command configured or detected: the gate will have no test evidence",
            "set test_command in autopack.toml",
        )
    with _clean_checkout(repo) as checkout:
        run, _ = measure_baseline(
            _sandbox(settings), checkout, command, timeout_s=settings.test_timeout_s
        )
    problem = baseline_problem(run)
    if problem is not None:
        return Finding("tests", "fail", problem.details(), problem.fix)
    env = run.environment
    ran_with = f" with {env['python']} (Python {env['python_version']})" if env else ""
    failing = sorted(test for test, outcome in run.outcomes.items() if outcome != "passed")
    if failing or run.exit_code != 0:
        listed = ", ".join(failing[:5]) + (
            f" (+{len(failing) - 5} more)" if len(failing) > 5 else ""
        )
        return Finding(
            "tests",
            "warn",
            f"`{command}` has failing tests on a clean checkout{ran_with}; "
            f"they count as pre-existing failures: {listed or f'exit {run.exit_code}'}",
            "fix them when you can",
        )
    plugins = ", ".join(env.get("plugins", [])) or "none"
    detail = f"`{command}` passes on a clean checkout{ran_with}"
    return Finding("tests", "ok", detail + (f"; pytest plugins: {plugins}" if env else ""))


def _sandbox(settings: Settings) -> Sandbox:
    """The configured sandbox and limits; when it cannot work the sandbox check has said
    so already."""
    try:
        return sandbox_for(settings)
    except (RuntimeError, ValueError):
        return SubprocessSandbox(limits=settings.sandbox_limits)


@contextlib.contextmanager
def _clean_checkout(repo: Path) -> Iterator[Path]:
    """A detached worktree of HEAD: only committed files, nothing the developer has lying
    around that the tests might silently depend on."""
    with tempfile.TemporaryDirectory(prefix="autopack-doctor-") as scratch:
        checkout = Path(scratch) / "checkout"
        git.add_worktree(repo, checkout, "HEAD")
        try:
            yield checkout
        finally:
            git.remove_worktree(repo, checkout)
