"""The HTTP API: a thin Litestar shell over ``Groundwork``.

Every limit (body size, query length, ``k``, rate) is checked before any model runs, and all
model work (embedding, reranking, generation, ingestion) runs in worker threads, off the
event loop. Errors are JSON ``{"error": {"code", "message"}}`` with a stable code; an input
can produce a 4xx but never a 500. Access control is the retrieval layer's: the principal of
the key travels into every query, and objects the caller may not see are reported missing.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
from litestar import Litestar, Request, Response, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, Example, SecurityScheme
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from index.models import Document, IdempotencyRecord, IngestJob, JobStatus, utcnow
from index.settings import AuthMode, Settings
from index.vectors import serve_single_queries_on_this_thread
from service import auth
from service.api_models import (
    AnswerRequest,
    AnswerResponse,
    ApiError,
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkOut,
    DocumentList,
    DocumentOut,
    DocumentPatch,
    ErrorResponse,
    HealthResponse,
    IngestJobRequest,
    JobAccepted,
    JobOut,
    KeyCreated,
    KeyCreateRequest,
    KeyOut,
    ReindexRequest,
    ReindexStatus,
    SearchRequest,
    SearchResponse,
    UploadForm,
    UploadResponse,
    answer_out,
    check_groups,
    check_k,
    check_name,
    check_query,
    citation_out,
    document_out,
    error_body,
    key_out,
    message_text,
    result_out,
    to_builtins,
    to_filters,
)
from service.engine import Groundwork
from service.jobs import JobRunner, PathNotAllowed, check_paths, job_row
from service.logging_setup import RequestObserver, current_request
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.metrics import ServiceMetrics
from service.query_types import Answer, Principal, SearchFilters
from service.ratelimit import RateLimiter
from service.retrieval import SearchOutcome

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
ALL_COLLECTIONS_MODEL = "groundwork"
MULTIPART_SLACK_BYTES = 64 * 1024  # form fields and part headers around the file itself
MAX_DB_ID = 2**63 - 1
_CALLER = "groundwork.caller"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w. +()-]")  # \w: letters and digits of any script


# --- application state ---------------------------------------------------------------------------


class Reindexer:
    """Runs ``Groundwork.reindex`` in one background thread; searches continue meanwhile."""

    def __init__(self, groundwork: Groundwork):
        self.groundwork = groundwork
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.version: int | None = None
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, reembed: bool) -> bool:
        with self._lock:
            if self.running:
                return False
            self.started_at, self.finished_at, self.error = utcnow(), None, None
            self._thread = threading.Thread(target=self._run, args=(reembed,), name="reindex", daemon=True)
            self._thread.start()
            return True

    def _run(self, reembed: bool) -> None:
        try:
            self.version = self.groundwork.reindex(reembed=reembed, progress=False)
            log.info("reindex finished: index version %s", self.version)
        except Exception as exc:
            log.exception("reindex failed")
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished_at = utcnow()

    def status(self) -> ReindexStatus:
        return ReindexStatus(running=self.running, started_at=self.started_at, finished_at=self.finished_at,
                             version=self.version, error=self.error)


@dataclass
class Services:
    groundwork: Groundwork
    settings: Settings
    limiter: RateLimiter
    metrics: ServiceMetrics
    jobs: JobRunner
    reindexer: Reindexer
    uploads_dir: Path
    search_pool: ThreadPoolExecutor
    verified_keys: auth.VerifiedKeys


def _services(state: State) -> Services:
    return state.services


def _caller(request: Request, svc: NamedDependency[Services]) -> auth.KeyInfo:
    """``svc`` is unused, and there on purpose: a dependency of ``svc`` is resolved after it,
    whereas two independent ones are resolved concurrently, in a task group that spawns two
    tasks on every request."""
    return request.scope[_CALLER]  # type: ignore[literal-required]


def _search_threads(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="search", initializer=serve_single_queries_on_this_thread)


async def _on_search_thread(svc: Services, function: Callable, *args):
    """``function(*args)`` on the bounded search threads, in this request's context (its log
    lines keep the request id). A plain executor hop, because anyio's worker-thread machinery
    (cancel scopes, a capacity limiter) cost the event loop more per search than the hop."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(svc.search_pool, context.run, function, *args)


# --- errors ----------------------------------------------------------------------------------------

_STATUS_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "request_too_large", 415: "unsupported_media_type",
    422: "unprocessable", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


def _error_response(status: int, code: str, message: str, headers: dict | None = None, details: dict | None = None) -> Response:
    return Response(content=error_body(code, message, details), status_code=status, headers=headers, media_type="application/json")


