"""The CI contract Autopack writes into the repositories it builds.

``autopack ci init`` renders two files from the templates beside this module: a GitHub
Actions workflow and a pre-commit configuration. Both run the same three checks: the
project's tests, ``autopack tidy --check`` (ledgers are append-only) and
``autopack verify-proof --all`` (every commit on an ``autopack/*`` branch matches its
proof). Both install the exact Autopack that wrote them, so CI checks with the rules the
run was made with, not whatever version is newest when CI happens to run.

Where that Autopack comes from is read from its installation (PEP 610's
``direct_url.json``): a release from an index is pinned by version; one installed from a
git URL by that URL and commit; one installed from a local checkout by the checkout's
remote and commit. A local checkout with no remote is refused: CI could not reach it, and
a requirement that cannot install is worse than none. ``--autopack-source`` overrides.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

from autopack.config import load_settings
from autopack.workspace import git

PROVIDERS = ("github",)
WORKFLOW_PATH = Path(".github/workflows/autopack.yml")
PRE_COMMIT_PATH = Path(".pre-commit-config.yaml")


class ContractError(ValueError):
    """The contract cannot be written for this repository (bad input: exit 2)."""


class _Template(Template):
    """``%name`` placeholders: ``$`` belongs to the shell and to GitHub expressions."""

    delimiter = "%"


@dataclass(frozen=True)
class Contract:
    """What the generated files run, as decided from the target repository."""

    test_command: str
    install_command: str
    main_branch: str
    requirement: str
    """The pip requirement that installs this Autopack in CI (see :func:`autopack_source`)."""


def autopack_source(installed: metadata.Distribution | None = None) -> str:
    """A pip requirement for exactly the Autopack that is running, which CI can install."""
    dist = installed or metadata.distribution("autopack")
    recorded = dist.read_text("direct_url.json")
    if not recorded:
        return f"autopack=={dist.version}"  # installed from an index: the release exists there
    origin = json.loads(recorded)
    url = str(origin.get("url", ""))
    vcs = origin.get("vcs_info") or {}
    if vcs.get("vcs") == "git" and vcs.get("commit_id"):
        return f"autopack @ git+{url}@{vcs['commit_id']}"
    if url.startswith(("https://", "http://")):
        return f"autopack @ {url}"
    if url.startswith("file://"):
        return _checkout_source(Path(url.removeprefix("file://")))
    raise ContractError(f"Autopack was installed from {url!r}, which CI cannot install from")


def _checkout_source(folder: Path) -> str:
    """A local checkout: its remote at the commit it stands on, when it has one CI can reach."""
    remote = git.git(folder, "remote", "get-url", "origin", check=False) if folder.is_dir() else ""
    commit = git.rev_parse(folder, "HEAD") if remote else None
    if not remote or commit is None or remote.startswith(("/", "file:", ".")):
        raise ContractError(
            f"Autopack runs from the local checkout {folder}, which CI cannot install from; "
            "pass --autopack-source with a requirement CI can install, e.g. "
            "'autopack @ git+https://HOST/OWNER/autopack@COMMIT'"
        )
    scp = re.fullmatch(r"([\w.-]+@[\w.-]+):(?!//)(.+)", remote)  # git@host:owner/repo.git
    if scp:
        remote = f"ssh://{scp.group(1)}/{scp.group(2)}"
    return f"autopack @ git+{remote}@{commit}"


def contract_for(repo: Path, source: str | None = None) -> Contract:
    """The contract of ``repo``: its test command (configured, else detected), how to
    install it and Autopack, and the branch ``autopack/*`` branches are checked against."""
    from autopack.verify import detect_test_command

    command = load_settings(repo).test_command or detect_test_command(repo)
    if not command:
        raise ContractError(
            f"{repo}: no test command configured or detected; "
            "set test_command in autopack.toml (see `autopack init`)"
        )
    requirement = source or autopack_source()
    return Contract(command, install_command(repo, command), default_branch(repo), requirement)


def install_command(repo: Path, test_command: str) -> str:
    """How CI installs the project so its tests can run."""
    parts = ["python -m pip install"]
    if (repo / "requirements.txt").is_file():
        parts.append("-r requirements.txt")
    if (repo / "pyproject.toml").is_file() or (repo / "setup.py").is_file():
        parts.append("-e .")
    if "pytest" in test_command:
        parts.append("pytest")
    return " ".join(parts) if len(parts) > 1 else "true"


def default_branch(repo: Path) -> str:
    """The branch runs start from: the remote's HEAD, else ``main``/``master``, else the
    current branch. ``autopack/*`` branches are never it."""
    remote_head = git.git(repo, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    if remote_head:
        return remote_head.removeprefix("refs/remotes/origin/")
    for name in ("main", "master"):
        if git.rev_parse(repo, f"refs/heads/{name}"):
            return name
    current = git.current_branch(repo)
    return current if current and not current.startswith("autopack/") else "main"


def render(name: str, contract: Contract) -> str:
    """The text of template ``name`` filled in for ``contract``."""
    text = resources.files("autopack.ci").joinpath("templates", name).read_text("utf-8")
    main_ref = shlex.quote(f"origin/{contract.main_branch}")
    return _Template(text).substitute(
        autopack_requirement=json.dumps(contract.requirement),
        install_command=json.dumps(contract.install_command),
        test_command=json.dumps(contract.test_command),
        main_ref=main_ref,
    )


def files_for(provider: str, contract: Contract) -> dict[Path, str]:
    """Each file of the contract (relative path to text) for a CI provider."""
    if provider not in PROVIDERS:
        raise ContractError(f"unknown CI provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return {
        WORKFLOW_PATH: render("github-workflow.yaml", contract),
        PRE_COMMIT_PATH: render("pre-commit-config.yaml", contract),
    }


def write_contract(
    repo: Path, provider: str = "github", *, force: bool = False, source: str | None = None
) -> list[Path]:
    """Write the contract's files into ``repo``; refuse to overwrite unless ``force``.

    Existing files are checked before anything is written, so a refusal leaves the
    repository as it was.
    """
    files = files_for(provider, contract_for(repo, source))
    existing = [path for path in files if (repo / path).exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        raise ContractError(f"{names} already exist(s); pass --force to replace")
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    return [repo / path for path in files]
