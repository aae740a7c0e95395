"""Which forge and repository a remote URL names (``autopack pr`` without --forge)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.forge.target import default_api, forge_of_host, host_and_path, redacted


@pytest.mark.parametrize(
    ("url", "forge", "path"),
    [
        ("https://github.com/acme/textkit.git", "github", "/acme/textkit.git"),
        ("git@github.com:acme/textkit.git", "github", "acme/textkit.git"),
        ("ssh://git@gitlab.example.com:2222/grp/sub/proj.git", "gitlab", "/grp/sub/proj.git"),
        ("https://tok:x@gitlab.com/grp/proj", "gitlab", "/grp/proj"),
        ("https://git.example.com/acme/textkit.git", "", "/acme/textkit.git"),
    ],
)
def test_forge_and_path_of_a_remote_url(url: str, forge: str, path: str) -> None:
    where = host_and_path(url)
    assert where is not None and where[1] == path
    assert forge_of_host(where[0]) == forge


def test_local_remotes_name_no_host_and_credentials_are_never_shown() -> None:
    assert host_and_path("/srv/git/textkit.git") is None
    assert host_and_path("file:///srv/git/textkit.git") is None
    assert host_and_path("./textkit.git") is None
    assert redacted("https://user:secret@github.com/a/b.git") == "https://github.com/a/b.git"
    assert default_api("github", "github.com") == "https://api.github.com"
    assert default_api("github", "ghe.example.com") == "https://ghe.example.com/api/v3"
    assert default_api("gitlab", "gitlab.example.com") == "https://gitlab.example.com"


def test_a_remote_that_names_no_forge_exits_2_naming_the_fix(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "start"],
        ["remote", "add", "origin", "https://user:s3cret@git.example.com/acme/textkit.git"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "run: {id: r1, goal: g}\ntiers:\n  - id: t\n    phases:\n      - id: p\n"
        "        goal: g\n        scope: {paths: [a.py]}\n"
    )
    from autopack.engine.create import create_run
    from autopack.engine.runtime import Runtime
    from autopack.plan import load_plan

    create_run(Runtime.open(repo), load_plan(plan), plan_source=str(plan))
    for args in (
        ["commit", "-q", "--allow-empty", "-m", "landed"],
        ["branch", "-f", "autopack/r1"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    done = CliRunner().invoke(app, ["pr", "r1", "-C", str(repo)], env={"GITHUB_TOKEN": "t"})
    assert done.exit_code == 2, done.output
    assert "cannot tell the forge of remote origin (https://git.example.com/acme/textkit.git)" in (
        done.output
    )
    assert "--forge github|gitlab" in done.output and "s3cret" not in done.output
