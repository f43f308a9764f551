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

from index.boilerplate import shared_document_counts
from index.document_index import DocumentIndex, DocumentTerms
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
    """Document attributes and chunk facts in memory, following the change log.

    ``refresh`` applies the documents a change touched (their rows read again) instead of
    reloading everything: at a million chunks a full reload took longer than a search should
    (``bench/scale.py``), and it ran after every change. Past ``incremental_max_changes`` rows,
    or when the position went back (a rebuilt index, a restored database), it reloads all.
    The document index (BM25 over descriptions) of a catalog over ``document_index_sync_max``
    documents is rebuilt on a background thread after a change, the previous one answering
    meanwhile (none at all before the first is built): a document changed in the last seconds
    may miss its boost, but no search waits for a build that takes seconds at that size.
    """

    def __init__(self, store: Store, *, incremental_max_changes: int = 20_000, document_index_sync_max: int = 5_000):
        self.store = store
        self.incremental_max_changes = incremental_max_changes
        self.document_index_sync_max = document_index_sync_max
        self._lock = threading.Lock()
        self.docs: dict[int, DocAttrs] = {}
        self.doc_chunks: dict[int, np.ndarray] = {}
        self._doc_fingerprints: dict[int, np.ndarray] = {}  # aligned with doc_chunks
        # (every chunk id sorted, its document, how many distinct documents hold the same text):
        # what ranking needs per candidate. One tuple, replaced whole, so a reader never mixes
        # two refreshes.
        empty = np.zeros(0, dtype=np.int64)
        self._chunk_facts: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty.astype(np.int32))
        self._generation = 0  # moves with every change of ``docs``
        self._document_index: tuple[int, DocumentIndex] | None = None
        self._document_terms = DocumentTerms()  # descriptions tokenized once, across rebuilds
        self._document_index_building = False
        self.position = -1
        # (caller's visibility, filters) -> allowed ids. Internal apps repeat the same few
        # principals and filters, so each pair costs one scan per catalog change, not per query.
        self._allowed_cache: dict[tuple, Any] = {}

    def refresh(self, position: int | None = None) -> None:
        """Follow the change log up to ``position`` (the indexes' position; the database's
        latest when None)."""
        position = self.store.max_seq() if position is None else position
        if position == self.position:
            return
        with self._lock:
            if position == self.position:
                return
            if 0 <= self.position < position:
                changes = self.store.changes_since(self.position, limit=self.incremental_max_changes + 1)
                if len(changes) <= self.incremental_max_changes:
                    self._apply({doc for _seq, _op, _chunk, doc in changes if doc is not None}, position)
                    return
            self._load_all(position)

    def _load_all(self, position: int) -> None:
        collections = self.store.collections()
        docs = {row[0]: _attrs(row, collections) for row in self.store.document_attributes()}
        doc_chunks, prints = _split_by_document(self.store.chunk_catalog_rows())
        self._publish(docs, doc_chunks, prints, position)

    def _apply(self, touched: set[int], position: int) -> None:
        """Read the touched documents again (a deleted one is simply gone) and recompute the
        chunk facts from the per-document arrays."""
        if not touched:
            self.position = position
            return
        collections = self.store.collections()
        docs, doc_chunks, prints = dict(self.docs), dict(self.doc_chunks), dict(self._doc_fingerprints)
        for doc_id in touched:
            docs.pop(doc_id, None)
            doc_chunks.pop(doc_id, None)
            prints.pop(doc_id, None)
        docs.update((row[0], _attrs(row, collections)) for row in self.store.document_attributes(sorted(touched)))
        fresh_chunks, fresh_prints = _split_by_document(self.store.chunk_catalog_rows(sorted(touched)))
        doc_chunks.update(fresh_chunks)
        prints.update(fresh_prints)
        self._publish(docs, doc_chunks, prints, position)

    def _publish(self, docs: dict[int, DocAttrs], doc_chunks: dict[int, np.ndarray], prints: dict[int, np.ndarray], position: int) -> None:
        self._chunk_facts = _chunk_facts(doc_chunks, prints)
        self.docs, self.doc_chunks, self._doc_fingerprints = docs, doc_chunks, prints
        self._generation += 1
        self._allowed_cache = {}
        self.position = position

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
        """BM25 over every indexed document's description, built on first use after a change
        (on a background thread past ``document_index_sync_max`` documents, see the class)."""
        current = self._document_index
        generation = self._generation
        if current is not None and current[0] == generation:
            return current[1]
        if len(self.docs) > self.document_index_sync_max:
            # Even the first one: at start-up of a large catalog it was most of the first
            # search's time; until it is there, no document is boosted.
            self._rebuild_document_index_in_background()
            return current[1] if current is not None else _NO_DOCUMENTS
        with self._lock:
            current = self._document_index
            if current is None or current[0] != self._generation:
                current = self._build_document_index()
            return current[1]

    def _build_document_index(self) -> tuple[int, DocumentIndex]:
        generation, docs = self._generation, self.docs
        described = [(d.id, d.description()) for d in list(docs.values()) if d.indexed]
        built = (generation, DocumentIndex(described, cache=self._document_terms))
        self._document_terms.keep_only(doc_id for doc_id, _ in described)
        current = self._document_index
        if current is None or current[0] < generation:
            self._document_index = built
        return built

    def _rebuild_document_index_in_background(self) -> None:
        with self._lock:
            if self._document_index_building:
                return
            self._document_index_building = True

        def build() -> None:
            try:
                while True:
                    generation, _index = self._build_document_index()
                    if generation == self._generation:
                        return
            finally:
                self._document_index_building = False

        threading.Thread(target=build, name="document-index", daemon=True).start()

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


_NO_DOCUMENTS = DocumentIndex(())


def _attrs(row: tuple, collections: dict[int, str]) -> DocAttrs:
    doc_id, cid, groups, source, mime, created, updated, metadata, status, title, context = row
    return DocAttrs(doc_id, collections.get(cid, ""), frozenset(groups or []), source, mime, _aware(created), _aware(updated),
                    dict(metadata or {}), status == "indexed", title, context)


def _split_by_document(rows: np.ndarray) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(document -> its chunk ids, document -> their fingerprints) from rows ordered by document."""
    chunks: dict[int, np.ndarray] = {}
    prints: dict[int, np.ndarray] = {}
    if len(rows):
        boundaries = np.flatnonzero(np.diff(rows[:, 0])) + 1
        starts = np.concatenate([[0], boundaries])
        ends = np.concatenate([boundaries, [len(rows)]])
        ids, fps = rows[:, 1].copy(), rows[:, 2].copy()
        for doc_id, start, end in zip(rows[starts, 0].tolist(), starts.tolist(), ends.tolist()):
            chunks[doc_id] = ids[start:end]
            prints[doc_id] = fps[start:end]
    return chunks, prints


def _chunk_facts(doc_chunks: dict[int, np.ndarray], prints: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(every chunk id sorted, its document, documents sharing its text) from the per-document arrays."""
    if not doc_chunks:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty.astype(np.int32)
    keys = list(doc_chunks)
    parts = [doc_chunks[k] for k in keys]
    ids = np.concatenate(parts)
    documents = np.repeat(np.asarray(keys, dtype=np.int64), [len(p) for p in parts])
    fingerprints = np.concatenate([prints[k] for k in keys])
    order = np.argsort(ids, kind="stable")
    return ids[order], documents[order], shared_document_counts(documents[order], fingerprints[order])


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
