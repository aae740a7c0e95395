"""``autopack pr``: a run's branch as a pull request, and its reviews as answers.

:func:`publish` pushes the branch and its proof notes, opens the pull request (or
updates the open one: never a second), and writes a verdict on each phase commit.
:func:`sync` answers waiting phases from the pull request's reviews. ``autopack serve``
calls both through :class:`~autopack.forge.watch.PrWatcher` when ``[pr]`` asks it to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autopack.config import PrSettings
from autopack.engine.runtime import Runtime
from autopack.forge import body
from autopack.forge.approvals import Answered, Ignored, sync_approvals
from autopack.forge.clients import Forge, PullRequest, open_forge
from autopack.forge.push import push_run
from autopack.forge.target import ForgeTarget, TargetOptions, resolve
from autopack.projection import RunView
from autopack.workspace import git


class NoBranch(ValueError):
    """The run has no branch in the repository, or no commit on it yet (exit 2)."""


@dataclass
class Synced:
    """What the reviews of the run's open pull request (if any) answered."""

    answered: list[Answered] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


@dataclass
class Published(Synced):
    """The pull request shown, what was reported on the commits, and what was synced."""

    pull: PullRequest = field(default_factory=lambda: PullRequest(0, "", ""))
    reported: str = ""


def connect(rt: Runtime, settings: PrSettings, options: TargetOptions) -> tuple[ForgeTarget, Forge]:
    target = resolve(rt.repo, settings, options)
    return target, open_forge(target)


def _head(rt: Runtime, view: RunView, *, landed: bool = False) -> str:
    """The head of the run's branch; with ``landed``, it must be past the run's base (the
    forges refuse a pull request without a commit)."""
    head = git.rev_parse(rt.repo, f"refs/heads/{view.branch}")
    if head is None:
        raise NoBranch(f"run {view.run_id} has no branch {view.branch} in {rt.repo}")
    if landed and head == view.base_commit:
        raise NoBranch(
            f"run {view.run_id} has landed no commit on {view.branch} yet: a pull request "
            f"needs one (a phase waiting for approval: autopack approve {view.run_id} PHASE)"
        )
    return head


def sync(rt: Runtime, run_id: str, forge: Forge) -> Synced:
    """Answer the run's waiting phases from the reviews of its open pull request."""
    view = rt.store.view(run_id)
    _head(rt, view)
    pull = forge.find(view.branch)
    if pull is None:
        return Synced()
    answered, ignored = sync_approvals(rt.store, run_id, forge, pull)
    return Synced(answered, ignored)


def publish(
    rt: Runtime, run_id: str, target: ForgeTarget, forge: Forge, base: str = ""
) -> Published:
    """Push the run's branch and notes, open or update its pull request, report verdicts."""
    view = rt.store.view(run_id)
    head = _head(rt, view, landed=True)
    push_run(rt.repo, target, view.branch)
    changes = body.collect(view, rt.repo, rt.run_dir(run_id))
    text = body.render(view, changes)
    pull = forge.open_or_update(view.branch, base or forge.default_branch(), body.title(view), text)
    reported = forge.report(body.verdicts(view, changes, head))
    return Published(pull=pull, reported=reported)


def publish_and_sync(
    rt: Runtime,
    run_id: str,
    options: TargetOptions,
    *,
    base: str = "",
    sync_first: bool = False,
) -> Published:
    """What ``autopack pr`` does: reviews answer waiting phases first (when asked), then
    the pull request shows the run as it is now."""
    settings = rt.settings.pr
    _head(rt, rt.store.view(run_id), landed=True)  # exit 2 before the forge is asked
    target, forge = connect(rt, settings, options)
    synced = sync(rt, run_id, forge) if sync_first else Synced()
    done = publish(rt, run_id, target, forge, base or settings.base)
    done.answered, done.ignored = synced.answered, synced.ignored
    return done
