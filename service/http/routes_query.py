"""Search, grounded answers (JSON or server-sent events) and the chunks citations point at."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath
from litestar.response import Stream

from service import auth
from service.http.api_models import (
    AnswerRequest,
    AnswerResponse,
    ChunkOut,
    SearchRequest,
    SearchResponse,
    answer_out,
    check_k,
    check_query,
    citation_out,
    result_out,
    to_builtins,
    to_filters,
)
from service.http.errors import ERROR_RESPONSES, check_id, not_found
from service.http.services import Services, iterate_in_thread
from service.http.sse import SSE_HEADERS, sse
from service.query.types import Answer, Query, SearchOutcome

log = logging.getLogger(__name__)

_SEARCH_EXAMPLE = Example(summary="Hybrid search in one collection", value={
    "query": "How do I rotate the VPN certificate?", "k": 5, "mode": "hybrid",
    "filters": {"collections": ["it"], "updated_after": "2025-01-01T00:00:00Z"}, "rerank": True, "collapse": False,
})
_ANSWER_EXAMPLE = Example(summary="Grounded answer", value={"query": "How many vacation days do new employees get?", "k": 6})


@post("/search", status_code=200, responses=ERROR_RESPONSES, tags=["query"], summary="Hybrid search",
      description="Dense + keyword retrieval, fused and optionally reranked; only documents the key may see.")
async def search(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                 data: Annotated[SearchRequest, Body(examples=[_SEARCH_EXAMPLE])]) -> SearchResponse:
    check_query(data.query, svc.settings)
    check_k(data.k, svc.settings)
    outcome = await svc.search(Query(data.query, caller.principal, k=data.k, mode=data.mode, filters=to_filters(data.filters),
                                     rerank=data.rerank, collapse=data.collapse))
    await svc.audited(caller, "POST /v1/search", "search", query=data.query, hits=outcome.hits)
    return SearchResponse(results=[result_out(h) for h in outcome.hits], provenance=_provenance(svc, outcome), timings_ms=outcome.timings_ms)


@post("/answer", status_code=200, responses=ERROR_RESPONSES, tags=["query"], summary="Grounded answer with citations",
      description="JSON by default; with `\"stream\": true` or `Accept: text/event-stream`, server-sent events "
                  "`results`, `delta` ({text}), `citation`, `done` (the full answer object) and `error`.")
async def answer(request: Request, svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                 data: Annotated[AnswerRequest, Body(examples=[_ANSWER_EXAMPLE])]) -> Response[AnswerResponse]:
    check_query(data.query, svc.settings)
    k = check_k(data.k, svc.settings) or svc.settings.context_chunks
    outcome = await svc.search(Query(data.query, caller.principal, k=k, filters=to_filters(data.filters), rerank=data.rerank))
    # Every passage the answer may draw on is recorded, before any of it is sent.
    await svc.audited(caller, "POST /v1/answer", "answer", query=data.query, hits=outcome.hits)
    if not _wants_stream(request, data.stream):
        result = await anyio.to_thread.run_sync(svc.generate, data.query, outcome)
        return Response(answer_out(result, outcome.hits, _provenance(svc, outcome, result), outcome.timings_ms))
    # A Response return annotation leaves the handler without a fixed media type, so the
    # stream's own text/event-stream reaches the client.
    return Stream(_answer_events(svc, data.query, outcome), media_type="text/event-stream", headers=SSE_HEADERS)


def _wants_stream(request: Request, flag: bool) -> bool:
    return flag or "text/event-stream" in request.headers.get("accept", "")


def _provenance(svc: Services, outcome: SearchOutcome, answer: Answer | None = None) -> dict:
    out = svc.groundwork.provenance(reranked=outcome.reranked)
    notes = list(outcome.notes) + (list(answer.notes) if answer is not None else [])
    if answer is not None and answer.generator:
        out["generator"] = answer.generator
    out["notes"] = notes
    return out


async def _answer_events(svc: Services, question: str, outcome: SearchOutcome) -> AsyncIterator[bytes]:
    yield sse("results", {"results": [to_builtins(result_out(h)) for h in outcome.hits]})
    started = time.perf_counter()
    try:
        async for item in iterate_in_thread(svc.stream_answer(question, outcome)):
            if isinstance(item, Answer):
                outcome.timings_ms["generate"] = round((time.perf_counter() - started) * 1000, 3)
                svc.metrics.observe_stages({"generate": outcome.timings_ms["generate"]})
                for citation in item.citations:
                    yield sse("citation", to_builtins(citation_out(citation)))
                final = answer_out(item, outcome.hits, _provenance(svc, outcome, item), outcome.timings_ms)
                yield sse("done", to_builtins(final))
                return
            yield sse("delta", {"text": str(item)})
        problem = "the generator ended without an answer"
    except Exception as exc:
        log.exception("answer stream failed")
        problem = f"the answer could not be completed ({type(exc).__name__})"
    yield sse("error", {"code": "generation_failed", "message": problem})


@get("/chunks/{chunk_id:int}", sync_to_thread=True, responses=ERROR_RESPONSES, tags=["query"], summary="One chunk by id (what a citation points at)")
def get_chunk(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], chunk_id: FromPath[int]) -> ChunkOut:
    check_id(chunk_id, "chunk")
    record = svc.groundwork.store.chunk_records([chunk_id]).get(chunk_id)
    # Invisible and missing look the same: a 404 must not confirm that the id exists.
    if record is None or not caller.principal.can_see(record.groups):
        svc.audited_blocking(caller, "GET /v1/chunks/{chunk_id}", "chunk_read", 404)
        raise not_found("chunk")
    svc.audited_blocking(caller, "GET /v1/chunks/{chunk_id}", "chunk_read", chunk_ids=[record.id], document_ids=[record.document_id])
    return ChunkOut(chunk_id=record.id, document_id=record.document_id, ordinal=record.ordinal, text=record.text, source=record.source,
                    title=record.title, pages=record.pages, section=" > ".join(record.heading_path) or None, start=record.start,
                    end=record.end, collection=record.collection)


ROUTES = [search, answer, get_chunk]
