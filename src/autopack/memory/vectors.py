"""Vector stores: where dense vectors live.

:class:`ArrayVectorStore` is the embedded default: one NumPy matrix in memory, saved
under ``.autopack/memory/vectors``. :class:`QdrantVectorStore` talks to a Qdrant server
(``[memory] qdrant_url``), or runs Qdrant's local mode (``vector_store = "qdrant"``):
local mode scores every point in Python and sorts them all on each query (measured
~100 ms at 10,000 points and ~800 ms at 100,000 on a busy 2-core machine;
qdrant-client warns past 20,000), so it suits small memories only. Qdrant point ids are
UUIDs derived from the document id, so re-indexing a document overwrites its vector.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from autopack.memory.embed import Vectors

_NAMESPACE = uuid.UUID("6f1c3a52-1d0e-4c55-9a3e-3f2f6c1b7d10")
EXACT_ROWS = 20_000
"""Up to this many rows every vector is scored exactly (30 MB at 384 dimensions)."""
POOL = 1_000
"""Rows the sign sketch passes on to exact scoring; at least four times ``k``."""


class VectorStore(Protocol):
    """Stores one vector per document id and finds the nearest ones."""

    def upsert(self, ids: Sequence[str], vectors: Vectors) -> None: ...

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids among ``ids`` that have no vector here."""
        ...

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

    def missing(self, ids: Sequence[str]) -> list[str]:
        points = {str(uuid.uuid5(_NAMESPACE, doc_id)): doc_id for doc_id in ids}
        stored = self.client.retrieve(self.collection, list(points), with_payload=False)
        present = {str(point.id) for point in stored}
        return [doc_id for point, doc_id in points.items() if point not in present]

    def search(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        found = self.client.query_points(self.collection, query=vector.tolist(), limit=k)
        return [(str((p.payload or {})["doc_id"]), float(p.score)) for p in found.points]

    def close(self) -> None:
        self.client.close()


class ArrayVectorStore:
    """All vectors in one contiguous matrix of unit rows, in memory; saved as ``.npy`` + ids.

    Cosine search is a matrix-vector product, which reads the whole matrix: 150 MB at
    100,000 x 384, memory-bound at ~15 ms of CPU. Past :data:`EXACT_ROWS` rows a 1-bit
    sketch (the sign of each component, 48 bytes a vector, stored transposed so each
    pass over it is contiguous) first picks the :data:`POOL` rows nearest in Hamming
    distance, and only those are scored exactly: the same top ``k`` in nearly every
    case (Qdrant's binary quantization with oversampling and rescoring) while reading
    5 MB instead of 150 MB at 100,000 rows.
    """

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.path = path
        self.ids: list[str] = []
        self.matrix: Vectors = np.zeros((0, dim), dtype=np.float32)
        if path is not None and (path / "vectors.npy").is_file():
            self.matrix = np.ascontiguousarray(np.load(path / "vectors.npy"), dtype=np.float32)
            self.ids = (path / "ids.txt").read_text(encoding="utf-8").splitlines()
        self.row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        self.sketch = _sketch(self.matrix)

    def upsert(self, ids: Sequence[str], vectors: Vectors) -> None:
        vectors = _unit(vectors)
        fresh = [i for i, doc_id in enumerate(ids) if doc_id not in self.row]
        known = [i for i, doc_id in enumerate(ids) if doc_id in self.row]
        self.matrix[[self.row[ids[i]] for i in known]] = vectors[known]
        for i in fresh:
            self.row[ids[i]] = len(self.ids)
            self.ids.append(ids[i])
        if fresh:
            self.matrix = np.concatenate([self.matrix, vectors[fresh]])
        self.sketch = _sketch(self.matrix)
        self._save()

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [doc_id for doc_id in ids if doc_id not in self.row]

    def search(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        k = min(k, len(self.ids))
        if k <= 0:
            return []
        query = _unit(vector[None, :])[0]
        rows = self._pool(query, k)
        scores = _cosines(self.matrix if rows is None else self.matrix[rows], query)
        top = _top(scores, k)
        found = top if rows is None else rows[top]
        return [(self.ids[i], float(scores[j])) for i, j in zip(found, top, strict=True)]

    def _pool(self, query: Vectors, k: int) -> npt.NDArray[np.intp] | None:
        """Rows worth scoring exactly, or ``None`` for all of them."""
        pool = max(POOL, 4 * k)
        if len(self.ids) <= max(EXACT_ROWS, pool):
            return None
        bits = _sketch(query[None, :])
        # Counts per word are uint8; their sum (up to the dimension) needs 16 bits.
        distance = np.bitwise_count(self.sketch[0] ^ bits[0, 0]).astype(np.uint16)
        for word in range(1, self.sketch.shape[0]):
            distance += np.bitwise_count(self.sketch[word] ^ bits[word, 0])
        return np.argpartition(distance, pool)[:pool]

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        np.save(self.path / "vectors.npy", self.matrix)
        (self.path / "ids.txt").write_text("\n".join(self.ids) + "\n", encoding="utf-8")


def _unit(vectors: Vectors) -> Vectors:
    """Rows scaled to length 1, as float32: a dot product is then the cosine."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Vectors = vectors / np.maximum(norms, 1e-12)
    return unit


def _cosines(matrix: Vectors, query: Vectors) -> Vectors:
    """``matrix @ query`` in one thread. NumPy hands ``@`` to OpenBLAS, whose threads
    spin-wait for a busy second core: measured 16 ms instead of 0.6 ms at 10,000 rows
    on a loaded 2-core machine, and they slow the query's embedding beside it."""
    cosines: Vectors = np.einsum("ij,j->i", matrix, query)
    return cosines


def _sketch(matrix: Vectors) -> npt.NDArray[np.uint64]:
    """Sign bits of each row, packed into 64-bit words; shape (words, rows)."""
    if matrix.shape[1] % 64:
        matrix = np.pad(matrix, ((0, 0), (0, 64 - matrix.shape[1] % 64)))
    packed = np.packbits(matrix > 0, axis=1).view(np.uint64)
    return np.ascontiguousarray(packed.T)


def _top(scores: Vectors, k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores, highest first."""
    top = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
    return top[np.argsort(-scores[top], kind="stable")]
