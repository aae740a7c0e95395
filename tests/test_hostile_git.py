"""A hostile Builder against Autopack's own git and against what lands.

The attack of issue #15 (C1): a sandboxed command (a ``run`` tool call, or a
``tests/conftest.py`` the Builder wrote) points the worktree's ``.git`` file at a git
directory it made under an ignored folder, sharing the real objects, whose
configuration runs a command (``core.fsmonitor``, hooks). Git run outside the sandbox
on that worktree would run the command as us. Then what a sandboxed command may leave
behind: symbolic links out of the worktree, fifos, a read-only file rewritten.

Each test drives ``autopack run`` (or ``resume``) with a scripted Builder on a real
repository, then looks where a person would: the host (marker files), the run branch,
the evidence, the run's final state.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.create import create_run
from autopack.engine.runtime import Runtime
from autopack.plan import Plan
from autopack.states import PhaseState, RunState
from autopack.workspace import git, seal

TEST_COMMAND = "python -m pytest -q -p no:cacheprovider"


def plant(markers: list[Path]) -> str:
    """The attacker's shell command: a git directory under ``build/`` (ignored) that
    borrows the real objects (where the sandbox shows them) and runs ``echo >> marker``
    from fsmonitor, from every hook and as the signing program, and the worktree's
    ``.git`` pointed at it."""
    write = "; ".join(f"echo pwned >> {marker}" for marker in markers)
    hook = "\\n".join(f"echo hook >> {marker}" for marker in markers)
    return f"""set -e
evil="$PWD/build/evil"
mkdir -p "$evil/refs/heads" "$evil/objects/info" "$evil/hooks"
echo 'ref: refs/heads/main' > "$evil/HEAD"
admin=$(sed -n 's/^gitdir: //p' .git)
if [ -d "$admin" ]; then  # the real git data, when the sandbox shows it: borrow it
  cp "$admin/HEAD" "$evil/HEAD"
  cp "$admin/index" "$evil/index"
  echo "$(cd "$admin" && cd "$(cat commondir)" && pwd)/objects" > "$evil/objects/info/alternates"
fi
cat > "$evil/config" <<EOF
[core]
\trepositoryformatversion = 0
\tbare = false
\tfsmonitor = "{write}; false"
\thooksPath = $evil/hooks
[commit]
\tgpgSign = true
[gpg]
\tprogram = $evil/hooks/post-commit
EOF
for h in reference-transaction post-checkout pre-commit post-commit post-index-change; do
  printf '#!/bin/sh\\n{hook}\\nexit 1\\n' > "$evil/hooks/$h"; chmod +x "$evil/hooks/$h"
done
printf 'gitdir: %s\\n' "$evil" > .git
"""


@pytest.fixture
def markers(tmp_path: Path) -> Iterator[list[Path]]:
    """Where the planted command would write: outside the sandbox's view (the host's
    temporary folder, hidden by the sandbox's private /tmp, and the home folder)."""
    token = uuid.uuid4().hex
    host = tmp_path / "host"
    host.mkdir()
    found = [host / f"pwned-{token}", Path.home() / f".autopack-pwned-{token}"]
    yield found
    for marker in found:
        marker.unlink(missing_ok=True)


