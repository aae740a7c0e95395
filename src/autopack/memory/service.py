"""The memory service: index a repository's ledgers and runs, search them, hand out lessons.

Retrieval is hybrid: BM25 keyword search (always there) and dense search (MiniLM
vectors, when the ``memory`` extra is installed), fused by reciprocal rank. Fusion by
rank needs no score calibration between the two, and a document found by both rises.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from autopack.config import STATE_DIR, MemorySettings, load_settings
from autopack.memory.documents import MemoryDoc, repo_documents
from autopack.memory.keyword import KeywordIndex

if TYPE_CHECKING:
    from autopack.memory.embed import Embedder
    from autopack.memory.vectors import VectorStore

Mode = Literal["hybrid", "keyword", "dense"]
RRF_K = 10
"""Reciprocal-rank constant. Smaller than the usual 60 because we keep only the top few:
the heads of the two lists must dominate."""
WEIGHTS = (0.25, 0.75)
"""Keyword and dense weights in the fusion (Weaviate's default hybrid alpha, 0.75).
On bench/memory.py's generator (dev runs of 120-960 entries, not the reported corpus),
equal weights let keyword matches on a shared component name push paraphrase hits out
of the top 5: hybrid paraphrase recall@5 0.56-0.65 with 1:1, 0.80-0.90 with 1:3, while
exact and error-fragment queries stayed at 1.0 either way."""
MIN_LESSON_CHARS = 80
"""A lesson cut shorter than this says too little to be worth its tokens."""
CANDIDATES = 50
"""How deep each side's list goes before fusion."""


_BESIDE = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memory-dense")
"""Runs the dense half of hybrid searches beside the keyword half; one pool for the
process (a service is made per phase and per API request; a pool each leaked threads)."""


class MemoryUnavailable(RuntimeError):
    """Dense search was asked for but no embedder is installed."""


@dataclass(frozen=True)
class Hit:
    """A search result; ``source`` is ``ledger``, ``fix`` or ``phase``."""

    id: str
    title: str
    text: str
    score: float
    source: str


@dataclass(frozen=True)
class IndexReport:
    """What one indexing pass did."""

    documents: int
    updated: int
    skipped: bool = False


class MemoryService:
    """Keyword index plus, when an embedder and a vector store are given, dense retrieval."""

    def __init__(
        self,
        keyword: KeywordIndex,
        embedder: Embedder | None = None,
        vectors: VectorStore | None = None,
        *,
        indexing_enabled: bool = True,
        retrieval_enabled: bool = True,
    ) -> None:
        self.keyword = keyword
        self.embedder = embedder
        self.vectors = vectors if embedder is not None else None
        self.indexing_enabled = indexing_enabled
        self.retrieval_enabled = retrieval_enabled

    @classmethod
    def for_repo(cls, repo: Path, *, dense: bool = True) -> MemoryService:
        """The service as configured for ``repo``: stores under ``.autopack/memory``.

        Vectors live in an :class:`ArrayVectorStore` (``.autopack/memory/vectors``);
        ``[memory] qdrant_url`` puts them in a Qdrant server instead, and
        ``vector_store = "qdrant"`` in Qdrant's local mode. Local mode is not the default:
        it scores every point in Python (about 0.8 s a query at 100,000 points, and
        qdrant-client itself warns past 20,000), where the array store takes a few ms.
        """
        settings = load_settings(repo)
        root = repo / STATE_DIR / "memory"
        embedder = _embedder() if dense else None
        vectors = _vector_store(settings.memory, root, embedder.dim) if embedder else None
        return cls(
            KeywordIndex(root / "keyword.db"),
            embedder,
            vectors,
            indexing_enabled=settings.enable_sot_memory_indexing,
            retrieval_enabled=settings.sot_retrieval_enabled,
        )

    def index_repo(self, repo: Path, *, force: bool = False) -> IndexReport:
        """Index ``repo``'s ledgers, debug fixes and run summaries; only changed ones are redone.

        Skipped when indexing is switched off, unless ``force`` (an explicit request).
        """
        if not (self.indexing_enabled or force):
            return IndexReport(0, 0, skipped=True)
        docs = repo_documents(repo, repo.resolve().name)
        return IndexReport(len(docs), self.index_documents(docs))

    def index_documents(self, docs: Sequence[MemoryDoc]) -> int:
        """Store new or changed documents in both indexes; return how many there were."""
        changed = self.keyword.changed(docs)
        if self.embedder is not None and self.vectors is not None:
            # Also those the vector store lacks: indexed before the model was installed,
            # or kept in another store before.
            stale = {d.id for d in changed} | set(self.vectors.missing([d.id for d in docs]))
            embed = [d for d in docs if d.id in stale]
            if embed:
                vectors = self.embedder.embed([f"{d.title}\n{d.text}" for d in embed])
                self.vectors.upsert([d.id for d in embed], vectors)
        self.keyword.upsert(changed)
        return len(changed)

    def search(self, query: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        """The ``k`` best documents for ``query``; hybrid falls back to keyword without a model."""
        if mode == "keyword" or (mode == "hybrid" and self.vectors is None):
            return self._hits(self.keyword.search(query, k))
        if mode == "dense":
            return self._hits(self._dense(query, k))
        # The query's embedding and vector search run beside the keyword search: the model,
        # NumPy and SQLite release the GIL, so with two cores a search waits for the
        # longer of the two rather than their sum.
        dense = _BESIDE.submit(self._dense, query, CANDIDATES)
        keyword = self.keyword.search(query, CANDIDATES)
        return self._hits(fuse([keyword, dense.result()], WEIGHTS)[:k])

    def lessons_for(
        self, goal_text: str, scope_paths: Sequence[str], token_cap: int = 800
    ) -> list[str]:
        """Lessons for a Builder or Planner prompt, best first, within ``token_cap`` tokens.

        Tokens are estimated as characters / 4, which is what prompt budgets use before a
        provider counts; empty when retrieval is switched off.
        """
        if not self.retrieval_enabled:
            return []
        query = " ".join([goal_text, *(Path(path).stem for path in scope_paths)])
        lessons: list[str] = []
        room = token_cap * 4
        for hit in self.search(query, k=10):
            lesson = f"[{hit.id}] {hit.title}: {' '.join(hit.text.split())}"
            if len(lesson) > room:
                # The best lessons come first: cut the one that overflows, then stop.
                if room >= MIN_LESSON_CHARS:
                    lessons.append(lesson[: room - 3] + "...")
                break
            lessons.append(lesson)
            room -= len(lesson)
        return lessons

    def _dense(self, query: str, k: int) -> list[tuple[str, float]]:
        if self.embedder is None or self.vectors is None:
            raise MemoryUnavailable("dense search needs the memory extra and the MiniLM tokenizer")
        return self.vectors.search(self.embedder.embed([query])[0], k)

    def _hits(self, ranked: list[tuple[str, float]]) -> list[Hit]:
        docs = self.keyword.get([doc_id for doc_id, _ in ranked])
        return [
            Hit(doc_id, docs[doc_id].title, docs[doc_id].text, score, docs[doc_id].source)
            for doc_id, score in ranked
            if doc_id in docs
        ]


def fuse(
    rankings: Sequence[list[tuple[str, float]]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: list ``i`` adds ``weights[i] / (k + rank)``."""
    scores: dict[str, float] = {}
    for i, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[i]
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _embedder() -> Embedder | None:
    try:
        from autopack.memory.embed import default_embedder
    except ImportError:  # numpy is part of the memory extra
        return None
    return default_embedder()


def _vector_store(options: MemorySettings, root: Path, dim: int) -> VectorStore:
    from autopack.memory.vectors import ArrayVectorStore, QdrantVectorStore

    url = options.qdrant_url
    if url or options.vector_store == "qdrant":
        return QdrantVectorStore(dim, path=str(root / "qdrant"), url=url or None)
    return ArrayVectorStore(dim, root / "vectors")
