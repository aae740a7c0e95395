"""The memory: ledger entries, fixes and phase summaries, retrieved by hybrid search."""

from autopack.memory.documents import MemoryDoc
from autopack.memory.keyword import KeywordIndex
from autopack.memory.rules import Rule, RuleBook, RuleError, RuleInjection
from autopack.memory.service import Hit, IndexReport, MemoryService, MemoryUnavailable, fuse

__all__ = [
    "Hit",
    "IndexReport",
    "KeywordIndex",
    "MemoryDoc",
    "MemoryService",
    "MemoryUnavailable",
    "Rule",
    "RuleBook",
    "RuleError",
    "RuleInjection",
    "fuse",
]
