"""Memory search: keyword finds error fragments, dense finds paraphrases, hybrid both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autopack.memory import KeywordIndex, MemoryDoc, MemoryService, fuse
from autopack.memory.embed import MiniLMEmbedder
from autopack.memory.vectors import QdrantVectorStore

DOCS = [
    MemoryDoc(
        "p/DBG-001#0",
        "DBG-001 Database timeout",
        "psycopg.OperationalError: connection to server timed out. Fix: raise the pool size.",
        "ledger",
    ),
    MemoryDoc(
        "p/DBG-002#0",
        "DBG-002 Unicode failure",
        "UnicodeDecodeError: 'utf-8' codec "
        "can't decode byte 0xff. Fix: open files with an explicit encoding.",
        "ledger",
    ),
    MemoryDoc(
        "p/DBG-003#0",
        "DBG-003 Flaky clock test",
        "AssertionError in test_elapsed: compared wall-clock durations. Fix: use a fake clock.",
        "ledger",
    ),
    MemoryDoc(
        "p/DEC-001#0",
        "DEC-001 SQLite by default",
        "Decision: use SQLite unless a URL is given. Rationale: nothing to install.",
        "ledger",
    ),
]


@pytest.fixture
def service(embedder: MiniLMEmbedder) -> MemoryService:
    memory = MemoryService(KeywordIndex(), embedder, QdrantVectorStore(embedder.dim))
    memory.index_documents(DOCS)
    return memory


def test_embeddings_put_paraphrases_closer_than_unrelated_text(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(
        [
            "the test suite fails because the database connection times out",
            "tests break since the DB takes too long to answer and gives up",
            "how to bake a chocolate cake at home",
        ]
    )
    assert float(np.dot(a, b)) > float(np.dot(a, c)) + 0.3
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-4


def test_keyword_search_finds_an_error_fragment(service: MemoryService) -> None:
    hits = service.search("UnicodeDecodeError: 'utf-8' codec", k=2, mode="keyword")

    assert hits[0].id == "p/DBG-002#0"
    assert hits[0].source == "ledger" and "explicit encoding" in hits[0].text


def test_dense_and_hybrid_find_a_paraphrase_keyword_misses(service: MemoryService) -> None:
    query = "a check sometimes passes and sometimes not because it measures how long things take"

    assert service.search(query, k=1, mode="dense")[0].id == "p/DBG-003#0"
    assert service.search(query, k=1, mode="hybrid")[0].id == "p/DBG-003#0"


def test_hybrid_without_a_model_falls_back_to_keyword() -> None:
    memory = MemoryService(KeywordIndex())
    memory.index_documents(DOCS)

    assert [h.id for h in memory.search("SQLite URL", k=1)] == ["p/DEC-001#0"]


def test_reindexing_unchanged_documents_does_nothing(service: MemoryService) -> None:
    assert service.index_documents(DOCS) == 0
    changed = MemoryDoc(
        "p/DEC-001#0", "DEC-001 SQLite by default", "Decision: PostgreSQL.", "ledger"
    )
    assert service.index_documents([*DOCS[:3], changed]) == 1
    assert service.search("PostgreSQL", k=1, mode="keyword")[0].text == "Decision: PostgreSQL."


def test_fusion_ranks_a_document_found_by_both_first() -> None:
    fused = fuse([[("a", 9.0), ("b", 8.0)], [("c", 0.9), ("b", 0.8)]])

    assert fused[0][0] == "b"


def test_index_repo_indexes_ledgers_fixes_and_phases(repo: Path, embedder: MiniLMEmbedder) -> None:
    memory = MemoryService(KeywordIndex(repo / "kw.db"), embedder, QdrantVectorStore(embedder.dim))

    first = memory.index_repo(repo)
    second = memory.index_repo(repo)
    hits = memory.search("OperationalError connection timed out pool exhausted", k=10)

    assert first.updated == first.documents > 0 and second.updated == 0
    sources = {hit.source for hit in hits}
    assert {"ledger", "fix", "phase"} <= sources
    name = repo.resolve().name
    assert f"{name}/fix:DBG-001" in {hit.id for hit in hits}


def test_lessons_respect_the_token_cap_and_the_switch(repo: Path) -> None:
    memory = MemoryService(KeywordIndex())
    memory.index_repo(repo)

    lessons = memory.lessons_for("orders storage timed out", ["src/db/pool.py"], token_cap=60)
    assert lessons and sum(len(lesson) for lesson in lessons) <= 60 * 4
    assert memory.lessons_for("orders storage", [], token_cap=10_000) != lessons
    memory.retrieval_enabled = False
    assert memory.lessons_for("orders storage timed out", [], token_cap=1000) == []


def test_indexing_switch_off_skips_unless_forced(repo: Path) -> None:
    memory = MemoryService(KeywordIndex(), indexing_enabled=False)

    assert memory.index_repo(repo).skipped
    assert memory.keyword.count() == 0
    assert memory.index_repo(repo, force=True).updated > 0
