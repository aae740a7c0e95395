"""Ledgers (BUILD_HISTORY, DEBUG_LOG, ARCHITECTURE_DECISIONS) and memory search."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from autopack.api.auth import READ, Caller
from autopack.api.errors import ApiError, documented
from autopack.api.models import LedgerEntries, LedgerEntry, MemoryHit, MemoryResults
from autopack.api.runs import Ctx
from autopack.ledger import read_ledgers

router = APIRouter(responses=documented(401, 403, 422, 429))
Reader = Annotated[Caller, Depends(READ)]
LedgerKind = Literal["build", "debug", "decision"]


@router.get("/ledgers/entries", response_model=LedgerEntries, tags=["ledgers"])
def ledger_entries(
    ctx: Ctx,
    _: Reader,
    kind: LedgerKind | None = None,
    q: Annotated[str, Query(max_length=500, description="Every word must appear.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> LedgerEntries:
    """Ledger entries, newest first; ``q`` keeps entries containing every word of it."""
    ledgers = read_ledgers(ctx.rt.repo)
    words = q.lower().split()
    found: list[LedgerEntry] = []
    for ledger_kind, ledger in ledgers.items():
        if kind is not None and ledger_kind != kind:
            continue
        for entry in ledger.entries:
            text = f"{entry.id} {entry.title}\n{entry.body}".lower()
            if all(word in text for word in words):
                found.append(
                    LedgerEntry(
                        id=entry.id,
                        kind=ledger_kind,
                        date=entry.date,
                        title=entry.title,
                        fields=entry.fields(),
                        body=entry.body,
                    )
                )
    found.sort(key=lambda e: (e.date, e.id), reverse=True)
    return LedgerEntries(entries=found[:limit], total=len(found))


@router.get(
    "/memory/search", response_model=MemoryResults, responses=documented(503), tags=["memory"]
)
def memory_search(
    ctx: Ctx,
    _: Reader,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    mode: Literal["hybrid", "keyword", "dense"] = "hybrid",
) -> MemoryResults:
    """What the memory holds about ``q``: lessons from ledgers, fixes and past phases."""
    try:
        from autopack.memory.service import MemoryService, MemoryUnavailable
    except ImportError as exc:
        raise ApiError(503, "memory_unavailable", f"the memory service is missing: {exc}") from exc
    service = MemoryService.for_repo(ctx.rt.repo, dense=mode != "keyword")
    try:
        hits = service.search(q, k=k, mode=mode)
    except MemoryUnavailable as exc:
        raise ApiError(503, "memory_unavailable", str(exc)) from exc
    finally:
        service.keyword.db.close()  # the index's connection belongs to this request's thread
    return MemoryResults(hits=[MemoryHit(**asdict(hit)) for hit in hits])
