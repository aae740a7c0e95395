"""All SQL lives in the store: no module outside ``store/`` builds a query.

The one exception is the store-backed budget ledger (``engine/budget_ledger.py``): it
subclasses the model layer's ledger, and the store may not depend on the model layer
(DEC-028). Error classes and the ``Engine`` type may be named anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import autopack
from autopack.store import SqlStore, Store

ROOT = Path(autopack.__file__).parent
ALLOWED = {"sqlalchemy.exc"}
"""What any module may import from SQLAlchemy: its error classes."""
TYPES = {"Engine"}
"""Names of SQLAlchemy any module may import: a type to pass a store's engine along."""
EXCEPTIONS = {"engine/budget_ledger.py"}


def _foreign_sql(module: str | None) -> bool:
    return (module or "").split(".")[0] == "sqlalchemy" and module not in ALLOWED


def sql_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and _foreign_sql(node.module):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name not in TYPES]
    return found


def test_no_module_outside_the_store_builds_sql() -> None:
    offenders = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("store/") or rel in EXCEPTIONS:
            continue
        if found := sql_imports(path):
            offenders[rel] = found
    # ci/doctor.py opens a database URL to check it (create_engine, make_url): no query
    assert offenders == {"ci/doctor.py": ["sqlalchemy.create_engine", "sqlalchemy.engine.make_url"]}


def test_the_sql_store_has_every_method_of_the_protocol() -> None:
    """mypy checks the signatures where a ``SqlStore`` is used as a ``Store``; this
    checks that no protocol method is missing from the implementation."""
    methods = {name for name, v in vars(Store).items() if callable(v) and name[0] != "_"}
    assert len(methods) > 15
    assert {name for name in methods if not callable(getattr(SqlStore, name, None))} == set()
