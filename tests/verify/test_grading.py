"""The verification tree: what is put back, what is left out, what is reported."""

from __future__ import annotations

from pathlib import Path

from tests.verify.conftest import init_repo

from autopack.verify.grading import grading_tree, is_test_config, is_test_file

PYPROJECT = """\
[project]
name = "p"
version = "1"

[tool.pytest.ini_options]
testpaths = ["tests"]
"""


def test_what_counts_as_a_test_file_or_test_configuration() -> None:
    assert is_test_file("tests/helpers/data.json")
    assert is_test_file("pkg/test_x.py") and is_test_file("pkg/x_test.py")
    assert is_test_file("pkg/checks.py", {"pkg/checks.py"})  # the baseline collected from it
    assert not is_test_file("pkg/core.py")
    assert all(is_test_config(p) for p in ("conftest.py", "sub/conftest.py", "pytest.ini"))
    assert all(is_test_config(p) for p in ("tox.ini", "setup.cfg", "pyproject.toml"))
    assert is_test_config("sitecustomize.py") and not is_test_config("pkg/config.py")


def test_the_tree_is_graded_with_base_tests_and_config_then_given_back(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    tree = init_repo(
        repo,
        {
            "pyproject.toml": PYPROJECT,
            "src/pkg/__init__.py": "",
            "src/pkg/core.py": "X = 1\n",
            "tests/test_core.py": "def test_x():\n    pass\n",
        },
    )
    attempt = {
        "pyproject.toml": PYPROJECT.replace('version = "1"', 'version = "2"'),
        "tests/test_core.py": "def test_x():\n    pass\n\n\ndef test_x():\n    pass\n",
        "tests/test_new.py": "def test_new():\n    pass\n",
        "conftest.py": "def pytest_sessionstart(session):\n    pass\n",
        "setup.cfg": "[flake8]\nmax-line-length = 100\n",
        "src/json.py": "",
        "src/pkg/json.py": "",
    }
    for rel, text in attempt.items():
        (repo / rel).write_text(text)
    with grading_tree(repo, tree, sorted(attempt), {"tests/test_core.py"}) as report:
        assert (repo / "pyproject.toml").read_text() == PYPROJECT
        assert (repo / "tests/test_core.py").read_text() == "def test_x():\n    pass\n"
        assert not (repo / "conftest.py").exists()
        assert not (repo / "src/json.py").exists()
        assert (repo / "tests/test_new.py").exists() and (repo / "src/pkg/json.py").exists()
        assert (repo / "setup.cfg").exists()
    assert report.tests_edited == ["tests/test_core.py"]
    # the version bump is not test configuration; a flake8 section is not either
    assert report.config_changed == [
        "conftest.py: added",
        "src/json.py: shadows the module 'json'",
    ]
    for rel, text in attempt.items():
        assert (repo / rel).read_text() == text, rel


def test_pytest_options_in_pyproject_and_a_deleted_test_file_are_reported(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    files = {"pyproject.toml": PYPROJECT, "tests/test_a.py": "def test_a():\n    pass\n"}
    tree = init_repo(repo, files)
    changed = PYPROJECT.replace("testpaths", 'addopts = "--co"\ntestpaths')
    (repo / "pyproject.toml").write_text(changed)
    (repo / "tests/test_a.py").unlink()
    with grading_tree(repo, tree, sorted(files), {"tests/test_a.py"}) as report:
        assert (repo / "pyproject.toml").read_text() == PYPROJECT
        assert not (repo / "tests/test_a.py").exists()
    assert report.config_changed == ["pyproject.toml: edited"]
    assert report.tests_deleted == ["tests/test_a.py"]
    assert (repo / "pyproject.toml").read_text() == changed