def make_repo(tmp_path: Path, settings: str = "") -> Path:
    """A small repository; ``settings`` is its autopack.toml (left out of the commit)."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "pkg.py").write_text("VALUE = 1\n")
    (repo / "ro.py").write_text("KEEP = 1\n")
    (repo / "tests" / "test_pkg.py").write_text(
        "from pkg import VALUE\n\n\ndef test_value():\n    assert VALUE in (1, 2)\n"
    )
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    if settings:
        (repo / "autopack.toml").write_text(settings)
    return repo


HOST_SIDE = 'sandbox = "subprocess"\n[approvals]\ntimeout_s = 1\n'
"""The plain subprocess runner: the sandboxed command may rewrite ``.git``, so what is
tested is the host side (the seal, Autopack's own git)."""
CONFINED = 'sandbox = "bwrap"\n[approvals]\ntimeout_s = 1\n'
"""bubblewrap: the worktree's ``.git`` is mounted read-only, the plant fails inside."""


def write_plan(tmp_path: Path, phases: list[dict[str, object]]) -> Path:
    plan = {"run": {"goal": "a hostile Builder", "max_attempts": 1}, "tiers": []}
    plan["tiers"] = [{"id": "only", "phases": phases}]
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def phase(phase_id: str, paths: list[str], read_only: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "id": phase_id,
        "goal": f"Work on {', '.join(paths)}",
        "scope": {"paths": paths, "read_only": list(read_only)},
        "tests": {"command": TEST_COMMAND},
    }


def write_script(tmp_path: Path, builder: dict[str, list[object]]) -> Path:
    def approve() -> dict[str, object]:  # a fresh object each time: no YAML aliases
        return {"verdict": "approve", "summary": "fine", "issues": []}

    replies = {pid: {"builder": calls, "auditor": [approve()]} for pid, calls in builder.items()}
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "replies": replies}, sort_keys=False))
    return path


def tools(*calls: tuple[str, dict[str, str]]) -> dict[str, object]:
    return {"tool_calls": [{"name": name, "arguments": args} for name, args in calls]}


def autopack(*args: str) -> int:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code


def ended_run(repo: Path) -> tuple[Runtime, str]:
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    return rt, row.id


def branch_files(repo: Path, ref: str) -> dict[str, str]:
    """Path -> mode and object of every entry on ``ref``."""
    out = git.git(repo, "ls-tree", "-r", "-z", ref)
    entries = {}
    for line in filter(None, out.split("\0")):
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split(" ")
        entries[path] = f"{mode} {sha}"
    return entries


def assert_nothing_landed(repo: Path, rt: Runtime, run_id: str) -> None:
    view = rt.store.view(run_id)
    assert git.rev_parse(repo, view.branch) == view.base_commit
    assert branch_files(repo, view.branch) == branch_files(repo, view.base_commit)


def test_the_planted_git_dir_runs_its_command_for_plain_git_but_not_for_ours(
    tmp_path: Path, markers: list[Path]
) -> None:
    """The payload is live (plain git runs it); Autopack's git on the same worktree runs
    nothing, and the seal sees the link moved and puts it back."""
    repo = make_repo(tmp_path)
    worktree = repo / ".autopack" / "worktrees" / "run" / "p"
    git.add_worktree(repo, worktree, "HEAD")
    sealed = seal.take(worktree)
    subprocess.run(["sh", "-c", plant(markers)], cwd=worktree, check=True)
    assert seal.broken(sealed) == "the worktree's .git file was changed, replaced or removed"
    plain = subprocess.run(["git", "status"], cwd=worktree, capture_output=True, check=False)
    assert plain.returncode == 0 and all(marker.exists() for marker in markers)
    for marker in markers:
        marker.unlink()
    git.forget_location(worktree)  # as a fresh process would see it
    git.stage_all(worktree)
    git.diff_against(worktree, "HEAD")
    sha = git.commit_tree_object(worktree, git.tree_hash(worktree), "HEAD", "m")
    git.create_branch(worktree, "autopack/x", sha)
    git.reset_worktree(worktree, "HEAD")
    assert not any(marker.exists() for marker in markers)
    seal.restore(sealed)
    assert seal.take(worktree).pointer == sealed.pointer


def _assert_refused_tampering(tmp_path: Path, repo: Path, markers: list[Path], code: int) -> None:
    assert code == 1
    assert not any(marker.exists() for marker in markers)
    rt, run_id = ended_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    failed = view.phases["hostile"]
    assert failed.state is PhaseState.FAILED
    assert "tampered with git" in failed.reason
    assert ".git file" in failed.reason or "git folder" in failed.reason
    events = (rt.run_dir(run_id) / "events.jsonl").read_text()
    recorded = [json.loads(line) for line in events.splitlines()]
    assert any(
        e["type"] == "phase_failed" and "tampered with git" in e["data"]["reason"] for e in recorded
    )
    assert_nothing_landed(repo, rt, run_id)
    assert not any("build/" in path for path in branch_files(repo, view.branch))
    # and git run by a person afterwards runs nothing planted either
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=True)
    assert not any(marker.exists() for marker in markers)


