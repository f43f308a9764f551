"""In-memory document attributes: turns (principal, filters) into the allowed id sets.

Retrieval hands these sets to FAISS (as an id selector) and to BM25 (as a term-set filter)
so access control and filters apply inside the search, before the top-k cut. Evaluating them
here, on plain Python values, also makes filtering identical on SQLite and Postgres.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from index.boilerplate import shared_document_counts
from index.document_index import DocumentIndex
from index.models import Chunk
from index.store import Store, document_line


@dataclass(frozen=True)
class DocAttrs:
    id: int
    collection: str
    groups: frozenset[str]
    source: str
    mime_type: str | None
    created_at: datetime | None
    updated_at: datetime | None
    metadata: dict[str, Any]
    indexed: bool
    title: str | None
    context: str | None = None

    def description(self) -> str:
        """What names the document for ``DocumentIndex``: its context line (or title) and file
        name. A file name without a letter ("4983.txt", an export's record number) names nothing
        a question would say, and would match any figure in one, so it is left out."""
        name = self.source.rstrip("/").rsplit("/", 1)[-1]
        stem = name.rsplit(".", 1)[0]
        if not any(ch.isalpha() for ch in stem):
            return document_line(self.title, self.context)
        return f"{document_line(self.title, self.context)}\n{name}"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Catalog:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self.docs: dict[int, DocAttrs] = {}
        self.doc_chunks: dict[int, np.ndarray] = {}
        # (every chunk id sorted, its document, how many distinct documents hold the same text):
        # what ranking needs per candidate. One tuple, replaced whole, so a reader never mixes
        # two refreshes.
        empty = np.zeros(0, dtype=np.int64)
        self._chunk_facts: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty.astype(np.int32))
        self._document_index: DocumentIndex | None = None
        self.position = -1
        # (caller's visibility, filters) -> allowed ids. Internal apps repeat the same few
        # principals and filters, so each pair costs one scan per catalog change, not per query.
        self._allowed_cache: dict[tuple, Any] = {}

    def refresh(self, position: int | None = None) -> None:
        """Reload when the change log moved. Cheap enough for ~100k documents / 1M chunks."""
        position = self.store.max_seq() if position is None else position
        if position == self.position:
            return
        with self._lock:
            if position == self.position:
                return
            collections = self.store.collections()
            docs: dict[int, DocAttrs] = {}
            for (doc_id, cid, groups, source, mime, created, updated, metadata, status, title, context) in self.store.document_attributes():
                docs[doc_id] = DocAttrs(
                    doc_id, collections.get(cid, ""), frozenset(groups or []), source, mime, _aware(created), _aware(updated),
                    dict(metadata or {}), status == "indexed", title, context,
                )
            with Session(self.store.engine) as session:
                rows = session.execute(
                    select(Chunk.document_id, Chunk.id, func.coalesce(Chunk.fingerprint, 0)).order_by(Chunk.document_id, Chunk.id)
                ).all()
            doc_chunks: dict[int, np.ndarray] = {}
            arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
            if len(arr):
                boundaries = np.flatnonzero(np.diff(arr[:, 0])) + 1
                for piece in np.split(arr, boundaries):
                    doc_chunks[int(piece[0, 0])] = piece[:, 1].copy()
            order = np.argsort(arr[:, 1], kind="stable")
            self._chunk_facts = (arr[order, 1].copy(), arr[order, 0].copy(), shared_document_counts(arr[order, 0], arr[order, 2]))
            self.docs, self.doc_chunks, self.position = docs, doc_chunks, position
            self._document_index = None
            self._allowed_cache = {}

    def allowed_documents(self, can_see: Callable[[frozenset[str]], bool], filters, *, everything_visible: bool) -> np.ndarray | None:
        """Sorted ids of indexed documents the caller may see that pass the filters, or None
        when nothing restricts the search (no filter, caller sees everything)."""
        if everything_visible and (filters is None or filters.is_empty()):
            return None
        out = [d.id for d in self.docs.values() if d.indexed and can_see(d.groups) and matches(d, filters)]
        return np.asarray(sorted(out), dtype=np.int64)

    def allowed(self, groups: frozenset[str], all_access: bool, can_see: Callable[[frozenset[str]], bool], filters) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(allowed document ids, allowed chunk ids), or (None, None) when nothing restricts."""
        key = (all_access, groups, repr(filters))  # refresh() empties the cache
        cached = self._allowed_cache.get(key)
        if cached is not None:
            return cached
        docs = self.allowed_documents(can_see, filters, everything_visible=all_access)
        return self._remember(key, (docs, self.chunk_ids(docs) if docs is not None else None))

    def visible_collections(self, groups: frozenset[str], can_see: Callable[[frozenset[str]], bool]) -> frozenset[str]:
        """Collections holding a document the caller may see; kept, like the allowed sets,
        per caller until the catalog changes."""
        key = ("collections", groups)
        cached = self._allowed_cache.get(key)
        if cached is not None:
            return cached
        return self._remember(key, frozenset(d.collection for d in list(self.docs.values()) if can_see(d.groups)))

    def _remember(self, key: tuple, value: Any) -> Any:
        if len(self._allowed_cache) >= 512:  # a bound, not an LRU: many distinct callers are rare
            self._allowed_cache = {}
        self._allowed_cache[key] = value
        return value

    @property
    def document_index(self) -> DocumentIndex:
        """BM25 over every indexed document's description, built on first use after a change."""
        index = self._document_index
        if index is None:
            with self._lock:
                index = self._document_index
                if index is None:
                    index = DocumentIndex((d.id, d.description()) for d in list(self.docs.values()) if d.indexed)
                    self._document_index = index
        return index

    def chunk_facts(self, chunk_ids) -> tuple[np.ndarray, np.ndarray]:
        """(document id, number of documents sharing the chunk's text) for each chunk id; a
        chunk the catalog has not seen yet gets document -1 and count 1."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        known_ids, documents, shared = self._chunk_facts
        if len(known_ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64), np.ones(len(ids), dtype=np.int32)
        at = np.minimum(np.searchsorted(known_ids, ids), len(known_ids) - 1)
        found = known_ids[at] == ids
        return np.where(found, documents[at], -1), np.where(found, shared[at], 1).astype(np.int32)

    def chunk_ids(self, document_ids: np.ndarray) -> np.ndarray:
        parts = [self.doc_chunks[int(d)] for d in document_ids if int(d) in self.doc_chunks]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(parts))


def matches(doc: DocAttrs, filters) -> bool:
    if filters is None:
        return True
    if filters.collections and doc.collection not in filters.collections:
        return False
    if filters.document_ids and doc.id not in filters.document_ids:
        return False
    if filters.source_prefix and not doc.source.startswith(filters.source_prefix):
        return False
    if filters.mime_types and doc.mime_type not in filters.mime_types:
        return False
    if filters.updated_after and (doc.updated_at is None or doc.updated_at < _aware(filters.updated_after)):
        return False
    if filters.updated_before and (doc.updated_at is None or doc.updated_at > _aware(filters.updated_before)):
        return False
    for key, wanted in (filters.metadata or {}).items():
        if doc.metadata.get(key) != wanted:
            return False
    return True
