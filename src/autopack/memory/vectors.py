"""Vector stores: where dense vectors live. :class:`QdrantVectorStore` is the one we ship.

Qdrant's local mode (``path=`` a directory, or ``":memory:"``) needs no server; a URL
points the same code at a Qdrant server. Point ids are UUIDs derived from the
document id, so re-indexing a document overwrites its vector instead of adding one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

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
