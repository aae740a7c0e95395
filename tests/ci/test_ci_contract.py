"""`autopack ci init`: the generated workflow and pre-commit config are valid YAML, pin
Autopack, and their commands catch a tampered ledger where a developer and CI see it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ci_helpers import (
    TEST_COMMAND,
    git,
    hook_command,
    load_yaml,
    make_project,
    run_env,
    workflow_steps,
)
from typer.testing import CliRunner

from autopack.ci import contract
from autopack.ci.cli import ci_app
from autopack.ci.contract import PRE_COMMIT_PATH, WORKFLOW_PATH, ContractError, autopack_source
from conftest import PIN

runner = CliRunner()


class Installed:
    """An installed distribution as importlib.metadata shows it, with a given origin."""

    def __init__(self, direct_url: dict[str, object] | None, version: str = "1.2.3") -> None:
        self.direct_url = direct_url
        self.version = version

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


def test_the_source_is_the_release_or_the_exact_commit_autopack_came_from(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert autopack_source(Installed(None)) == "autopack==1.2.3"  # type: ignore[arg-type]
    from_git = {"url": "https://git.example/a.git", "vcs_info": {"vcs": "git", "commit_id": commit}}
    assert autopack_source(Installed(from_git)) == (  # type: ignore[arg-type]
        f"autopack @ git+https://git.example/a.git@{commit}"
    )
    checkout = make_project(tmp_path / "checkout")
    git(checkout, "remote", "add", "origin", "git@git.example:team/autopack.git")
    head = git(checkout, "rev-parse", "HEAD").strip()
    local = {"url": f"file://{checkout}", "dir_info": {"editable": True}}
    assert autopack_source(Installed(local)) == (  # type: ignore[arg-type]
        f"autopack @ git+ssh://git@git.example/team/autopack.git@{head}"
    )


def test_a_checkout_ci_cannot_reach_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = make_project(tmp_path / "checkout")
    local = {"url": f"file://{checkout}", "dir_info": {"editable": True}}
    with pytest.raises(ContractError, match="--autopack-source"):
        autopack_source(Installed(local))  # type: ignore[arg-type]
    monkeypatch.setattr(contract.metadata, "distribution", lambda name: Installed(local))
    project = make_project(tmp_path / "p")
    refused = runner.invoke(ci_app, ["init", "--repo", str(project)])
    assert refused.exit_code == 2
    assert "cannot install from" in refused.output and "--autopack-source" in refused.output
    assert not (project / WORKFLOW_PATH).exists()


def test_init_writes_valid_yaml_that_pins_autopack_and_runs_the_contract(project: Path) -> None:
    assert set(load_yaml(project / WORKFLOW_PATH)["on"]) == {"push", "pull_request"}
    steps = workflow_steps(project / WORKFLOW_PATH)
    runs = {step.get("name"): step.get("run", "") for step in steps}
    assert f'python -m pip install "{PIN}"' in runs["Install Autopack"]
    assert (
        "git fetch origin 'refs/notes/*:refs/notes/*'"
        in runs["Fetch Autopack proofs and run branches"]
    )
    assert "refs/heads/autopack/*" in runs["Fetch Autopack proofs and run branches"]
    assert runs["Tests"] == TEST_COMMAND
    assert "autopack tidy --check" in runs["Ledgers are append-only"]
    assert runs["Every autopack/* branch matches its proofs"].startswith(
        "autopack verify-proof --all"
    )
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "proof checks need the whole history"

    hooks = {hook["id"]: hook for hook in load_yaml(project / PRE_COMMIT_PATH)["repos"][0]["hooks"]}
    assert hook_command(hooks["project-tests"]) == ["sh", "-c", TEST_COMMAND]
    assert hook_command(hooks["autopack-ledgers"])[:3] == ["autopack", "tidy", "--check"]
    assert hook_command(hooks["autopack-proofs"]) == ["autopack", "verify-proof", "--all"]
    for hook_id in ("autopack-ledgers", "autopack-proofs"):
        assert hooks[hook_id]["additional_dependencies"] == [PIN]


def test_a_test_command_with_shell_syntax_survives_yaml(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "p")
    command = """cd tests && FOO='a: "b"' python -c 'print("$FOO # not a comment")' | cat"""
    (repo / "autopack.toml").write_text(f"test_command = '''{command}'''\n")
    result = runner.invoke(ci_app, ["init", "--repo", str(repo), "--autopack-source", PIN])
    assert result.exit_code == 0, result.output
    runs = {s.get("name"): s.get("run") for s in workflow_steps(repo / WORKFLOW_PATH)}
    assert runs["Tests"] == command
    hooks = load_yaml(repo / PRE_COMMIT_PATH)["repos"][0]["hooks"]
    assert hook_command(hooks[0]) == ["sh", "-c", command]


def test_init_refuses_to_overwrite_without_force(project: Path) -> None:
    (project / WORKFLOW_PATH).write_text("# mine\n")
    refused = runner.invoke(ci_app, ["init", "--repo", str(project), "--autopack-source", PIN])
    assert refused.exit_code == 2
    assert "already exist" in refused.output and "--force" in refused.output
    assert (project / WORKFLOW_PATH).read_text() == "# mine\n"
    forced = runner.invoke(
        ci_app, ["init", "--repo", str(project), "--force", "--autopack-source", PIN]
    )
    assert forced.exit_code == 0
    assert PIN in (project / WORKFLOW_PATH).read_text()


def test_init_without_a_test_command_says_how_to_set_one(tmp_path: Path) -> None:
    repo = tmp_path / "bare"
    repo.mkdir()
    git(repo, "init", "--quiet")
    (repo / "notes.txt").write_text("no tests here\n")
    result = runner.invoke(ci_app, ["init", "--repo", str(repo), "--autopack-source", PIN])
    assert result.exit_code == 2
    assert "test_command" in result.output
    assert not (repo / WORKFLOW_PATH).exists()


def test_unknown_provider_is_bad_input(project: Path) -> None:
    jenkins = ["init", "--repo", str(project), "--provider", "jenkins", "--autopack-source", PIN]
    result = runner.invoke(ci_app, jenkins)
    assert result.exit_code == 2
    assert "jenkins" in result.output


def test_workflow_ledger_step_fails_on_a_tampered_entry_naming_file_and_entry(
    project: Path, ci_run
) -> None:
    git(project, "checkout", "--quiet", "-b", "feature")
    ledger = project / "docs" / "BUILD_HISTORY.md"
    ledger.write_text(ledger.read_text().replace("1 test passes", "all tests pass"))
    git(project, "commit", "--quiet", "-am", "reword history")
    # a new branch's push: no usable `before`, so the step compares with origin/main
    results = ci_run(branch="feature", ledger_base="")
    name, done = results[-1]
    assert name == "Ledgers are append-only"
    assert done.returncode == 1
    assert "docs/BUILD_HISTORY.md: BUILD-001 changed since" in done.stdout
    assert [n for n, d in results if d.returncode == 0] == [
        "Fetch Autopack proofs and run branches",
        "Tests",
    ]


def test_workflow_ledger_step_compares_a_push_with_its_before_commit(project: Path, ci_run) -> None:
    before = git(project, "rev-parse", "HEAD")
    ledger = project / "docs" / "BUILD_HISTORY.md"
    ledger.write_text(ledger.read_text().replace("## BUILD-001", "## BUILD-007"))
    git(project, "commit", "--quiet", "-am", "renumber")
    name, done = ci_run(branch="main", ledger_base=before)[-1]
    assert name == "Ledgers are append-only" and done.returncode == 1
    assert f"BUILD-001 vanished (it exists at {before})" in done.stdout


def test_precommit_ledger_hook_catches_an_uncommitted_edit(project: Path, bin_dir: Path) -> None:
    hooks = {h["id"]: h for h in load_yaml(project / PRE_COMMIT_PATH)["repos"][0]["hooks"]}
    env = run_env(bin_dir)
    for hook_id in ("project-tests", "autopack-ledgers"):
        ok = subprocess.run(hook_command(hooks[hook_id]), cwd=project, env=env, capture_output=True)
        assert ok.returncode == 0, ok.stdout + ok.stderr
    ledger = project / "docs" / "BUILD_HISTORY.md"
    ledger.write_text(ledger.read_text().replace("src/app.py", "src/other.py"))
    done = subprocess.run(
        hook_command(hooks["autopack-ledgers"]),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "docs/BUILD_HISTORY.md: BUILD-001 changed since HEAD" in done.stdout
