"""Vector stores: where dense vectors live.

:class:`QdrantVectorStore` is the default: Qdrant's local mode (``path=`` a directory,
or ``":memory:"``) needs no server, and a URL points the same code at a Qdrant server.
Point ids are UUIDs derived from the document id, so re-indexing a document overwrites
its vector. Qdrant's local mode sorts every stored point on each query (measured:
~100 ms at 10,000 points on 2 cores), so :class:`ArrayVectorStore`, one NumPy matrix
and a partial sort, is offered for large embedded memories (``vector_store = "array"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from autopack.memory.embed import Vectors

_NAMESPACE = uuid.UUID("6f1c3a52-1d0e-4c55-9a3e-3f2f6c1b7d10")


class VectorStore(Protocol):
    """Stores one vector per document id and finds the nearest ones."""

    def upsert(self, ids: Sequence[str], vectors: Vectors) -> None: ...

    def search(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        """``(document id, similarity)`` pairs, most similar first."""
        ...


class QdrantVectorStore:
    """A Qdrant collection with cosine distance; local mode unless ``url`` is given."""

    def __init__(
        self,
        dim: int,
        *,
        path: str = ":memory:",
        url: str | None = None,
        collection: str = "memory",
    ) -> None:
        from qdrant_client import QdrantClient, models

        self._models = models
        self.client = QdrantClient(url=url) if url else QdrantClient(path=path)
        self.collection = collection
        if not self.client.collection_exists(collection):
            self.client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            )

    def upsert(self, ids: Sequence[str], vectors: Vectors, batch: int = 512) -> None:
        for start in range(0, len(ids), batch):
            points = [
                self._models.PointStruct(
                    id=str(uuid.uuid5(_NAMESPACE, doc_id)),
                    vector=vectors[start + i].tolist(),
                    payload={"doc_id": doc_id},
                )
                for i, doc_id in enumerate(ids[start : start + batch])
            ]
            self.client.upsert(self.collection, points=points)

    def search(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        found = self.client.query_points(self.collection, query=vector.tolist(), limit=k)
        return [(str((p.payload or {})["doc_id"]), float(p.score)) for p in found.points]

    def close(self) -> None:
        self.client.close()


class ArrayVectorStore:
    """All vectors in one matrix; exact cosine search. Saved as ``.npy`` plus an id list."""

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.path = path
        self.ids: list[str] = []
        self.matrix: Vectors = np.zeros((0, dim), dtype=np.float32)
        if path is not None and (path / "vectors.npy").is_file():
            self.matrix = np.load(path / "vectors.npy")
            self.ids = (path / "ids.txt").read_text(encoding="utf-8").splitlines()
        self.row = {doc_id: i for i, doc_id in enumerate(self.ids)}

    def upsert(self, ids: Sequence[str], vectors: Vectors) -> None:
        fresh = [i for i, doc_id in enumerate(ids) if doc_id not in self.row]
        for i, doc_id in enumerate(ids):
            if doc_id in self.row:
                self.matrix[self.row[doc_id]] = vectors[i]
        for i in fresh:
            self.row[ids[i]] = len(self.ids)
            self.ids.append(ids[i])
        self.matrix = np.vstack([self.matrix, vectors[fresh]]) if fresh else self.matrix
        self._save()

    def search(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        scores = self.matrix @ vector
        k = min(k, len(scores))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top]

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        np.save(self.path / "vectors.npy", self.matrix)
        (self.path / "ids.txt").write_text("\n".join(self.ids) + "\n", encoding="utf-8")
