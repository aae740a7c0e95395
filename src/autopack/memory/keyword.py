"""The keyword side of memory, and its document store: SQLite FTS5 with BM25.

Always available (Python's sqlite3 ships FTS5), no model. It also holds each
document's text and content hash, which is how indexing skips what is unchanged and
how dense hits get their text back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from autopack.memory.documents import MemoryDoc

_WORD = re.compile(r"[^\W_]+")
MAX_DF = 0.05
"""Query words in more than this share of documents are dropped (their BM25 weight is
near zero, yet scoring every document they occur in dominates the query time)."""
KEEP_RAREST = 2
"""However common its words, a query keeps at least this many of its rarest ones."""
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "why",
        "with",
    ]
)
_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(title, body, tokenize = 'unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5vocab(docs, row);
CREATE TABLE IF NOT EXISTS meta (
    doc_id TEXT PRIMARY KEY, fts_rowid INTEGER NOT NULL, hash TEXT NOT NULL, source TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS meta_by_fts_rowid ON meta (fts_rowid);
CREATE TABLE IF NOT EXISTS df (term TEXT PRIMARY KEY, docs INTEGER NOT NULL) WITHOUT ROWID;
"""


class KeywordIndex:
    """Documents in an FTS5 table; ``path`` ``":memory:"`` keeps them in memory."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.executescript(_SCHEMA)
        self._count = int(self.db.execute("SELECT count(*) FROM meta").fetchone()[0])
        if self._count and self.db.execute("SELECT 1 FROM df LIMIT 1").fetchone() is None:
            with self.db:  # an index made before document frequencies were kept
                self.db.execute("INSERT INTO df SELECT term, doc FROM terms")

    def changed(self, docs: Iterable[MemoryDoc]) -> list[MemoryDoc]:
        """The documents that are new or whose content differs from what is stored."""
        stored = dict(self.db.execute("SELECT doc_id, hash FROM meta"))
        return [doc for doc in docs if stored.get(doc.id) != doc.content_hash]

    def upsert(self, docs: Sequence[MemoryDoc]) -> None:
        touched: set[str] = set()
        with self.db:
            for doc in docs:
                touched.update(words(f"{doc.title} {doc.text}"))
                old = self.db.execute(
                    "SELECT fts_rowid, title, body FROM docs "
                    "JOIN meta ON meta.fts_rowid = docs.rowid WHERE meta.doc_id = ?",
                    (doc.id,),
                ).fetchone()
                if old is not None:
                    touched.update(words(f"{old[1]} {old[2]}"))
                    self.db.execute("DELETE FROM docs WHERE rowid = ?", old[:1])
                cursor = self.db.execute(
                    "INSERT INTO docs (title, body) VALUES (?, ?)", (doc.title, doc.text)
                )
                self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?, ?, ?)",
                    (doc.id, cursor.lastrowid, doc.content_hash, doc.source),
                )
                if old is None:
                    self._count += 1
            self._refresh_df(touched)

    def _refresh_df(self, terms: set[str]) -> None:
        """Document frequencies of ``terms``, copied from FTS5 into a plain table.

        FTS5 counts a term's documents by walking its whole posting list (milliseconds
        for a common word at 100,000 documents), and every query needs the counts of all
        its words; looked up in this table they cost microseconds.
        """
        for term in terms:
            found = self.db.execute("SELECT doc FROM terms WHERE term = ?", (term,)).fetchone()
            if found is None or not found[0]:
                self.db.execute("DELETE FROM df WHERE term = ?", (term,))
            else:
                self.db.execute("INSERT OR REPLACE INTO df VALUES (?, ?)", (term, found[0]))

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """``(document id, score)`` by BM25 over the query's distinctive words, best first."""
        match = " OR ".join(f'"{word}"' for word in self._distinctive(words(query)))
        if not match:
            return []
        # Rank inside FTS5 first and join only the top k: joining every match to its id
        # before the sort cost a quarter of the query at 100,000 documents.
        rows = self.db.execute(
            "SELECT meta.doc_id, top.rank FROM ("
            " SELECT rowid, bm25(docs, 2.0, 1.0) AS rank FROM docs"
            " WHERE docs MATCH ? ORDER BY rank LIMIT ?"
            ") AS top JOIN meta ON meta.fts_rowid = top.rowid ORDER BY top.rank",
            (match, k),
        )
        return [(doc_id, -rank) for doc_id, rank in rows]

    def _distinctive(self, query_words: list[str]) -> list[str]:
        if not query_words:
            return []
        marks = ",".join("?" * len(query_words))
        df = dict(
            self.db.execute(f"SELECT term, docs FROM df WHERE term IN ({marks})", query_words)
        )
        known = sorted((w for w in query_words if w in df), key=lambda w: df[w])
        limit = MAX_DF * self.count()
        return [w for i, w in enumerate(known) if i < KEEP_RAREST or df[w] <= limit]

    def get(self, ids: Sequence[str]) -> dict[str, MemoryDoc]:
        found: dict[str, MemoryDoc] = {}
        for doc_id in ids:
            row = self.db.execute(
                "SELECT docs.title, docs.body, meta.source FROM meta "
                "JOIN docs ON docs.rowid = meta.fts_rowid WHERE meta.doc_id = ?",
                (doc_id,),
            ).fetchone()
            if row is not None:
                found[doc_id] = MemoryDoc(doc_id, row[0], row[1], row[2])
        return found

    def count(self) -> int:
        """Documents stored; kept in memory because every search needs it."""
        return self._count

    def close(self) -> None:
        self.db.close()


def words(text: str) -> list[str]:
    """The query's words as FTS5's unicode61 tokenizer sees them, without stopwords."""
    found = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOPWORDS]
    return list(dict.fromkeys(found))
