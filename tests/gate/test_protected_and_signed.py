"""End to end through `autopack run` with a scripted Builder and an approving Auditor:
protected paths do not land unless the plan declares them and a person approves; the
approval is in the proof and `verify-proof` accepts it; a forged proof is caught by
replaying its diff and by its signature; `[gate] ruff = true` runs to the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopack.cli import app
from autopack.engine.runtime import Runtime
from autopack.gate import NOTES_REF, load_key, proof_hash
from autopack.gate.signing import key_path
from autopack.states import PhaseState, RunState
from autopack.workspace import git

TEST_COMMAND = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -p no:cacheprovider"
CONFIG = f'test_command = "{TEST_COMMAND}"\n'
APPROVE = "    auditor:\n" + "      - {verdict: approve, summary: ok, issues: []}\n" * 3
WORKFLOW = ".github/workflows/x.yml"


def make_project(tmp_path: Path, config: str = CONFIG) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "ruff.toml").write_text("line-length = 100\n")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    (repo / "autopack.toml").write_text(config)
    git.git(repo, "init", "-q", "-b", "main")
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "start")
    return repo


def plan(tmp_path: Path, scope: str, attempts: int = 1) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "run: {goal: change the project}\n"
        "tiers:\n  - id: t\n    phases:\n      - id: p\n        goal: Change it\n"
        f"        scope: {scope}\n        max_attempts: {attempts}\n"
    )
    return path


def script(tmp_path: Path, *builder: str) -> str:
    replies = "".join(
        reply if reply.startswith("      - {") else "      - |\n" + _indent(reply)
        for reply in builder
    )
    path = tmp_path / "script.yaml"
    path.write_text("version: 1\nreplies:\n  p:\n    builder:\n" + replies + APPROVE)
    return f"scripted:{path}"


def _indent(text: str) -> str:
    return "".join(f"        {line}\n" for line in text.splitlines())


def run_tool(command: str) -> str:
    calls = [
        {"name": "run", "arguments": {"command": command}},
        {"name": "finish", "arguments": {"summary": "done"}},
    ]
    return "      - " + json.dumps({"tool_calls": calls}) + "\n"


def autopack(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def only_run(repo: Path) -> tuple[Runtime, str]:
    rt = Runtime.open(repo)
    (row,) = rt.store.list_runs()
    return rt, row.id


def assert_not_landed(repo: Path, path: str, text_on_main: str | None) -> list[dict]:
    """The run ended FAILED, nothing landed on its branch, and every gate retried on a
    refusal that names ``path``; returns the gate results."""
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    assert view.phases["p"].state is PhaseState.FAILED
    assert git.rev_parse(repo, view.branch) == view.base_commit
    shown = git.git(repo, "show", f"{view.branch}:{path}", check=False)
    assert shown == (text_on_main or "")
    gates = [a["steps"]["gate"] for a in view.phases["p"].attempts] + [
        view.phases["p"].steps["gate"]
    ]
    for result in gates:
        assert result["decision"] == "RETRY"
        assert f"these paths are protected: {path}" in result["feedback"]
    return gates


def test_autopack_toml_edited_directly_is_refused(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    edit = f'autopack.toml\n<<<<<<< SEARCH\n{CONFIG}=======\ntest_command = "true"\n>>>>>>> REPLACE'
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: ['**']}")), "-C", str(repo), "--model",
        script(tmp_path, edit),
    )  # fmt: skip
    assert code == 1, out
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.FAILED
    assert git.rev_parse(repo, view.branch) == view.base_commit
    gate = view.phases["p"].steps["gate"]
    assert gate["decision"] == "RETRY"
    assert "autopack.toml: protected: 'autopack.toml' matches protected" in gate["feedback"]
    assert (repo / "autopack.toml").read_text() == CONFIG


def test_autopack_toml_edited_through_the_run_tool_does_not_land(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    sed = run_tool("sed -i 's/python -m pytest.*/true\"/' autopack.toml")
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: ['**']}", attempts=2)), "-C", str(repo),
        "--model", script(tmp_path, sed, sed),
    )  # fmt: skip
    assert code == 1, out
    assert_not_landed(repo, "autopack.toml", CONFIG.strip())
    assert (repo / "autopack.toml").read_text() == CONFIG  # the checkout is not touched


def test_a_new_workflow_through_the_run_tool_does_not_land(tmp_path: Path) -> None:
    repo = make_project(tmp_path)
    add = run_tool(f"mkdir -p .github/workflows && echo 'on: push' > {WORKFLOW}")
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: ['**']}")), "-C", str(repo), "--model",
        script(tmp_path, add),
    )  # fmt: skip
    assert code == 1, out
    assert_not_landed(repo, WORKFLOW, None)


def test_a_declared_protected_path_lands_only_after_approval_with_the_approval_in_the_proof(
    tmp_path: Path,
) -> None:
    repo = make_project(tmp_path)
    write = {"name": "write_file", "arguments": {"path": WORKFLOW, "content": "on: push\n"}}
    finish = {"name": "finish", "arguments": {"summary": "CI workflow"}}
    reply = "      - " + json.dumps({"tool_calls": [write, finish]}) + "\n"
    scope = f"{{paths: ['.github/**'], protected: ['{WORKFLOW}']}}"
    plan_path = plan(tmp_path, scope)
    assert autopack("plan", "check", str(plan_path))[0] == 0
    command = [sys.executable, "-c", "from autopack.cli import app; app()", "run"]
    command += [str(plan_path), "-C", str(repo), "--model", script(tmp_path, reply)]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rt, run_id = _wait_for_approval(repo, running)
        gate = rt.store.view(run_id).phases["p"].steps["gate"]
        assert gate["decision"] == "NEEDS_APPROVAL"
        assert any("a protected path the plan declares was written" in r for r in gate["reasons"])
        code, out = autopack("approve", run_id, "p", "-C", str(repo), "--note", "new CI is fine")
        assert code == 0, out
        output, _ = running.communicate(timeout=300)
    finally:
        running.kill()
    assert running.returncode == 0, output
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    assert git.git(repo, "show", f"{view.branch}:{WORKFLOW}") == "on: push"
    proofs = json.loads(git.read_note(repo, view.phases["p"].commit) or "[]")
    gated, landing = proofs
    assert gated["decision"]["decision"] == "NEEDS_APPROVAL" and gated["approval"] is None
    assert landing["decision"]["decision"] == "PASS"
    assert landing["gated_decision"] == gated["decision"]
    assert landing["approval"]["note"] == "new CI is fine"
    assert landing["approval"]["by"] and landing["approval"]["at"]
    assert landing["prev_proof_hash"] == proof_hash(gated)
    assert git.trailers(repo, view.phases["p"].commit)["Autopack-Proof"] == proof_hash(landing)
    code, out = autopack("verify-proof", "--all", "-C", str(repo))
    assert code == 0, out
    assert "ok autopack/" in out and "NOT checked" not in out


def _wait_for_approval(repo: Path, running: subprocess.Popen[str]) -> tuple[Runtime, str]:
    for _ in range(600):
        assert running.poll() is None, running.communicate()[0]
        if (repo / ".autopack" / "autopack.db").exists():
            rt = Runtime.open(repo)
            runs = rt.store.list_runs()
            if runs and rt.store.view(runs[0].id).phases["p"].state is PhaseState.AWAITING_APPROVAL:
                return rt, runs[0].id
        time.sleep(0.2)
    raise AssertionError("the phase never waited for approval")


def test_a_plan_cannot_declare_a_protected_path_outside_its_scope(tmp_path: Path) -> None:
    code, out = autopack("plan", "check", str(plan(tmp_path, "{paths: [src], protected: [x]}")))
    assert code == 2
    assert "scope.protected[0]: 'x' is outside scope.paths" in out


def honest_run(tmp_path: Path, config: str = CONFIG) -> Path:
    """A run that lands one honest change to calc.py; the repository."""
    repo = make_project(tmp_path, config)
    edit = "calc.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE"
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: [calc.py]}")), "-C", str(repo), "--model",
        script(tmp_path, edit),
    )  # fmt: skip
    assert code == 0, out
    return repo


def test_gate_ruff_true_runs_to_the_end(tmp_path: Path) -> None:
    repo = honest_run(tmp_path, CONFIG + "\n[gate]\nruff = true\nrisk_threshold = 70\n")
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    assert view.state is RunState.SUCCEEDED
    checks = {c["name"]: c for c in view.phases["p"].steps["verify"]["checks"]}
    assert checks["ruff"]["passed"] and not checks["ruff"].get("skipped")


def test_a_typo_in_the_gate_table_exits_2_before_the_run(tmp_path: Path) -> None:
    repo = make_project(tmp_path, CONFIG + "\n[gate.rules.no_such_rule]\ndecision = 'PASS'\n")
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: [calc.py]}")), "-C", str(repo), "--model",
        script(tmp_path, "nothing"),
    )  # fmt: skip
    assert code == 2 and "unknown gate rule 'no_such_rule'" in out
    assert (
        not (repo / ".autopack" / "autopack.db").exists()
        or not Runtime.open(repo).store.list_runs()
    )


def forge(repo: Path, *, rewrite_diff: bool) -> str:
    """Someone with write access to the repository, no key: a new commit replaces the
    landed phase with another tree, and its proof's result tree (and diff), the proof
    hash and the commit trailer are rewritten together."""
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    landed = view.phases["p"].commit
    proofs = json.loads(git.read_note(repo, landed) or "[]")
    checkout = repo.parent / "forger"
    git.git(repo, "worktree", "add", "-q", str(checkout), view.branch)
    (checkout / "calc.py").write_text("def add(a, b):\n    return 5\n")
    git.git(checkout, "add", "-A")
    proofs[-1]["result_tree"] = git.git(checkout, "write-tree")
    if rewrite_diff:
        proofs[-1]["diff"] = git.git(checkout, "diff", "--cached", "--binary", "HEAD~1") + "\n"
    message = git.git(repo, "log", "-1", "--format=%B", landed)
    message = message.replace(view.phases["p"].proof_hash, proof_hash(proofs[-1]))
    git.git(checkout, "reset", "-q", "--soft", "HEAD~1")
    git.git(checkout, "commit", "-q", "-F", "-", input_text=message)
    forged = git.git(checkout, "rev-parse", "HEAD")
    git.add_note(repo, forged, json.dumps(proofs), ref=NOTES_REF)
    return forged


def test_a_forged_proof_is_caught_by_replaying_its_diff_and_by_its_signature(
    tmp_path: Path,
) -> None:
    repo = honest_run(tmp_path)
    forged = forge(repo, rewrite_diff=False)
    code, out = autopack("verify-proof", "--all", "-C", str(repo))
    assert code == 1
    assert f"{forged[:12]}: the proof's diff gives tree" in out

    forged = forge(undo_forgery(repo), rewrite_diff=True)
    code, out = autopack("verify-proof", "--all", "-C", str(repo))
    assert code == 1
    assert f"{forged[:12]}: the signature does not match the proof" in out

    keyless = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
    done = subprocess.run(
        [sys.executable, "-c", "from autopack.cli import app; app()", "verify-proof", "--all"],
        cwd=repo,
        env=keyless,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signatures NOT checked" in done.stdout
    strict = subprocess.run(
        [sys.executable, "-c", "from autopack.cli import app; app()", "verify-proof", "--all",
         "--require-signatures"],
        cwd=repo, env=keyless, capture_output=True, text=True,
    )  # fmt: skip
    assert strict.returncode == 1


def undo_forgery(repo: Path) -> Path:
    """Undo the first forgery: the run branch back at the landed commit, and the forger's
    checkout gone."""
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    git.git(repo, "worktree", "remove", "--force", str(repo.parent / "forger"))
    git.git(repo, "branch", "-f", view.branch, view.phases["p"].commit)
    return repo


def test_the_proof_key_never_reaches_the_builder_or_the_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Builder's `run` tool tries to copy the key (variable and file) into the tree;
    the change lands, and neither the landed tree nor the evidence holds the key."""
    secret = "the-ci-secret-0123456789"
    monkeypatch.setenv("AUTOPACK_PROOF_KEY", secret)
    key_file = load_key(
        tmp_path, create=True, environ={"XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
    )
    assert key_file is not None
    repo = make_project(tmp_path)
    steal = run_tool(f'(echo "$AUTOPACK_PROOF_KEY"; cat {key_path()}; env) > loot.txt 2>&1; true')
    code, out = autopack(
        "run", str(plan(tmp_path, "{paths: ['loot.txt']}")), "-C", str(repo), "--model",
        script(tmp_path, steal),
    )  # fmt: skip
    assert code == 0, out
    rt, run_id = only_run(repo)
    view = rt.store.view(run_id)
    loot = git.git(repo, "show", f"{view.branch}:loot.txt")
    assert "PATH=" in loot  # the command ran
    evidence = "".join(
        path.read_text(errors="replace") for path in rt.run_dir(run_id).rglob("*") if path.is_file()
    )
    for leaked in (secret, key_file.secret.decode()):
        assert leaked not in loot
        assert leaked not in evidence
    code, out = autopack("verify-proof", "--all", "-C", str(repo))
    assert code == 0, out


def test_settings_in_pyproject_are_protected_and_the_rest_of_it_is_not(tmp_path: Path) -> None:
    """Without autopack.toml the settings live in pyproject.toml's [tool.autopack]: a
    change to that table is refused like autopack.toml; the rest of the file is not."""
    pyproject = f'[project]\nname = "calc"\n\n[tool.autopack]\n{CONFIG}'
    repo = make_project(tmp_path, config="")
    (repo / "autopack.toml").unlink()
    (repo / "pyproject.toml").write_text(pyproject)
    git.git(repo, "add", "-A")
    git.git(repo, "commit", "-q", "-m", "settings in pyproject.toml")
    weaken = run_tool("sed -i 's/python -m pytest.*/true\"/' pyproject.toml")
    describe = run_tool(
        'sed -i \'s/^name = "calc"/name = "calc"\\nversion = "1.0"/\' pyproject.toml'
    )
    scope = "{paths: [pyproject.toml]}"
    code, out = autopack(
        "run", str(plan(tmp_path, scope)), "-C", str(repo), "--model", script(tmp_path, weaken),
    )  # fmt: skip
    assert code == 1, out
    assert_not_landed(repo, "pyproject.toml", pyproject.strip())

    landed_plan = tmp_path / "landed.yaml"
    landed_plan.write_text(plan(tmp_path, scope).read_text().replace("change the", "describe"))
    code, out = autopack(
        "run", str(landed_plan), "-C", str(repo), "--model", script(tmp_path, describe),
    )  # fmt: skip
    assert code == 0, out
    rt = Runtime.open(repo)
    second = next(
        r for r in rt.store.list_runs() if rt.store.view(r.id).state is RunState.SUCCEEDED
    )
    shown = git.git(repo, "show", f"{rt.store.view(second.id).branch}:pyproject.toml")
    assert 'version = "1.0"' in shown and "python -m pytest" in shown
