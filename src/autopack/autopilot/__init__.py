"""The autonomy loop's parts: the intention, and the gap scan that measures a repository
against it."""

from autopack.autopilot.gaps import KINDS, Gap, Scan, scan
from autopack.autopilot.intention import (
    INTENTION_FILE,
    Intention,
    IntentionError,
    load_intention,
    parse_intention_text,
)

__all__ = [
    "INTENTION_FILE",
    "KINDS",
    "Gap",
    "Intention",
    "IntentionError",
    "Scan",
    "load_intention",
    "parse_intention_text",
    "scan",
]
