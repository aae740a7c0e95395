"""Where the settings live, read without validating them (no pydantic): the file a
repository's settings come from, and whether they name a database.

:mod:`autopack.config` validates what is read here; commands that must start fast
(``autopack runs``, ``status``) only ask which database to read.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = "autopack.toml"
STATE_DIR = ".autopack"
DB_URL_ENV = "AUTOPACK_DB_URL"


class ConfigError(ValueError):
    """A config file or environment variable that cannot be used."""


def read_config_file(repo: Path) -> tuple[dict[str, Any], str]:
    """The raw table and the file it came from; any unreadable file is a ConfigError."""
    own = repo / CONFIG_FILE
    pyproject = repo / "pyproject.toml"
    path = own if own.is_file() else pyproject if pyproject.is_file() else None
    if path is None:
        return {}, "defaults"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if path == own:
        return table, str(path)
    found: Any = table.get("tool", {})
    found = found.get("autopack", {}) if isinstance(found, dict) else None
    if not isinstance(found, dict):
        raise ConfigError(f"{path}: tool.autopack: must be a table")
    return dict(found), str(path)


def names_a_database(repo: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$AUTOPACK_DB_URL`` or the settings file name a database other than the
    default SQLite file in ``.autopack/``."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(DB_URL_ENV) or read_config_file(repo)[0].get("db_url"))


def default_db_path(repo: Path) -> Path:
    return repo / STATE_DIR / "autopack.db"
