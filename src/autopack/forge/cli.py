"""``autopack pr RUN``: push the run's branch and proofs, open or update its pull request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autopack.cli import output
from autopack.cli.app import RepoOption, _open, _repo, fails_cleanly


@fails_cleanly
def pr_command(
    run_id: Annotated[str, typer.Argument(help="The run whose branch autopack/RUN is proposed.")],
    repo: RepoOption = Path("."),
    sync_approvals: Annotated[
        bool,
        typer.Option(
            "--sync-approvals",
            help="First let the pull request's reviews answer phases waiting for approval.",
        ),
    ] = False,
    remote: Annotated[
        str,
        typer.Option(help="Git remote to push to (default: pr.remote in autopack.toml, origin)."),
    ] = "",
    forge: Annotated[
        str, typer.Option(help="github or gitlab (default: told by the remote's host).")
    ] = "",
    api_url: Annotated[
        str,
        typer.Option("--api-url", help="API base, for GitHub Enterprise or self-hosted GitLab."),
    ] = "",
    repository: Annotated[
        str, typer.Option(help="OWNER/NAME (default: the remote URL's path).")
    ] = "",
    base: Annotated[
        str, typer.Option(help="Target branch (default: the repository's default branch).")
    ] = "",
) -> None:
    """Open or update the pull request (GitHub) or merge request (GitLab) of a run.

    Push autopack/RUN and its proof notes, write the evidence a reviewer reads, and a
    verdict with the proof hash on each phase commit. The token comes from GITHUB_TOKEN or
    GITLAB_TOKEN and is never printed or stored."""
    from autopack.config import ConfigError
    from autopack.forge.publish import publish_and_sync
    from autopack.forge.target import TargetOptions

    if forge not in ("", "github", "gitlab"):
        raise ConfigError(f"--forge {forge}: give github or gitlab")
    rt = _open(_repo(repo))
    options = TargetOptions(forge=forge, api_url=api_url, repository=repository, remote=remote)
    done = publish_and_sync(rt, run_id, options, base=base, sync_first=sync_approvals)
    for answered in done.answered:
        verb = "approved" if answered.approved else "sent back"
        review = answered.review
        output.console.print(f"{verb} {answered.phase_id} (review {review.id} by {review.user})")
    for ignored in done.ignored:
        output.console.print(
            f"ignored review {ignored.review.id} by {ignored.review.user}: {ignored.why}"
        )
    verb = "opened" if done.pull.created else "updated"
    output.console.print(f"{done.pull.noun}{done.pull.number} {verb}: {done.pull.url}")
    output.console.print(done.reported)