def _handle_http_error(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    if isinstance(exc, ApiError):
        return _error_response(exc.status_code, exc.code, exc.message, headers, exc.details)
    status = exc.status_code
    if isinstance(exc, ValidationException):
        problems = exc.extra if isinstance(exc.extra, list) else []
        first = problems[0] if problems else {}
        where = first.get("key") if isinstance(first, dict) else None
        what = first.get("message") if isinstance(first, dict) else None
        message = f"invalid request: {what}" + (f" (at {where})" if where else "") if what else f"invalid request: {exc.detail}"
        return _error_response(400, "invalid_request", message, headers)
    if status >= 500:
        log.error("server error %s: %s", status, exc.detail)
        return _error_response(status, _STATUS_CODES.get(status, "internal_error"), "internal error", headers)
    return _error_response(status, _STATUS_CODES.get(status, "client_error"), str(exc.detail), headers)


def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    ctx = current_request.get()
    reference = f" (request id {ctx.request_id})" if ctx else ""
    return _error_response(500, "internal_error", f"internal error{reference}")


def _not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def _check_id(value: int, what: str) -> int:
    if value < 1 or value > MAX_DB_ID:
        raise _not_found(what)
    return value


# --- authentication, roles and rate limits ---------------------------------------------------------


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Every /v1 route: who is calling (401), within their rate (429), allowed here (403)."""
    if handler.opt.get("public"):
        return
    svc: Services = connection.app.state.services
    if svc.settings.auth == AuthMode.off:
        caller = auth.dev_caller()
    else:
        header = connection.headers.get("authorization")
        caller = svc.verified_keys.get(header)
        if caller is None:  # not verified lately: ask the database, off the event loop
            caller = await anyio.to_thread.run_sync(svc.verified_keys.authenticate, svc.groundwork.store, header)
        if caller is None:
            error = "missing_api_key" if not header else "invalid_api_key"
            challenge = 'Bearer realm="groundwork"' + ("" if not header else ', error="invalid_token"')
            raise ApiError(401, error, "an API key is required: send 'Authorization: Bearer gw_...'" if not header
                           else "the API key is invalid or revoked", headers={"WWW-Authenticate": challenge})
    ctx = current_request.get()
    if ctx is not None:
        ctx.key_prefix = caller.prefix
    decision = svc.limiter.check(caller.prefix if caller.key_id is not None else f"dev:{connection.client.host if connection.client else ''}")
    if not decision.allowed:
        svc.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited", f"rate limit of {svc.settings.rate_limit_per_minute} requests per minute exceeded",
                       headers={"Retry-After": decision.retry_after_header})
    required = handler.opt.get("role", "reader")
    if not caller.allows(required):
        raise ApiError(403, "forbidden", f"this operation needs the {required} role; the key has {caller.role}")
    connection.scope[_CALLER] = caller  # type: ignore[literal-required]


# --- query path --------------------------------------------------------------------------------------


async def _search(svc: Services, query: str, *, k: int, principal: Principal, filters: SearchFilters | None, mode: str = "hybrid",
                  rerank: bool | None = None, collapse: bool = False) -> SearchOutcome:
    """Search; a failing reranker degrades to fused results instead of failing the request.

    The query is embedded by the batching embedder while this coroutine waits (no thread is
    held), then the rest of the search runs on the bounded search threads: measured, a few
    threads fighting over the interpreter lock serve fewer queries than one.
    """
    gw = svc.groundwork
    vector, embed_ms = None, None
    future = gw.submit_query_embedding(query) if mode != "keyword" else None
    if future is not None:
        started = time.perf_counter()
        vector = await asyncio.wrap_future(future)
        embed_ms = round((time.perf_counter() - started) * 1000, 3)

    def run(with_rerank: bool | None) -> SearchOutcome:
        return gw.search(query, k=k, mode=mode, filters=filters, principal=principal, rerank=with_rerank, collapse_documents=collapse,
                         query_vector=vector)

    try:
        outcome = await _on_search_thread(svc, run, rerank)
    except Exception as exc:
        if rerank is False or gw.reranker_state[0] is None:
            raise
        log.warning("search with reranking failed (%s: %s); retrying without the reranker", type(exc).__name__, exc)
        svc.metrics.fallbacks.inc(stage="rerank")
        outcome = await _on_search_thread(svc, run, False)
        outcome.notes.append(f"the reranker failed ({type(exc).__name__}); results are fused, not reranked")
    if embed_ms is not None:
        outcome.timings_ms["embed_query"] = embed_ms
    svc.metrics.observe_stages(outcome.timings_ms)
    return outcome


def _count_generator_fallback(svc: Services):
    return lambda _error: svc.metrics.fallbacks.inc(stage="generate")


def _generate(svc: Services, question: str, outcome: SearchOutcome) -> Answer:
    """Answer from the top passages; a failing generator degrades to the extractive one."""
    passages = outcome.hits[: svc.settings.context_chunks]
    started = time.perf_counter()
    answer = svc.groundwork.generate(question, passages, on_fallback=_count_generator_fallback(svc))
    outcome.timings_ms["generate"] = round((time.perf_counter() - started) * 1000, 3)
    svc.metrics.observe_stages({"generate": outcome.timings_ms["generate"]})
    return answer


def _stream_items(svc: Services, question: str, outcome: SearchOutcome) -> Iterator[str | Answer]:
    """Text deltas then one Answer; falls back to extractive when the generator fails up front."""
    passages = outcome.hits[: svc.settings.context_chunks]
    return svc.groundwork.generate_stream(question, passages, on_fallback=_count_generator_fallback(svc))


def _provenance(svc: Services, outcome: SearchOutcome, answer: Answer | None = None) -> dict:
    out = svc.groundwork.provenance(reranked=outcome.reranked)
    notes = list(outcome.notes) + (list(answer.notes) if answer is not None else [])
    if answer is not None and answer.generator:
        out["generator"] = answer.generator
    out["notes"] = notes
    return out


async def _iterate_in_thread(items: Iterator) -> AsyncIterator:
    """Drive a blocking iterator from the event loop, one item per worker-thread hop."""
    done = object()
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, items, done)
            if item is done:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _sse(event: str | None, payload: Any) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_ERRORS = {
    status: ResponseSpec(ErrorResponse, description=description)
    for status, description in (
        (400, "Invalid request (code says which check failed)"), (401, "Missing, invalid or revoked API key"),
        (403, "The key's role does not allow this"), (404, "No such object, or not visible to this key"),
        (413, "Body larger than max_request_bytes / max_upload_bytes"), (429, "Rate limit exceeded; see Retry-After"),
    )
}


def _wants_stream(request: Request, flag: bool) -> bool:
    return flag or "text/event-stream" in request.headers.get("accept", "")


# --- health and metrics --------------------------------------------------------------------------------


@get("/health", opt={"public": True}, sync_to_thread=True, tags=["service"], summary="Liveness and component status (no key needed)",
     description="Open to anyone, so it states only whether each component works. Index sizes and positions are shown "
                 "to admin keys (and in dev mode): counts cover every document, including those other keys may not see.")
def health(request: Request, svc: NamedDependency[Services]) -> Response[HealthResponse]:
    gw = svc.groundwork
    detailed = _is_admin_request(svc, request.headers.get("authorization"))
    problems: list[str] = []
    database = "ok"
    try:
        gw.store.max_seq()
    except Exception as exc:
        database = f"error: {type(exc).__name__}"
        problems.append("database unreachable")
    indexes: dict[str, Any] = {}
    try:
        idx = gw.indexes
        indexes = {"version": idx.version, "state": "ok"}
        if detailed:
            indexes |= {"position": idx.position, "vectors": int(idx.vectors.live_count), "keyword_docs": int(idx.keyword.count())}
    except Exception as exc:
        indexes = {"error": f"{type(exc).__name__}: {exc}"}
        problems.append("indexes unavailable")
    embedder: dict[str, Any] = {}
    try:
        e = gw.embedder
        embedder = {"model": e.model_name, "device": str(getattr(e, "device", "unknown"))}
    except Exception as exc:
        embedder = {"error": f"{type(exc).__name__}: {exc}"}
        problems.append("embedder unavailable")
    try:
        reranker_obj, reranker = gw.reranker_state
        if reranker_obj is None and svc.settings.reranker_enabled:
            problems.append(f"reranker {reranker}")
    except Exception as exc:
        reranker = f"error: {type(exc).__name__}"
        problems.append("reranker unavailable")
    try:
        generator = getattr(gw.generator, "name", svc.settings.generator)
    except Exception as exc:
        generator = f"unavailable: {type(exc).__name__}"
        problems.append("generator unavailable")
    fatal = database != "ok" or "error" in indexes or "error" in embedder
    body = HealthResponse(status="degraded" if problems else "ok", database=database, indexes=indexes, embedder=embedder,
                          reranker=str(reranker), generator=str(generator), problems=problems)
    return Response(body, status_code=503 if fatal else 200)


def _is_admin_request(svc: Services, header: str | None) -> bool:
    """Whether an optional Authorization header belongs to an admin key (always, in dev mode)."""
    if svc.settings.auth == AuthMode.off:
        return True
    if not header:
        return False
    caller = svc.verified_keys.authenticate(svc.groundwork.store, header)
    return caller is not None and caller.allows("admin")


def metrics(svc: NamedDependency[Services]) -> Response[str]:
    return Response(svc.metrics.render(), media_type=METRICS_CONTENT_TYPE)


def _index_gauges(svc: Services) -> None:
    stats = svc.groundwork.stats()
    svc.metrics.index.set_all({(kind,): float(stats.get(kind, 0) or 0) for kind in ("vectors", "keyword_docs", "documents", "chunks")})
    embedder = svc.groundwork.embedder
    if hasattr(embedder, "batches"):  # the server's batching query embedder
        svc.metrics.query_embedding.set_all({("batches",): float(embedder.batches), ("queries",): float(embedder.queries)})


# --- search, answer, chunks --------------------------------------------------------------------------

_SEARCH_EXAMPLE = Example(summary="Hybrid search in one collection", value={
    "query": "How do I rotate the VPN certificate?", "k": 5, "mode": "hybrid",
    "filters": {"collections": ["it"], "updated_after": "2025-01-01T00:00:00Z"}, "rerank": True, "collapse": False,
})
_ANSWER_EXAMPLE = Example(summary="Grounded answer", value={"query": "How many vacation days do new employees get?", "k": 6})


@post("/search", status_code=200, responses=_ERRORS, tags=["query"], summary="Hybrid search",
      description="Dense + keyword retrieval, fused and optionally reranked; only documents the key may see.")
async def search(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                 data: Annotated[SearchRequest, Body(examples=[_SEARCH_EXAMPLE])]) -> SearchResponse:
    check_query(data.query, svc.settings)
    check_k(data.k, svc.settings)
    outcome = await _search(svc, data.query, k=data.k, principal=caller.principal, filters=to_filters(data.filters), mode=data.mode,
                      rerank=data.rerank, collapse=data.collapse)
    return SearchResponse(results=[result_out(h) for h in outcome.hits], provenance=_provenance(svc, outcome), timings_ms=outcome.timings_ms)


@post("/answer", status_code=200, responses=_ERRORS, tags=["query"], summary="Grounded answer with citations",
      description="JSON by default; with `\"stream\": true` or `Accept: text/event-stream`, server-sent events "
                  "`results`, `delta` ({text}), `citation`, `done` (the full answer object) and `error`.")
async def answer(request: Request, svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                 data: Annotated[AnswerRequest, Body(examples=[_ANSWER_EXAMPLE])]) -> Response[AnswerResponse]:
    check_query(data.query, svc.settings)
    k = check_k(data.k, svc.settings) or svc.settings.context_chunks
    filters = to_filters(data.filters)
    outcome = await _search(svc, data.query, k=k, principal=caller.principal, filters=filters, rerank=data.rerank)
    if not _wants_stream(request, data.stream):
        result = await anyio.to_thread.run_sync(_generate, svc, data.query, outcome)
        return Response(answer_out(result, outcome.hits, _provenance(svc, outcome, result), outcome.timings_ms))
    # A Response return annotation leaves the handler without a fixed media type, so the
    # stream's own text/event-stream reaches the client.
    return Stream(_answer_events(svc, data.query, outcome), media_type="text/event-stream", headers=_SSE_HEADERS)


async def _answer_events(svc: Services, question: str, outcome: SearchOutcome) -> AsyncIterator[bytes]:
    yield _sse("results", {"results": [to_builtins(result_out(h)) for h in outcome.hits]})
    started = time.perf_counter()
    try:
        async for item in _iterate_in_thread(_stream_items(svc, question, outcome)):
            if isinstance(item, Answer):
                outcome.timings_ms["generate"] = round((time.perf_counter() - started) * 1000, 3)
                svc.metrics.observe_stages({"generate": outcome.timings_ms["generate"]})
                for citation in item.citations:
                    yield _sse("citation", to_builtins(citation_out(citation)))
                final = answer_out(item, outcome.hits, _provenance(svc, outcome, item), outcome.timings_ms)
                yield _sse("done", to_builtins(final))
                return
            yield _sse("delta", {"text": str(item)})
        problem = "the generator ended without an answer"
    except Exception as exc:
        log.exception("answer stream failed")
        problem = f"the answer could not be completed ({type(exc).__name__})"
    yield _sse("error", {"code": "generation_failed", "message": problem})


@get("/chunks/{chunk_id:int}", sync_to_thread=True, responses=_ERRORS, tags=["query"], summary="One chunk by id (what a citation points at)")
def get_chunk(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], chunk_id: FromPath[int]) -> ChunkOut:
    _check_id(chunk_id, "chunk")
    record = svc.groundwork.store.chunk_records([chunk_id]).get(chunk_id)
    # Invisible and missing look the same: a 404 must not confirm that the id exists.
    if record is None or not caller.principal.can_see(record.groups):
        raise _not_found("chunk")
    return ChunkOut(chunk_id=record.id, document_id=record.document_id, ordinal=record.ordinal, text=record.text, source=record.source,
                    title=record.title, pages=record.pages, section=" > ".join(record.heading_path) or None, start=record.start,
                    end=record.end, collection=record.collection)


# --- documents ----------------------------------------------------------------------------------------


def _safe_filename(name: str | None) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE_FILENAME_CHARS.sub("_", base).strip(" .")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else base[:200]
    return base or "upload"


def _principal_segment(principal_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", principal_id)[:64] or "_"


def _parse_groups(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return check_groups(sorted(set(out)))


def _parse_metadata(value: str | None) -> dict:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ApiError(400, "invalid_metadata", "metadata must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_metadata", "metadata must be a JSON object")
    return parsed


def _spool_upload(upload: UploadFile, directory: Path, limit: int) -> tuple[Path, str, int]:
    """Copy the upload to a temporary file beside its final place, hashing as it goes."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".incoming-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    source = upload.file
    source.seek(0)
    try:
        with open(temporary, "wb") as out:
            while block := source.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise ApiError(413, "file_too_large", f"the file is larger than max_upload_bytes={limit}")
                digest.update(block)
                out.write(block)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary, digest.hexdigest(), size


def _idempotent_replay(svc: Services, record_key: str, fingerprint: str) -> Response | None:
    with Session(svc.groundwork.engine) as session:
        record = session.get(IdempotencyRecord, record_key)
        if record is None:
            return None
        stored = record.response or {}
        if stored.get("request") != fingerprint:
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return Response(stored.get("body", {}), status_code=record.status_code, headers={"Idempotent-Replayed": "true"})


def _remember(svc: Services, record_key: str, fingerprint: str, status: int, body: dict) -> Response:
    try:
        with Session(svc.groundwork.engine) as session, session.begin():
            session.add(IdempotencyRecord(key=record_key, status_code=status, response={"request": fingerprint, "body": body}))
    except IntegrityError:  # a concurrent duplicate finished first: answer as it did
        replay = _idempotent_replay(svc, record_key, fingerprint)
        if replay is not None:
            return replay
    return Response(body, status_code=status)


def upload_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
                    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)] = None) -> UploadResponse:
    collection = check_name(data.collection or "default", "collection")
    groups = _parse_groups(data.groups)
    metadata = _parse_metadata(data.metadata)
    if not isinstance(data.file, UploadFile):
        raise ApiError(400, "missing_file", "send the document as the multipart field 'file'")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-200 printable ASCII characters")
    filename = _safe_filename(data.file.filename)
    temporary, sha256, size = _spool_upload(data.file, svc.uploads_dir, svc.settings.max_upload_bytes)
    try:
        if size == 0:
            raise ApiError(400, "empty_file", "the uploaded file is empty")
        fingerprint = hashlib.sha256(json.dumps([sha256, filename, collection, groups, metadata], sort_keys=True).encode()).hexdigest()
        record_key = f"{caller.prefix}:{idempotency_key}" if idempotency_key else None
        if record_key is not None and (replay := _idempotent_replay(svc, record_key, fingerprint)) is not None:
            return replay  # type: ignore[return-value]
        # Names are per uploader: another principal's same-named document, visible or not, is
        # never replaced, and whether one exists is never revealed.
        source = f"upload://{collection}/{_principal_segment(caller.principal.id)}/{filename}"
        existing = svc.groundwork.store.find_document(collection, source)
        if existing is not None and not caller.principal.can_see(existing.groups):
            raise ApiError(409, "source_conflict", "this key uploaded a document with this name that it may no longer see; "
                                                   "upload under another name or ask an admin")
        final_dir = svc.uploads_dir / sha256
        final_dir.mkdir(parents=True, exist_ok=True)
        path = final_dir / filename
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

    job_id = uuid.uuid4().hex
    with Session(svc.groundwork.engine) as session, session.begin():
        session.add(IngestJob(id=job_id, status=JobStatus.queued, params={
            "paths": [source], "collection": collection, "groups": groups, "sync": False,
            "submitted_via": "upload", "submitted_by": caller.principal.id}))
    resolved = path.resolve()
    summary = svc.groundwork.ingest([resolved], collection=collection, groups=groups, metadata=metadata or None, job_id=job_id,
                                    progress=False, source_names={resolved: source})
    svc.metrics.count_ingest(f.status for f in summary.files)
    svc.metrics.ingest_jobs.inc(status="done")
    result = summary.files[0] if summary.files else None
    status_text = result.status if result else "failed"
    body = UploadResponse(document_id=result.document_id if result else None, job_id=job_id, status=status_text,
                          chunks=result.chunks if result else 0, source=source, reason=result.reason if result else "empty",
                          detail=result.detail if result else None)
    if status_text == "failed":
        status, payload = 422, error_body("unprocessable_document", f"the document could not be ingested: {body.reason}",
                                          {"document": to_builtins(body)})
    else:
        status, payload = (201 if status_text == "added" else 200), to_builtins(body)
    if record_key is not None:
        return _remember(svc, record_key, fingerprint, status, payload)  # type: ignore[return-value]
    return Response(payload, status_code=status)  # type: ignore[return-value]


