"""The embedded stores: vectors exact when few and via a sketch when many; keyword upgrades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autopack.memory import KeywordIndex, MemoryDoc, MemoryService
from autopack.memory.embed import MiniLMEmbedder
from autopack.memory.vectors import EXACT_ROWS, ArrayVectorStore


def _unit_rows(rng: np.random.Generator, n: int, dim: int = 384) -> np.ndarray:
    """Like sentence embeddings: texts about the same thing cluster, and all share an offset."""
    topics = rng.normal(size=(max(1, n // 20), dim)).astype(np.float32)
    noise = rng.normal(0, 0.8, (n, dim)).astype(np.float32)
    rows = topics[rng.integers(0, len(topics), n)] + noise + 0.3
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_large_store_finds_the_same_nearest_neighbours_as_exact_scoring() -> None:
    rng = np.random.default_rng(5)
    rows = _unit_rows(rng, 2 * EXACT_ROWS)
    store = ArrayVectorStore(384)
    store.upsert([f"d{i}" for i in range(len(rows))], rows)

    agree = 0
    for i in range(20):
        query = rows[i * 97] + rng.normal(0, 0.05, 384).astype(np.float32)
        exact = np.argsort(-(rows @ (query / np.linalg.norm(query))))[:5]
        found = store.search(query, 5)
        assert found[0][0] == f"d{i * 97}"
        agree += len({f"d{j}" for j in exact} & {doc_id for doc_id, _ in found})
    assert agree >= 0.95 * 20 * 5


def test_upsert_overwrites_by_id_and_the_store_reloads_from_disk(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    store = ArrayVectorStore(384, tmp_path / "vectors")
    store.upsert(["a", "b"], _unit_rows(rng, 2))
    replacement = _unit_rows(rng, 1)
    store.upsert(["b", "c"], np.vstack([replacement * 3.0, _unit_rows(rng, 1)]))

    reloaded = ArrayVectorStore(384, tmp_path / "vectors")
    best, score = reloaded.search(replacement[0], 1)[0]
    assert (best, round(score, 4)) == ("b", 1.0)  # stored normalised, not scaled
    assert reloaded.ids == ["a", "b", "c"]
    assert reloaded.missing(["a", "z"]) == ["z"]


def test_documents_indexed_before_the_model_was_installed_get_vectors_later(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    keyword = KeywordIndex(tmp_path / "kw.db")
    doc = MemoryDoc("p/DBG-001#0", "DBG-001 Timeout", "the database took too long", "ledger")
    MemoryService(keyword).index_documents([doc])  # keyword only: no model yet

    vectors = ArrayVectorStore(embedder.dim, tmp_path / "vectors")
    with_model = MemoryService(keyword, embedder, vectors)
    with_model.index_documents([doc])

    hits = with_model.search("the DB answers too slowly", k=1, mode="dense")
    assert [hit.id for hit in hits] == ["p/DBG-001#0"]


@pytest.mark.parametrize("rows", [0, 3])
def test_asking_for_more_than_is_stored_returns_what_there_is(rows: int) -> None:
    store = ArrayVectorStore(384)
    if rows:
        store.upsert([f"d{i}" for i in range(rows)], _unit_rows(np.random.default_rng(7), rows))
    assert len(store.search(np.ones(384, dtype=np.float32), 10)) == rows


def test_keyword_index_from_an_earlier_version_still_finds_documents(tmp_path: Path) -> None:
    path = tmp_path / "kw.db"
    old = KeywordIndex(path)
    old.upsert([MemoryDoc("p/DBG-001#0", "Timeout", "psycopg OperationalError pool", "ledger")])
    old.upsert([MemoryDoc("p/DBG-001#0", "Timeout", "psycopg OperationalError", "ledger")])
    old.db.execute("DROP TABLE df")  # made before document frequencies were kept
    old.close()

    index = KeywordIndex(path)
    assert [doc_id for doc_id, _ in index.search("OperationalError in psycopg", 5)] == [
        "p/DBG-001#0"
    ]
    assert index.search("pool", 5) == []  # the replaced text is gone from the counts too
