"""Push a run's branch and its proof notes with real git, the token kept out of sight.

The token reaches git only through the environment of the one ``git push`` process: a
credential helper given on the command line (``-c credential.helper=...``, after an
empty one that drops the user's helpers) prints it from ``AUTOPACK_FORGE_TOKEN``. Nothing
is written to git config, the remote URL or any file; the command line holds the helper's
text, never the token.
"""

from __future__ import annotations

from pathlib import Path

from autopack.forge.target import PUSH_USER, ForgeTarget, redacted
from autopack.gate.proof import NOTES_REF
from autopack.workspace import git

TOKEN_VAR = "AUTOPACK_FORGE_TOKEN"
NOTES_THEIRS = f"{NOTES_REF}-remote"


def _auth(target: ForgeTarget) -> tuple[tuple[str, ...], dict[str, str]]:
    user = PUSH_USER[target.forge]
    helper = (
        '!f() { test "$1" = get || exit 0; '
        f'echo username={user}; echo "password=${TOKEN_VAR}"; }}; f'
    )
    return ("-c", "credential.helper=", "-c", f"credential.helper={helper}"), {
        TOKEN_VAR: target.token
    }


def _push(repo: Path, target: ForgeTarget, *args: str) -> tuple[bool, str]:
    config, env = _auth(target)
    done = git.run_git(repo, *config, "push", "--porcelain", *args, env=env)
    text = (done.stdout + done.stderr).replace(target.token, "***")
    return done.returncode == 0, text


def push_run(repo: Path, target: ForgeTarget, branch: str) -> None:
    """Push ``branch`` (fast-forward only) and the proof notes to the target's remote."""
    ref = f"refs/heads/{branch}"
    ok, text = _push(repo, target, target.remote, f"{ref}:{ref}")
    if not ok:
        raise git.GitError(
            f"push of {branch} to {target.remote} ({redacted(target.remote_url)}) failed: "
            f"{text.strip()}"
        )
    if git.rev_parse(repo, NOTES_REF) is None:
        return
    for _ in range(3):
        ok, text = _push(repo, target, target.remote, f"{NOTES_REF}:{NOTES_REF}")
        if ok:
            return
        _merge_remote_notes(repo, target)
    raise git.GitError(f"could not push the proof notes to {target.remote}: {text.strip()}")


def _merge_remote_notes(repo: Path, target: ForgeTarget) -> None:
    """Another run's notes reached the remote first: merge them in (ours win on a commit
    both annotate), so the push is a fast-forward."""
    config, env = _auth(target)
    fetched = git.run_git(
        repo, *config, "fetch", "-q", target.remote, f"+{NOTES_REF}:{NOTES_THEIRS}", env=env
    )
    if fetched.returncode != 0:
        raise git.GitError(f"could not fetch the remote's proof notes: {fetched.stderr.strip()}")
    git.git(repo, "notes", f"--ref={NOTES_REF}", "merge", "-q", "-s", "ours", NOTES_THEIRS)
    git.git(repo, "update-ref", "-d", NOTES_THEIRS)