def _visible_document(svc: Services, caller: auth.KeyInfo, document_id: int) -> Document:
    _check_id(document_id, "document")
    doc = svc.groundwork.store.get_document(document_id)
    if doc is None or not caller.principal.can_see(doc.groups or []):
        raise _not_found("document")
    return doc


@get("/documents", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["documents"], summary="List documents the key may see")
def list_documents(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], collection: FromQuery[str | None] = None,
                   status: FromQuery[str | None] = None, source_prefix: FromQuery[str | None] = None,
                   cursor: Annotated[int, QueryParameter(ge=0, le=MAX_DB_ID, description="Last id of the previous page.")] = 0,
                   limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> DocumentList:
    principal = caller.principal
    store = svc.groundwork.store
    docs = store.list_documents(collection=collection, status=status, source_prefix=source_prefix, after_id=cursor, limit=limit + 1,
                                visible_groups=None if principal.all_access else set(principal.groups))
    collections = store.collections()
    page = docs[:limit]
    return DocumentList(documents=[document_out(d, collections) for d in page],
                        next_cursor=page[-1].id if len(docs) > limit else None)


@get("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["documents"], summary="One document's attributes")
def get_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int]) -> DocumentOut:
    doc = _visible_document(svc, caller, document_id)
    return document_out(doc, svc.groundwork.store.collections())


