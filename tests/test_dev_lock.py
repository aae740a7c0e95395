"""The development lock (``requirements/dev.lock``) pins every dependency that
``pyproject.toml`` declares for the package and its extras, each at a version inside the
declared range: a lock that drifted from the ranges would install what a user's
``pip install`` can never get (refresh it with ``bash scripts/lock-deps.sh``)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += extra
    return [Requirement(text) for text in texts if not text.startswith("autopack[")]


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements/dev.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s#;]+)", line)
        if match:
            name = canonicalize_name(match.group(1).split("[")[0])
            pins[name] = Version(match.group(2))
    return pins


def test_every_declared_dependency_is_locked_inside_its_range() -> None:
    pins = locked()
    problems = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name} is not in requirements/dev.lock")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement.name}=={pins[name]} is outside {requirement}")
    assert problems == [], "; ".join(problems) + " (run bash scripts/lock-deps.sh)"


def test_ci_installs_from_the_lock() -> None:
    """.ci/run runs ``make test``, whose ``deps`` runs the install script, which installs
    the development extra constrained by the lock."""
    assert "make test" in (ROOT / ".ci/run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: deps", makefile, re.M)
    assert "bash scripts/install-deps.sh" in makefile
    install = (ROOT / "scripts/install-deps.sh").read_text()
    assert re.search(r"pip install .*-c requirements/dev\.lock .*\[dev\]", install)