def test_a_run_command_pointing_dot_git_at_a_planted_git_dir_fails_the_phase(
    tmp_path: Path, markers: list[Path]
) -> None:
    """Where the sandbox lets the command move the link, the seal fails the phase."""
    repo = make_repo(tmp_path, HOST_SIDE)
    plan = write_plan(tmp_path, [phase("hostile", ["pkg.py"])])
    builder = [
        tools(
            ("run", {"command": plant(markers)}),
            ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
            ("finish", {"summary": "done"}),
        )
    ]
    script = write_script(tmp_path, {"hostile": builder})
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    _assert_refused_tampering(tmp_path, repo, markers, code)


def test_in_bubblewrap_the_planted_git_dir_cannot_be_linked_and_honest_work_lands(
    tmp_path: Path, markers: list[Path]
) -> None:
    """The same command in bubblewrap: ``.git`` is read-only there, the plant fails, the
    Builder's honest change lands and nothing planted ever runs."""
    repo = make_repo(tmp_path, CONFINED)
    plan = write_plan(tmp_path, [phase("hostile", ["pkg.py"])])
    builder = [
        tools(("run", {"command": plant(markers)})),  # its output is in the next request
        tools(
            ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
            ("finish", {"summary": "done"}),
        ),
    ]
    script = write_script(tmp_path, {"hostile": builder})
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    assert code == 0
    rt, run_id = ended_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    cassette = (rt.run_dir(run_id) / "cassette.jsonl").read_text()
    assert "Read-only file system" in cassette or "Device or resource busy" in cassette
    landed = branch_files(repo, view.branch)
    assert set(landed) == set(branch_files(repo, view.base_commit))
    assert git.git(repo, "show", f"{view.branch}:pkg.py") == "VALUE = 2"
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=True)
    assert not any(marker.exists() for marker in markers)


@pytest.mark.parametrize("run_by", ["run tool", "test command"])
def test_a_conftest_pointing_dot_git_at_a_planted_git_dir_fails_the_phase(
    tmp_path: Path, markers: list[Path], run_by: str
) -> None:
    """The Builder's conftest plants the git dir when the tests run: in the build (the
    Builder runs them; before this fix the build's ``git add`` then ran the planted
    command) or in verification (the test command). The host side is tested: the plain
    runner lets the conftest move the link."""
    repo = make_repo(tmp_path, HOST_SIDE)
    plan = write_plan(tmp_path, [phase("hostile", ["pkg.py", "tests/**"])])
    conftest = f"import subprocess\n\nsubprocess.run(['sh', '-c', {plant(markers)!r}])\n"
    run_tests = [("run", {"command": TEST_COMMAND})] if run_by == "run tool" else []
    builder = [
        tools(
            ("write_file", {"path": "tests/conftest.py", "content": conftest}),
            ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
            *run_tests,
            ("finish", {"summary": "done"}),
        )
    ]
    script = write_script(tmp_path, {"hostile": builder})
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    _assert_refused_tampering(tmp_path, repo, markers, code)