@patch("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["documents"],
       summary="Change metadata, groups or title (no re-embedding)")
def patch_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int],
                   data: Annotated[DocumentPatch, Body(examples=[Example(summary="Restrict to HR", value={"groups": ["hr"], "metadata": {"owner": "people-ops"}})])]) -> DocumentOut:
    _visible_document(svc, caller, document_id)
    groups = check_groups(data.groups) if data.groups is not None else None
    updated = svc.groundwork.store.update_document(document_id, metadata=data.metadata, groups=groups, title=data.title)
    if updated is None:
        raise _not_found("document")
    return document_out(updated, svc.groundwork.store.collections())


@delete("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["documents"], summary="Delete a document")
def delete_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int]) -> None:
    doc = _visible_document(svc, caller, document_id)
    if not svc.groundwork.store.delete_document(document_id):
        raise _not_found("document")
    _remove_uploaded_file(svc, doc)


def _remove_uploaded_file(svc: Services, doc: Document) -> None:
    """An uploaded document's bytes go with it, unless another document still uses them."""
    if not doc.source.startswith("upload://") or not doc.sha256:
        return
    name = doc.source.rsplit("/", 1)[-1]
    with Session(svc.groundwork.engine) as session:
        others = session.execute(select(Document.source).where(Document.sha256 == doc.sha256)).scalars().all()
    if any(s.startswith("upload://") and s.rsplit("/", 1)[-1] == name for s in others):
        return
    path = svc.uploads_dir / doc.sha256 / name
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass


