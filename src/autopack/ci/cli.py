"""Commands of the CI room: ``ci init``, ``doctor`` and ``verify-proof``.

Mount them on the main app with :func:`mount` (or one by one: ``app.add_typer(ci_app,
name="ci")``, ``app.command("doctor")(doctor)``, ``app.command("verify-proof")(verify_proof)``).
Exit codes follow the CLI's: 0 ok, 1 a check found a problem, 2 bad input, 3 environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autopack.ci.contract import PROVIDERS, ContractError, write_contract
from autopack.ci.doctor import Finding, diagnose
from autopack.ci.proofs import ProofCheckError, check_all, check_branch
from autopack.config import ConfigError, load_settings
from autopack.gate.signing import KEY_ENV, ProofKeyError, key_path, load_key
from autopack.workspace import git

RepoOption = Annotated[Path, typer.Option("--repo", "-C", help="The target git repository.")]

ci_app = typer.Typer(help="The CI contract of a repository Autopack builds.", no_args_is_help=True)


@ci_app.callback()
def ci() -> None:
    """The CI contract: a workflow and pre-commit config for the repository."""


_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def mount(app: typer.Typer) -> None:
    """Add ``ci``, ``doctor`` and ``verify-proof`` to the ``autopack`` command."""
    app.add_typer(ci_app, name="ci")
    app.command("doctor")(doctor)
    app.command("verify-proof")(verify_proof)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _root(repo: Path) -> Path:
    repo = repo.resolve()
    if not repo.is_dir() or not git.is_repo(repo):
        raise _fail(f"{repo} is not a git repository", 2)
    return git.toplevel(repo)


@ci_app.command("init")
def ci_init(
    repo: RepoOption = Path("."),
    provider: Annotated[
        str, typer.Option(help=f"The CI service: {', '.join(PROVIDERS)}.")
    ] = "github",
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    autopack_source: Annotated[
        str | None,
        typer.Option(
            help="The pip requirement CI installs Autopack from (default: where this Autopack"
            " was installed from, e.g. its git URL and commit)."
        ),
    ] = None,
) -> None:
    """Write a CI workflow and a pre-commit config that run the tests, `autopack tidy --check`
    and `autopack verify-proof --all` with exactly this Autopack."""
    root = _root(repo)
    try:
        written = write_contract(root, provider, force=force, source=autopack_source)
    except (ContractError, ConfigError) as exc:
        raise _fail(str(exc), 2) from exc
    for path in written:
        typer.echo(f"wrote {path.relative_to(root)}")


def doctor(
    repo: RepoOption = Path("."),
    temporal: Annotated[
        str | None, typer.Option("--temporal", help="Temporal address (host:port) runs use.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The --model runs will be given.")
    ] = None,
) -> None:
    """Check what a run needs; print each problem with its fix; exit 0 only when a run can
    start (3 when it cannot, 2 when the configuration is invalid)."""
    repo = repo.resolve()
    root = git.toplevel(repo) if git.is_repo(repo) else repo
    raise typer.Exit(run_doctor(root, temporal=temporal, model=model))


def run_doctor(repo: Path, *, temporal: str | None = None, model: str | None = None) -> int:
    """Print every finding for ``repo`` and return the exit code."""
    try:
        settings = load_settings(repo)
    except ConfigError as exc:
        typer.echo(f"FAIL config: {exc}\n     fix: correct the key it names")
        return 2
    findings = diagnose(repo, settings, temporal=temporal, model=model)
    for finding in findings:
        typer.echo(_render(finding))
    failures = sum(1 for finding in findings if finding.level == "fail")
    if failures:
        typer.echo(f"{failures} problem(s): a run cannot start until they are fixed")
        return 3
    typer.echo("a run can start")
    return 0


def _render(finding: Finding) -> str:
    lines = [f"{_MARK[finding.level]} {finding.check}: {finding.detail}"]
    if finding.fix:
        lines.append(f"     fix: {finding.fix}")
    return "\n".join(lines)


def verify_proof(
    run: Annotated[
        str | None, typer.Argument(help="The run whose branch autopack/RUN is checked.")
    ] = None,
    repo: RepoOption = Path("."),
    all_branches: Annotated[
        bool, typer.Option("--all", help="Check every autopack/* branch.")
    ] = False,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Commits after this one are checked (--all: main branch)."),
    ] = None,
    require_signatures: Annotated[
        bool,
        typer.Option(
            "--require-signatures", help="Exit 1 when no key is there to check signatures."
        ),
    ] = False,
) -> None:
    """Check that each commit of a run branch matches its proof: the proof chain is intact,
    the proof's base tree and diff reproduce the commit's tree, every decision was PASS
    (approved ones say who approved and when) and, with the proof key (AUTOPACK_PROOF_KEY
    or the user's key file), every signature holds. Exit 1 naming each problem and where it
    is. Without a key the rest is checked, the output says signatures were not, and the exit
    code is 0 unless --require-signatures."""
    if (run is None) == (not all_branches):
        raise _fail("give either RUN or --all", 2)
    root = _root(repo)
    try:
        key = load_key(root, create=False)
        reports = (
            check_all(root, base, key)
            if all_branches
            else [check_branch(root, f"autopack/{run}", base, key)]
        )
    except (ProofCheckError, ProofKeyError) as exc:
        raise _fail(str(exc), 2) from exc
    if not reports:
        typer.echo("no autopack/* branches: nothing to check")
    for report in reports:
        for problem in report.problems:
            typer.echo(problem)
        if report.merged_into:
            typer.echo(f"ok {report.branch}: merged into {report.merged_into}, nothing to check")
        elif not report.problems:
            typer.echo(f"ok {report.branch}: every commit matches its proof")
    if key is None and reports:
        typer.echo(
            f"signatures NOT checked: no proof key (set {KEY_ENV} or create {key_path()}); "
            "a proof rewritten together with its commit would not be caught"
        )
    if any(report.problems for report in reports) or (key is None and require_signatures):
        raise typer.Exit(1)