def test_in_bubblewrap_a_planting_conftest_plants_nothing_and_waits_for_a_person(
    tmp_path: Path, markers: list[Path]
) -> None:
    """The conftest's plant fails against the read-only ``.git``; the gate still sees a
    changed test configuration and asks a person (DBG-031); unanswered within the
    configured timeout, the phase fails and nothing lands."""
    repo = make_repo(tmp_path, CONFINED)
    plan = write_plan(tmp_path, [phase("hostile", ["pkg.py", "tests/**"])])
    conftest = f"import subprocess\n\nsubprocess.run(['sh', '-c', {plant(markers)!r}])\n"
    builder = [
        tools(
            ("write_file", {"path": "tests/conftest.py", "content": conftest}),
            ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
            ("finish", {"summary": "done"}),
        )
    ]
    script = write_script(tmp_path, {"hostile": builder})
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    assert code == 1
    rt, run_id = ended_run(repo)
    view = rt.store.view(run_id)
    failed = view.phases["hostile"]
    assert view.state is RunState.FAILED and failed.state is PhaseState.FAILED
    assert "no approval" in failed.reason
    gate = (failed.attempts[-1]["steps"] if failed.attempts else failed.steps)["gate"]
    assert "test configuration" in json.dumps(gate)
    assert_nothing_landed(repo, rt, run_id)
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=True)
    assert not any(marker.exists() for marker in markers)


LINKS = (
    "mkdir -p links /tmp/outside && ln -s /etc/passwd links/passwd"
    " && ln -s /tmp/outside links/tmp && ln -s ../../.. links/up"
    " && ln -s ../.git/config links/gitconfig"
)