# --- ingestion jobs, reindex, keys --------------------------------------------------------------------

_JOB_EXAMPLE = Example(summary="Ingest a shared folder", value={"paths": ["/srv/shared/handbook"], "collection": "hr", "groups": ["hr"], "sync": True})


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name longer than the file system allows
        return False


@post("/ingest-jobs", status_code=202, sync_to_thread=True, opt={"role": "admin"}, responses=_ERRORS, tags=["ingestion"],
      summary="Queue ingestion of server-side paths (inside the configured ingest roots)")
def create_ingest_job(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], data: Annotated[IngestJobRequest, Body(examples=[_JOB_EXAMPLE])]) -> Response[JobAccepted]:
    collection = check_name(data.collection, "collection")
    groups = check_groups(data.groups)
    try:
        paths = check_paths(data.paths, svc.settings.ingest_roots)
    except PathNotAllowed as exc:
        raise ApiError(403, "path_forbidden", str(exc)) from None
    missing = [str(p) for p in paths if not _exists(p)]
    if missing:
        raise ApiError(400, "path_not_found", f"no such file or directory: {missing[0]}")
    job_id = svc.jobs.submit(paths, collection=collection, groups=groups, sync=data.sync, metadata=data.metadata,
                             submitted_by=caller.principal.id)
    return Response(JobAccepted(job_id=job_id, status=JobStatus.queued), status_code=202,
                    headers={"Location": f"{API_PREFIX}/ingest-jobs/{job_id}"})


