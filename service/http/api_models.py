"""Request and response shapes of the HTTP API, with the conversions from domain objects.

These msgspec Structs are the contract that clients code against and that the OpenAPI schema
(``/schema``) is generated from, so field names stay stable even when the engine's own value
types change. Request validation that depends on settings (query length, ``k``) lives in
``check_query``/``check_k`` here, so it is testable without a server and runs before any model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from msgspec import Meta, Struct

from index.settings import Settings
from service.query.types import Answer, Citation, Hit, SearchFilters

# --- errors ------------------------------------------------------------------------------------


class ApiError(HTTPException):
    """An error a client can act on: a stable machine-readable ``code`` plus a human message."""

    def __init__(self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None, details: dict | None = None):
        super().__init__(detail=message, status_code=status_code, headers=headers)
        self.code = code
        self.message = message
        self.details = details or {}


class ErrorDetail(Struct, kw_only=True):
    code: Annotated[str, Meta(description="Stable machine-readable error code.", examples=["invalid_request"])]
    message: Annotated[str, Meta(description="Human-readable explanation.")]


class ErrorResponse(Struct, kw_only=True):
    error: ErrorDetail


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, **(details or {})}}


# --- shared validation --------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,199}$")
ALL_ACCESS_GROUP = "*"


def check_query(query: str, settings: Settings) -> str:
    if not query or not query.strip():
        raise ApiError(400, "empty_query", "query must contain some text")
    if len(query) > settings.max_query_chars:
        raise ApiError(400, "query_too_long", f"query is {len(query)} characters; the limit is {settings.max_query_chars}")
    return query


def check_k(k: int | None, settings: Settings) -> int | None:
    if k is None:
        return None
    if k < 1 or k > settings.max_k:
        raise ApiError(400, "invalid_k", f"k must be between 1 and {settings.max_k}")
    return k


def check_name(value: str, what: str) -> str:
    """Collection and group names end up in URIs, filters and logs: keep them plain."""
    if not _NAME.match(value):
        raise ApiError(400, f"invalid_{what}", f"{what} {value[:60]!r} must be 1-200 characters of letters, digits and . _ @ : - (starting with a letter or digit)")
    return value


def check_groups(groups: list[str] | tuple[str, ...]) -> list[str]:
    if len(groups) > 100:
        raise ApiError(400, "invalid_group", "at most 100 groups")
    return [check_name(g, "group") for g in groups]


# --- search / answer ----------------------------------------------------------------------------


class Filters(Struct, kw_only=True, forbid_unknown_fields=True):
    collections: list[str] | None = None
    document_ids: list[int] | None = None
    source_prefix: str | None = None
    mime_types: list[str] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    metadata: Annotated[dict[str, Any] | None, Meta(description="Exact-match on document metadata keys.")] = None

    def to_domain(self) -> SearchFilters:
        return SearchFilters(
            collections=tuple(self.collections) if self.collections else None,
            document_ids=tuple(self.document_ids) if self.document_ids else None,
            source_prefix=self.source_prefix or None,
            mime_types=tuple(self.mime_types) if self.mime_types else None,
            updated_after=self.updated_after,
            updated_before=self.updated_before,
            metadata=dict(self.metadata or {}),
        )


def to_filters(filters: Filters | None) -> SearchFilters | None:
    return filters.to_domain() if filters is not None else None


class SearchRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, Meta(description="Free-text query (limited to max_query_chars).")]
    k: Annotated[int, Meta(description="Number of results (1..max_k).")] = 10
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    filters: Filters | None = None
    rerank: Annotated[bool | None, Meta(description="null: rerank when a reranker is available.")] = None
    collapse: Annotated[bool, Meta(description="One result per document.")] = False


class WindowOut(Struct, kw_only=True):
    text: Annotated[str, Meta(description="The chunks' texts in document order, joined by a blank line.")]
    chunk_ids: list[int]
    pages: list[int]


class SearchResult(Struct, kw_only=True):
    chunk_id: int
    document_id: int
    source: str
    title: str | None
    text: str
    score: float
    page: int | None
    section: str | None
    collection: str
    window: Annotated[WindowOut | None, Meta(description=(
        "When the chunk is one piece of a table split across chunks: the pieces around it, the chunk "
        "included, up to table_window_chars. This is the passage the generator reads; citations name "
        "the piece they quote."))] = None


class SearchResponse(Struct, kw_only=True):
    results: list[SearchResult]
    provenance: dict[str, Any]
    timings_ms: dict[str, float]


class AnswerRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    query: str
    k: Annotated[int | None, Meta(description="Passages retrieved; default: context_chunks.")] = None
    filters: Filters | None = None
    stream: Annotated[bool, Meta(description="Server-sent events: results, delta, citation, done, error.")] = False
    rerank: bool | None = None


class CitationOut(Struct, kw_only=True):
    marker: int
    chunk_id: int
    document_id: int
    source: str
    title: str | None
    page: int | None
    quote: Annotated[str, Meta(description="Verbatim: the cited chunk's text[start:end].")]
    start: int
    end: int
    support: float


class AnswerResponse(Struct, kw_only=True):
    answer: str
    grounded: Annotated[bool, Meta(description="False: the knowledge base does not contain the answer.")]
    citations: list[CitationOut]
    dropped_citations: list[dict[str, Any]]
    results: list[SearchResult]
    provenance: dict[str, Any]
    timings_ms: dict[str, float]


def result_out(hit: Hit) -> SearchResult:
    return SearchResult(
        chunk_id=hit.chunk_id, document_id=hit.document_id, source=hit.source, title=hit.title, text=hit.text,
        score=float(hit.score), page=hit.page, section=hit.section, collection=hit.collection,
        window=WindowOut(text=hit.passage, chunk_ids=[part.chunk_id for part in hit.window], pages=hit.passage_pages)
        if hit.window else None,
    )


def citation_out(c: Citation) -> CitationOut:
    return CitationOut(marker=c.marker, chunk_id=c.chunk_id, document_id=c.document_id, source=c.source, title=c.title,
                       page=c.page, quote=c.quote, start=c.start, end=c.end, support=float(c.support))


def answer_out(answer: Answer, hits: list[Hit], provenance: dict, timings_ms: dict) -> AnswerResponse:
    return AnswerResponse(
        answer=answer.text, grounded=answer.grounded, citations=[citation_out(c) for c in answer.citations],
        dropped_citations=list(answer.dropped_citations), results=[result_out(h) for h in hits],
        provenance=provenance, timings_ms=timings_ms,
    )


# --- chunks and documents -----------------------------------------------------------------------


class ChunkOut(Struct, kw_only=True):
    chunk_id: int
    document_id: int
    ordinal: int
    text: str
    source: str
    title: str | None
    pages: list[int]
    section: str | None
    start: Annotated[int, Meta(description="Offset of the chunk in the document's extracted text.")]
    end: int
    collection: str


class DocumentOut(Struct, kw_only=True):
    id: int
    collection: str
    source: str
    title: str | None
    mime_type: str | None
    status: Annotated[str, Meta(description="indexed or failed.")]
    failure_reason: str | None
    failure_detail: str | None
    size_bytes: int
    chunk_count: int
    groups: list[str]
    metadata: dict[str, Any]
    sha256: str | None
    context: Annotated[str | None, Meta(description="What the document is (whose, which form, which period); "
                                                     "it heads every chunk's indexed text.")] = None
    ingest_version: Annotated[int | None, Meta(description="The ingest version that read the file; an older one is "
                                                            "read again on the next ingest of the unchanged file.")] = None
    created_at: datetime
    updated_at: datetime


class DocumentList(Struct, kw_only=True):
    documents: list[DocumentOut]
    next_cursor: Annotated[int | None, Meta(description="Pass as ?cursor= for the next page; null on the last page.")]


class DocumentPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    metadata: dict[str, Any] | None = None
    groups: list[str] | None = None
    title: str | None = None


@dataclass
class UploadForm:
    """multipart/form-data of an upload. ``groups``: the field repeated, or comma-separated; none
    means visible to everyone. ``metadata``: a JSON object, as a string."""

    file: UploadFile
    collection: str = "default"
    groups: list[str] | None = None
    metadata: str | None = None


class UploadResponse(Struct, kw_only=True):
    document_id: int | None
    job_id: str
    status: Annotated[str, Meta(description="added, updated, unchanged or failed.")]
    chunks: int
    source: str
    reason: str | None = None
    detail: str | None = None


def document_out(doc, collections: dict[int, str]) -> DocumentOut:
    return DocumentOut(
        id=doc.id, collection=collections.get(doc.collection_id, ""), source=doc.source, title=doc.title, mime_type=doc.mime_type,
        status=doc.status, failure_reason=doc.failure_reason, failure_detail=doc.failure_detail, size_bytes=doc.size_bytes,
        chunk_count=doc.chunk_count, groups=list(doc.groups or []), metadata=dict(doc.doc_metadata or {}), sha256=doc.sha256,
        context=doc.context, ingest_version=doc.ingest_version, created_at=doc.created_at, updated_at=doc.updated_at,
    )


# --- ingestion jobs, reindex, keys --------------------------------------------------------------


class IngestJobRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    paths: Annotated[list[str], Meta(min_length=1, max_length=1000, description="Server-side files or folders inside an ingest root.")]
    collection: str = "default"
    groups: list[str] = []
    sync: Annotated[bool, Meta(description="Remove documents under these paths whose file is gone.")] = False
    metadata: dict[str, Any] | None = None


class JobAccepted(Struct, kw_only=True):
    job_id: str
    status: str


class JobOut(Struct, kw_only=True):
    job_id: str
    status: Annotated[str, Meta(description="queued, running, done, failed or interrupted.")]
    params: dict[str, Any]
    counts: dict[str, int]
    error: str | None
    failures: list[dict[str, Any]]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class ReindexRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    reembed: Annotated[bool, Meta(description="Re-embed every chunk with the configured model first (slow).")] = False
    gate: Annotated[str, Meta(max_length=4096, description="Quality gate: a server-side BEIR-format folder inside the ingest roots, its corpus loaded by `groundwork eval --beir`. The new version is switched to only if its nDCG@10 on these labelled queries did not drop by more than max_drop; the status says both figures either way.")] | None = None
    split: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="qrels split of the gate (qrels/<split>.tsv).")] = "test"
    max_drop: Annotated[float, Meta(ge=0, le=1, description="nDCG@10 the new version may lose; default: the reindex_gate_max_drop setting.")] | None = None


class ReindexStatus(Struct, kw_only=True):
    running: bool
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int | None = None
    error: str | None = None
    gate: Annotated[dict[str, Any] | None, Meta(description="The quality gate's figures (live_ndcg, new_ndcg, drop, max_drop, passed, queries, models) when the last reindex had one.")] = None


class SnapshotRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=100, description="Folder name under the snapshot directory (letters, digits, '.', '_', '-'); empty: the UTC time.")] = ""


class SnapshotOut(Struct, kw_only=True):
    path: str
    created_at: str
    database: Annotated[dict[str, Any], Meta(description="kind, file, position (change-log position of the copy), schema_version, integrity.")]
    indexes: Annotated[dict[str, Any], Meta(description="version, vectors_position, keyword_position (at or before the database's), model, skipped.")]
    files: int
    bytes: int


class KeyCreateRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    role: Literal["reader", "writer", "admin"]
    groups: Annotated[list[str], Meta(description='Access groups; "*" sees every document.')] = []
    name: str = ""
    principal: Annotated[str | None, Meta(description="Who the key acts for; default: the name, else the prefix.")] = None


class KeyOut(Struct, kw_only=True):
    id: int
    prefix: str
    name: str
    role: str
    principal: str
    groups: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(Struct, kw_only=True):
    key: Annotated[str, Meta(description="The secret: shown once, store it now.")]
    info: KeyOut


def key_out(row) -> KeyOut:
    return KeyOut(id=row.id, prefix=row.prefix, name=row.name, role=row.role, principal=row.principal, groups=list(row.groups or []),
                  created_at=row.created_at, revoked_at=row.revoked_at, last_used_at=row.last_used_at)


# --- operating: caller, jobs, indexes, audit --------------------------------------------------------


class CallerOut(Struct, kw_only=True):
    name: str
    prefix: Annotated[str, Meta(description='The key\'s public prefix ("dev" in dev mode).')]
    role: str
    principal: str
    groups: Annotated[list[str], Meta(description='Access groups; "*" sees every document.')]
    auth: Annotated[Literal["required", "off"], Meta(description="off: dev mode, no key needed.")]


class JobList(Struct, kw_only=True):
    jobs: list[JobOut]


class IndexesOut(Struct, kw_only=True):
    live_version: int
    versions: Annotated[list[int], Meta(description="Versions on disk (the live one and the one before it, kept for a rollback).")]
    position: Annotated[int, Meta(description="Change-log position the live indexes reflect.")]
    database_position: int
    status: Annotated[str, Meta(description="ok, degraded (an index behind or being rebuilt) or failing (the database fails its check).")]
    problems: list[str]
    database_integrity: dict[str, Any]
    vector_index: str
    keyword_index: str
    reindex: dict[str, Any]


class AuditList(Struct, kw_only=True):
    events: Annotated[list[dict[str, Any]], Meta(description="occurred_at, key_prefix, key_name, principal, route, action, status, "
                                                         "query (or null when only its hash is kept), query_sha256, document_ids, chunk_ids, request_id.")]
    next_cursor: Annotated[int | None, Meta(description="Pass as ?cursor= for older rows; null on the last page.")]
    mode: Annotated[str, Meta(description="audit_mode: acknowledged, buffered or off.")]


# --- health -------------------------------------------------------------------------------------


class HealthResponse(Struct, kw_only=True):
    status: Annotated[Literal["ok", "degraded", "failing"], Meta(description="failing: answered with 503.")]
    database: str
    indexes: dict[str, Any]
    embedder: dict[str, Any]
    reranker: str
    generator: str
    problems: list[str] = []
    database_integrity: Annotated[dict[str, Any] | None, Meta(description="Admin keys: the last integrity check.")] = None


# --- OpenAI-compatible chat ---------------------------------------------------------------------


class ChatMessage(Struct, kw_only=True):
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(Struct, kw_only=True):
    """OpenAI's request shape; sampling parameters are accepted and ignored."""

    model: Annotated[str, Meta(description='A collection name, or "groundwork" for all collections.')]
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    user: str | None = None


class ChatChoiceMessage(Struct, kw_only=True):
    role: str
    content: str


class ChatChoice(Struct, kw_only=True):
    index: int
    message: ChatChoiceMessage
    finish_reason: str


class ChatCompletionResponse(Struct, kw_only=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChatChoice]
    citations: Annotated[list[CitationOut], Meta(description="Groundwork extension: the sources of the answer; markers [n] in the content refer to them.")]
    grounded: Annotated[bool, Meta(description="Groundwork extension: false when the knowledge base does not contain the answer.")]


def message_text(content: str | list[dict[str, Any]] | None) -> str:
    """OpenAI content is a string or a list of parts; only text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text")


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
