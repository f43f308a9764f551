"""Value types of the query path, shared by retrieval, generation, the CLI and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from service.query.windows import WindowPart, window_text

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True)
class Principal:
    """Who a query runs for. ``all_access`` is for dev mode and admins only."""

    id: str
    groups: frozenset[str] = frozenset()
    all_access: bool = False

    def can_see(self, document_groups: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
        # A document ingested with no group is visible to everyone.
        return self.all_access or not document_groups or bool(self.groups.intersection(document_groups))


ANONYMOUS = Principal(id="anonymous")


@dataclass(frozen=True)
class SearchFilters:
    collections: tuple[str, ...] | None = None
    document_ids: tuple[int, ...] | None = None
    source_prefix: str | None = None
    mime_types: tuple[str, ...] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.collections or self.document_ids or self.source_prefix or self.mime_types
                    or self.updated_after or self.updated_before or self.metadata)


@dataclass(frozen=True)
class Query:
    """One search as the pipeline runs it, whichever front door it came through."""

    text: str
    principal: Principal
    k: int = 10
    mode: Mode = "hybrid"
    filters: SearchFilters | None = None
    rerank: bool | None = None  # None: rerank when a reranker is loaded
    collapse: bool = False  # one hit per document
    # Spread: a document takes at most this many places until every other one's are placed
    # (None: the max_hits_per_document setting; 0: no spreading).
    max_per_document: int | None = None


@dataclass
class Hit:
    """One retrieved chunk, with everything a caller or a citation needs."""

    chunk_id: int
    document_id: int
    score: float
    text: str
    source: str
    title: str | None
    pages: list[int]
    heading_path: list[str]
    collection: str
    mime_type: str | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None
    dense_score: float | None = None
    keyword_score: float | None = None
    rerank_score: float | None = None
    document_context: str | None = None  # what the document is: whose, which form, period or version
    ordinal: int | None = None  # the chunk's place in its document
    kind: str = "text"  # "table": the chunk holds a table or a piece of one
    table_head: str = ""  # a later piece of a split table: the caption and header it repeats
    # The split table around this chunk, when the chunk is one of its pieces (service.query.windows).
    window: tuple[WindowPart, ...] = ()

    @property
    def page(self) -> int | None:
        return self.pages[0] if self.pages else None

    @property
    def passage(self) -> str:
        """What a reader and the generator get: the window's text, else the chunk's."""
        return window_text(self.window) if self.window else self.text

    @property
    def passage_pages(self) -> list[int]:
        if not self.window:
            return self.pages
        return sorted({page for part in self.window for page in part.pages})

    @property
    def section(self) -> str | None:
        return " > ".join(self.heading_path) if self.heading_path else None


@dataclass
class Citation:
    marker: int
    chunk_id: int
    document_id: int
    source: str
    title: str | None
    page: int | None
    quote: str
    start: int  # offsets in the chunk text: chunk_text[start:end] == quote
    end: int
    support: float


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    grounded: bool  # False: the knowledge base does not contain the answer
    dropped_citations: list[dict] = field(default_factory=list)  # markers that pointed outside the context
    generator: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class SearchOutcome:
    """Hits in final order, with what each stage cost and what degraded (``notes``)."""

    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranked: bool = False
    notes: list[str] = field(default_factory=list)