@get("/ingest-jobs/{job_id:str}", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["ingestion"], summary="Status of an ingestion job")
def get_ingest_job(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], job_id: FromPath[str]) -> JobOut:
    if len(job_id) > 40:
        raise _not_found("job")
    found = job_row(svc.groundwork.store, job_id)
    if found is None:
        raise _not_found("job")
    job, failures = found
    if caller.role != "admin" and (job.params or {}).get("submitted_by") != caller.principal.id:
        raise _not_found("job")
    return JobOut(job_id=job.id, status=job.status, params=dict(job.params or {}), counts=dict(job.counts or {}), error=job.error,
                  failures=[{"path": f.path, "reason": f.reason, "detail": f.detail} for f in failures], created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at, updated_at=job.updated_at)


@post("/reindex", status_code=202, opt={"role": "admin"}, responses=_ERRORS, tags=["admin"],
      summary="Rebuild the indexes into a new version and switch atomically (searches continue)")
async def start_reindex(svc: NamedDependency[Services], data: JSONBody[ReindexRequest | None] = None) -> ReindexStatus:
    if not svc.reindexer.start(reembed=bool(data and data.reembed)):
        raise ApiError(409, "reindex_running", "a reindex is already running")
    return svc.reindexer.status()


@get("/reindex", opt={"role": "admin"}, responses=_ERRORS, tags=["admin"], summary="Status of the last reindex")
async def reindex_status(svc: NamedDependency[Services]) -> ReindexStatus:
    return svc.reindexer.status()