def test_links_out_and_fifos_made_by_run_do_not_land_and_honest_work_does(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    plan = write_plan(
        tmp_path,
        [phase("links", ["links/**"]), phase("fifo", ["pipes/**"]), phase("honest", ["pkg.py"])],
    )
    script = write_script(
        tmp_path,
        {
            "links": [tools(("run", {"command": LINKS}), ("finish", {"summary": "links"}))],
            "fifo": [
                tools(
                    ("run", {"command": "mkdir -p pipes && mkfifo pipes/p && echo x > pipes/ok"}),
                    ("finish", {"summary": "a fifo"}),
                )
            ],
            "honest": [
                tools(
                    ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
                    ("finish", {"summary": "honest"}),
                )
            ],
        },
    )
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    assert code == 1
    rt, run_id = ended_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    links, fifo, honest = (view.phases[p] for p in ("links", "fifo", "honest"))
    assert links.state is PhaseState.FAILED, links.attempts or links.steps
    assert fifo.state is PhaseState.FAILED, fifo.attempts or fifo.steps
    refused = "\n".join(links.attempts[-1]["steps"]["apply"]["refused"] if links.attempts else [])
    refused = refused or "\n".join(links.steps["apply"]["refused"])
    assert "links/passwd: a symbolic link to the absolute path '/etc/passwd'" in refused
    assert "links/tmp: a symbolic link to the absolute path '/tmp/outside'" in refused
    assert "links/up:" in refused and "leaves the worktree" in refused
    assert "links/gitconfig:" in refused and "into .git" in refused
    fifo_apply = (fifo.attempts[-1]["steps"] if fifo.attempts else fifo.steps)["apply"]
    assert fifo_apply["refused"] == ["pipes/p: not a file, folder or symbolic link"]
    assert honest.state is PhaseState.COMPLETE
    landed = branch_files(repo, view.branch)
    assert not any(path.startswith(("links/", "pipes/")) for path in landed)
    assert git.git(repo, "show", f"{view.branch}:pkg.py") == "VALUE = 2"
    assert not any(mode.startswith(("120000", "160000")) for mode in landed.values())


def test_a_read_only_file_also_in_paths_cannot_be_changed(tmp_path: Path) -> None:
    """A run whose plan has the overlap (stored before ``plan check`` refused it) still
    cannot touch the read-only file: the edit tool refuses it, and a ``run`` command
    that rewrites it has its change refused at apply."""
    repo = make_repo(tmp_path)
    data = {
        "run": {"goal": "overlap", "max_attempts": 1},
        "tiers": [{"id": "only", "phases": [phase("hostile", ["**"], ("ro.py",))]}],
    }
    builder = [
        tools(("edit", {"path": "ro.py", "old": "KEEP = 1", "new": "KEEP = 2"})),
        tools(("run", {"command": "echo 'KEEP = 3' > ro.py"}), ("finish", {"summary": "tried"})),
    ]
    script = write_script(tmp_path, {"hostile": builder})
    rt = Runtime.open(repo)
    run_id = create_run(rt, Plan.model_validate(data), plan_source="stored")
    code = autopack("resume", run_id, "--repo", str(repo), "--model", f"scripted:{script}")
    assert code == 1
    view = Runtime.open(repo).store.view(run_id)
    assert view.state is RunState.FAILED
    applied = view.phases["hostile"].steps["apply"]
    assert applied["applied"] is False and applied["outside_scope"] == ["ro.py"]
    assert "read-only" in applied["feedback"]
    cassette = "".join(
        path.read_text(errors="replace")
        for path in rt.run_dir(run_id).rglob("*")
        if path.is_file() and "cassette" in path.name
    )
    assert "'ro.py' matches read_only 'ro.py'" in cassette
    assert_nothing_landed(repo, rt, run_id)
    assert (repo / "ro.py").read_text() == "KEEP = 1\n"


def test_plan_check_reports_read_only_overlapping_paths(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, [phase("p", ["src/**"], ("README.md", "src/config.py"))])
    result = CliRunner().invoke(app, ["plan", "check", str(plan)])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "plan.yaml:" in flat and "tiers[0].phases[0].scope.read_only[1]" in flat
    assert "'src/config.py' overlaps paths 'src/**'" in flat
    assert "read_only[0]" not in flat


def test_autopack_git_never_follows_an_unlisted_worktree_under_autopack(tmp_path: Path) -> None:
    """A folder under ``.autopack/worktrees/`` that the repository does not list (its
    ``.git`` file written by someone else) is refused, not followed."""
    repo = make_repo(tmp_path)
    stray = repo / ".autopack" / "worktrees" / "run" / "stray"
    stray.mkdir(parents=True)
    (stray / ".git").write_text(f"gitdir: {repo / '.git'}\n")
    with pytest.raises(git.GitError, match="not trusted"):
        git.git(stray, "status")
    assert not git.is_worktree(stray)
    assert os.listdir(stray) == [".git"]


def test_repository_filters_and_hooks_naming_worktree_scripts_run_nothing(
    tmp_path: Path, markers: list[Path]
) -> None:
    """The user's own configuration names scripts of the repository (a clean filter,
    ``core.hooksPath=.githooks``); in a worktree those scripts are the Builder's to
    write, and ``.gitattributes`` chooses which files the filter gets. Autopack's
    ``git add`` of the change runs neither: the content lands as it was written."""
    repo = make_repo(tmp_path)
    git.git(repo, "config", "filter.lint.clean", "sh scripts/clean.sh")
    git.git(repo, "config", "core.hooksPath", ".githooks")
    write = "; ".join(f"echo pwned >> {marker}" for marker in markers)
    plan = write_plan(tmp_path, [phase("hostile", ["**"])])
    hooks = " && ".join(
        f"printf '#!/bin/sh\\n{write}\\n' > .githooks/{name} && chmod +x .githooks/{name}"
        for name in ("post-index-change", "reference-transaction", "post-checkout")
    )
    builder = [
        tools(
            ("write_file", {"path": ".gitattributes", "content": "*.py filter=lint\n"}),
            ("write_file", {"path": "scripts/clean.sh", "content": f"{write}\ncat\n"}),
            ("run", {"command": f"mkdir -p .githooks && {hooks}"}),
            ("write_file", {"path": "pkg.py", "content": "VALUE = 2\n"}),
            ("finish", {"summary": "done"}),
        )
    ]
    script = write_script(tmp_path, {"hostile": builder})
    code = autopack("run", str(plan), "--repo", str(repo), "--model", f"scripted:{script}")
    assert code == 0
    assert not any(marker.exists() for marker in markers)
    rt, run_id = ended_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{view.branch}:pkg.py") == "VALUE = 2"