@post("/keys", status_code=201, sync_to_thread=True, opt={"role": "admin"}, responses=_ERRORS, tags=["admin"], summary="Create an API key (shown once)")
def create_key(svc: NamedDependency[Services], data: Annotated[KeyCreateRequest, Body(examples=[Example(summary="HR reader", value={"role": "reader", "groups": ["hr"], "name": "hr-portal"})])]) -> KeyCreated:
    groups = [g for g in data.groups if g != auth.ALL_ACCESS_GROUP]
    check_groups(groups)
    plaintext, row = auth.create_key(svc.groundwork.store, data.role, data.groups, data.name[:200], principal=(data.principal or None))
    return KeyCreated(key=plaintext, info=key_out(row))


@get("/keys", sync_to_thread=True, opt={"role": "admin"}, responses=_ERRORS, tags=["admin"], summary="List API keys (never their secrets)")
def list_keys(svc: NamedDependency[Services]) -> list[KeyOut]:
    return [key_out(row) for row in auth.list_keys(svc.groundwork.store)]


@delete("/keys/{key_id:str}", sync_to_thread=True, opt={"role": "admin"}, responses=_ERRORS, tags=["admin"], summary="Revoke a key by prefix or id")
def revoke_key(svc: NamedDependency[Services], key_id: FromPath[str]) -> None:
    if len(key_id) > 200 or not auth.revoke_key(svc.groundwork.store, key_id):
        raise _not_found("key")
    svc.verified_keys.clear()  # revoked here: refused from the next request on


# --- OpenAI-compatible chat ----------------------------------------------------------------------------

_CHAT_EXAMPLE = Example(summary="Ask the hr collection", value={
    "model": "hr", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How many vacation days do I get?"}],
})


def _visible_collections(svc: Services, principal: Principal) -> set[str]:
    """Collections holding a document the caller may see (every collection for all-access keys):
    the names of the others are not the caller's business either."""
    gw = svc.groundwork
    if principal.all_access:
        return set(gw.store.collections().values())
    gw.catalog.refresh(gw.indexes.position)
    return set(gw.catalog.visible_collections(principal.groups, principal.can_see))


@get("/models", sync_to_thread=True, responses=_ERRORS, tags=["openai"], summary="OpenAI-compatible model list: one model per collection")
def list_models(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo]) -> dict[str, Any]:
    names = [ALL_COLLECTIONS_MODEL, *sorted(_visible_collections(svc, caller.principal))]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "groundwork"} for n in names]}


@post("/chat/completions", status_code=200, responses=_ERRORS, tags=["openai"], summary="OpenAI-compatible chat completions",
      description="`model` names a collection (or `groundwork` for all). The last user message is the question; the grounded "
                  "answer is the assistant message. Groundwork adds a top-level `citations` array (and `grounded`); when "
                  "streaming, they arrive on the final chunk, before `data: [DONE]`.")
async def chat_completions(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                           data: Annotated[ChatCompletionRequest, Body(examples=[_CHAT_EXAMPLE])]) -> Response[ChatCompletionResponse]:
    question = next((message_text(m.content) for m in reversed(data.messages) if m.role == "user"), "")
    if not question.strip():
        raise ApiError(400, "no_user_message", "messages must contain a user message with text")
    check_query(question, svc.settings)
    filters = None
    if data.model != ALL_COLLECTIONS_MODEL:
        if len(data.model) > 200 or data.model not in await anyio.to_thread.run_sync(_visible_collections, svc, caller.principal):
            raise ApiError(404, "model_not_found", f"no collection named {data.model[:80]!r}; use 'groundwork' for all collections")
        filters = SearchFilters(collections=(data.model,))
    k = svc.settings.context_chunks
    outcome = await _search(svc, question, k=k, principal=caller.principal, filters=filters)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if data.stream:
        return Stream(_chat_events(svc, question, outcome, completion_id, created, data.model), media_type="text/event-stream",
                      headers=_SSE_HEADERS)
    result = await anyio.to_thread.run_sync(_generate, svc, question, outcome)
    return Response(ChatCompletionResponse(
        id=completion_id, object="chat.completion", created=created, model=data.model,
        choices=[ChatChoice(index=0, message=ChatChoiceMessage(role="assistant", content=result.text), finish_reason="stop")],
        citations=[citation_out(c) for c in result.citations], grounded=result.grounded,
    ))


async def _chat_events(svc: Services, question: str, outcome: SearchOutcome, completion_id: str, created: int, model: str) -> AsyncIterator[bytes]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return _sse(None, body)

    yield chunk({"role": "assistant", "content": ""})
    problem = "the generator ended without an answer"
    try:
        async for item in _iterate_in_thread(_stream_items(svc, question, outcome)):
            if isinstance(item, Answer):
                yield chunk({}, "stop", citations=[to_builtins(citation_out(c)) for c in item.citations], grounded=item.grounded)
                problem = None
                break
            yield chunk({"content": str(item)})
    except Exception as exc:
        log.exception("chat stream failed")
        problem = f"the answer could not be completed ({type(exc).__name__})"
    if problem is not None:
        yield _sse(None, {"error": {"code": "generation_failed", "message": problem}})
    yield b"data: [DONE]\n\n"


# --- assembly ------------------------------------------------------------------------------------------

_ROUTE_HANDLERS = [
    health, search, answer, get_chunk, list_documents, get_document, patch_document, delete_document, create_ingest_job,
    get_ingest_job, start_reindex, reindex_status, create_key, list_keys, revoke_key, list_models, chat_completions,
]

_ERROR_RESPONSES_DOC = "Errors are JSON {\"error\": {\"code\", \"message\"}} with a stable code."


def create_app(groundwork: Groundwork, *, start_jobs: bool = True) -> Litestar:
    """The ASGI application. Job workers start and stop with it (its lifespan)."""
    settings = groundwork.settings
    metrics_ = ServiceMetrics()
    jobs = JobRunner(
        groundwork.store, groundwork.ingest, workers=settings.ingest_job_workers if start_jobs else 0, roots=settings.ingest_roots,
        on_finished=lambda job_id, summary: _job_finished(services, job_id, summary),
    )
    services = Services(
        groundwork=groundwork, settings=settings, limiter=RateLimiter(settings.rate_limit_per_minute), metrics=metrics_, jobs=jobs,
        reindexer=Reindexer(groundwork), uploads_dir=(settings.data_dir / "uploads").resolve(),
        search_pool=_search_threads(settings.search_threads),
        verified_keys=auth.VerifiedKeys(settings.auth_cache_s),
    )
    metrics_.registry.on_collect(lambda: _index_gauges(services))
    upload = post(
        "/documents", sync_to_thread=True, opt={"role": "writer"}, responses=_ERRORS, tags=["documents"], status_code=201,
        summary="Upload and ingest one document (multipart: file, collection, groups, metadata); honours Idempotency-Key",
        request_max_body_size=settings.max_upload_bytes + MULTIPART_SLACK_BYTES,
    )(upload_document)
    metrics_route = get(
        "/metrics", sync_to_thread=True, tags=["service"], media_type=METRICS_CONTENT_TYPE, guards=[authorize],
        opt={"public": settings.metrics_public, "role": "admin"}, summary="Prometheus metrics (text format)",
        description="Needs an admin key (Prometheus: `authorization: {credentials: <key>}`) unless GROUNDWORK_METRICS_PUBLIC=true.",
    )(metrics)
    api = Router(
        path=API_PREFIX, route_handlers=[*_ROUTE_HANDLERS, upload], guards=[authorize],
        dependencies={"caller": Provide(_caller, sync_to_thread=False)},
    )
    app = Litestar(
        route_handlers=[api, metrics_route],
        dependencies={"svc": Provide(_services, sync_to_thread=False)},
        exception_handlers={HTTPException: _handle_http_error, Exception: _handle_unexpected},
        request_max_body_size=settings.max_request_bytes,
        on_startup=[lambda: jobs.start()],
        on_shutdown=[lambda: jobs.stop(), lambda: services.search_pool.shutdown(wait=False)],
        openapi_config=OpenAPIConfig(
            title="Groundwork", version="1", description="Search and grounded answers over your documents. " + _ERROR_RESPONSES_DOC,
            components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer", description="gw_<prefix>_<secret>")}),
            security=[{"BearerAuth": []}],
            path="/schema",
        ),
        debug=False,
        logging_config=None,  # keep the process's logging (JSON lines under `groundwork serve`)
    )
    app.state.services = services
    # Wrap the whole application, routing included, so that every request (unmatched paths and
    # errors raised before a handler too) gets a request id, a log line and a metric.
    app.asgi_handler = RequestObserver(app.asgi_handler, on_request=metrics_.observe_request)
    return app


def _job_finished(svc: Services, job_id: str, summary) -> None:
    if summary is not None:
        svc.metrics.count_ingest(f.status for f in summary.files)
        svc.metrics.ingest_jobs.inc(status="done")
    else:
        svc.metrics.ingest_jobs.inc(status="failed")
