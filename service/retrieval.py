"""Hybrid retrieval: dense (FAISS) + BM25 candidates, fused, deduplicated, optionally reranked.

Access control and filters become allowed-id sets *before* either retriever runs, so both
search only what the caller may see and a caller always gets up to k results it may see.
A final per-hit visibility check guards against any index lagging behind a group change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from index.catalog import Catalog
from index.indexset import IndexSet
from index.settings import Settings
from index.store import ChunkRecord, Store, document_line
from service.fusion import reciprocal_rank_fusion, weighted_score_fusion
from service.query_types import Hit, Principal, SearchFilters
from service.ranking import DocumentAwareness, adjustments, rescore, spread_per_document

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass
class SearchOutcome:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    reranked: bool = False
    notes: list[str] = field(default_factory=list)


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + (now - since) * 1000, 3)
        return now


class HybridRetriever:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        indexes: IndexSet,
        catalog: Catalog,
        embed_query: Callable[[str], np.ndarray],
        reranker=None,
        rerank_pool: Executor | None = None,
    ):
        self.settings = settings
        self.store = store
        self.indexes = indexes
        self.catalog = catalog
        self.embed_query = embed_query
        self.reranker = reranker
        self.rerank_pool = rerank_pool

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: Mode = "hybrid",
        filters: SearchFilters | None = None,
        principal: Principal,
        rerank: bool | None = None,
        collapse_documents: bool = False,
        query_vector: np.ndarray | None = None,
        max_per_document: int | None = None,
    ) -> SearchOutcome:
        """``max_per_document`` (default: the ``max_hits_per_document`` setting) spreads the
        results: a document takes at most that many places until every other one's are placed."""
        watch = Stopwatch()
        t = time.perf_counter()
        settings = self.settings
        self.catalog.refresh(self.indexes.position)
        allowed_docs, allowed_chunks = self.catalog.allowed(principal.groups, principal.all_access, principal.can_see, filters)
        t = watch.lap("filter", t)
        if allowed_docs is not None and len(allowed_docs) == 0:
            return SearchOutcome([], watch.timings)

        vectors, keyword = self.indexes.vectors, self.indexes.keyword
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if mode in ("hybrid", "dense"):
            vector = query_vector if query_vector is not None else self.embed_query(query)
            t = watch.lap("embed_query", t)
            # Never fetch fewer candidates than the caller asked for results.
            scores, ids = vectors.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), max(settings.dense_candidates, k), allowed_ids=allowed_chunks)
            dense = [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]  # tolist: Python ints and floats at C speed
            t = watch.lap("dense", t)
        if mode in ("hybrid", "keyword"):
            allowed_set = allowed_docs.tolist() if allowed_docs is not None else None
            lexical = keyword.search(query, max(settings.keyword_candidates, k), allowed_document_ids=allowed_set)
            t = watch.lap("keyword", t)

        use_rerank = self.reranker is not None and (rerank if rerank is not None else True)
        # How many results later steps can use (the reranker's window, or k; collapsing to one
        # hit per document needs the whole window), and how far down the fused list to look
        # for them when near-duplicates or hidden chunks drop some.
        spread = settings.max_hits_per_document if max_per_document is None else max_per_document
        usable = max(k, settings.rerank_candidates) if use_rerank else k
        need = None if (collapse_documents or spread > 0) else usable
        depth = usable * 2 + 10
        if mode == "hybrid":
            weights = (settings.fusion_dense_weight, settings.fusion_keyword_weight)
            awareness = self.awareness
            # Document-aware adjustments can lift a candidate from below the cut, so they see them all.
            limit = None if awareness.active else depth
            if settings.fusion == "weighted":
                fused = weighted_score_fusion([dense, lexical], weights=weights, limit=limit)
            else:
                fused = reciprocal_rank_fusion([dense, lexical], k=settings.rrf_k, weights=weights, limit=limit)
            if awareness.active and fused:
                fused = self._document_aware(query, fused, awareness, allowed_docs, depth)
            ranked = [(f.id, f.score, f.ranks, f.scores) for f in fused]
        elif mode == "dense":
            ranked = [(cid, s, (r, None), (s, None)) for r, (cid, s) in enumerate(dense[:depth], 1)]
        else:
            ranked = [(cid, s, (None, r), (None, s)) for r, (cid, s) in enumerate(lexical[:depth], 1)]
        t = watch.lap("fusion", t)

        hits = self._fetch_visible(ranked, principal, need)
        t = watch.lap("fetch", t)

        reranked = False
        notes: list[str] = []
        if use_rerank and hits:
            head = hits[: settings.rerank_candidates]
            scores = self._rerank_within_deadline(query, [_rerank_text(h) for h in head])
            if scores is None:
                notes.append(f"the reranker took longer than {settings.rerank_timeout_s:g} s; results are fused, not reranked")
            else:
                for hit, s in zip(head, scores):
                    hit.rerank_score = float(s)
                    hit.score = float(s)
                head.sort(key=lambda h: -h.rerank_score)
                hits = head + hits[settings.rerank_candidates :]
                reranked = True
            t = watch.lap("rerank", t)

        if spread > 0 and not collapse_documents:
            hits = spread_per_document(hits, lambda hit: hit.document_id, spread)
        if collapse_documents:
            seen: set[int] = set()
            collapsed = []
            for hit in hits:
                if hit.document_id in seen:
                    continue
                seen.add(hit.document_id)
                collapsed.append(hit)
            hits = collapsed
        return SearchOutcome(hits[:k], watch.timings, reranked, notes)

    @property
    def awareness(self) -> DocumentAwareness:
        settings = self.settings
        return DocumentAwareness(settings.document_boost_weight, settings.document_boost_floor,
                                 settings.boilerplate_min_documents, settings.boilerplate_penalty)

    def _document_aware(self, query: str, fused: list, awareness: DocumentAwareness, allowed_docs: np.ndarray | None, depth: int) -> list:
        """Fused candidates with their document's boost added and boilerplate demoted, cut to
        ``depth``. Document scores are normalised among the documents the caller may see, so
        they say nothing about the others."""
        documents, shared = self.catalog.chunk_facts([f.id for f in fused])
        scores: dict[int, float] = {}
        if awareness.document_weight > 0:
            scores = self.catalog.document_index.scores(query, floor=awareness.document_floor, allowed=allowed_docs)
        return rescore(fused, adjustments(documents, shared, scores, awareness), limit=depth)

    def _rerank_within_deadline(self, query: str, texts: list[str]):
        """Scores, or None when the reranker misses ``rerank_timeout_s``: a slow reranker
        costs the caller its ordering, not the request. The late call finishes on its own
        thread (model calls cannot be interrupted) and its result is dropped."""
        timeout = self.settings.rerank_timeout_s
        if self.rerank_pool is None or timeout <= 0:
            return self.reranker.rerank(query, texts)
        future = self.rerank_pool.submit(self.reranker.rerank, query, texts)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()  # still queued behind a slow call: never starts
            return None

    def _fetch_visible(self, ranked: list, principal: Principal, need: int | None) -> list[Hit]:
        """Hits for the head of ``ranked``: fetched from the database, checked against the
        caller once more, and near-duplicates collapsed. The first fetch asks for a few more
        rows than needed; the rest of the list is read only if drops leave too few."""
        want_vectors = self.settings.dedup_similarity < 1.0
        step = len(ranked) if need is None else min(len(ranked), need + 5)
        records: dict[int, ChunkRecord] = {}
        candidates: list[Hit] = []
        kept: list[Hit] = []
        start = 0
        while start < len(ranked):
            part = ranked[start : start + step]
            start += step
            step = len(ranked)
            records.update(self.store.chunk_records([cid for cid, *_ in part], with_embeddings=want_vectors))
            for cid, score, ranks, scores in part:
                record = records.get(cid)
                if record is None:  # deleted since the index saw it
                    continue
                if not principal.can_see(record.groups):  # belt and braces: never leak
                    continue
                candidates.append(_hit(record, score, ranks, scores))
            kept = self._dedupe(candidates, records, need)
            if need is not None and len(kept) >= need:
                break
        return kept

    def _dedupe(self, hits: list[Hit], records: dict[int, ChunkRecord], need: int | None = None) -> list[Hit]:
        """Collapse near-duplicate chunks, in rank order, stopping once ``need`` are kept.

        With embeddings (``dedup_similarity`` < 1) a chunk is dropped when its vector is that
        similar to one already kept; identical texts always are, since the model is
        deterministic. Without them, texts equal up to case and spacing are collapsed.
        """
        threshold = self.settings.dedup_similarity
        kept: list[Hit] = []
        kept_vectors: np.ndarray | None = None
        kept_count = 0
        seen_text: set[str] = set()
        for hit in hits:
            record = records.get(hit.chunk_id)
            vector = record.embedding if record is not None and threshold < 1.0 else None
            if vector is None:
                key = " ".join(hit.text.lower().split())
                if key in seen_text:
                    continue
                seen_text.add(key)
            else:
                if kept_vectors is None:
                    kept_vectors = np.empty((len(hits), vector.shape[0]), dtype=np.float32)
                if kept_count and float((kept_vectors[:kept_count] @ vector).max()) >= threshold:
                    continue
                kept_vectors[kept_count] = vector
                kept_count += 1
            kept.append(hit)
            if need is not None and len(kept) >= need:
                break
        return kept


def _rerank_text(hit: Hit) -> str:
    named = document_line(hit.title, hit.document_context)
    return f"{named}\n{hit.text}" if named else hit.text


def _hit(record: ChunkRecord, score: float, ranks, scores) -> Hit:
    return Hit(
        chunk_id=record.id, document_id=record.document_id, score=float(score), text=record.text, source=record.source,
        title=record.title, pages=record.pages, heading_path=record.heading_path, collection=record.collection,
        mime_type=record.mime_type, dense_rank=ranks[0], keyword_rank=ranks[1], dense_score=scores[0], keyword_score=scores[1],
        document_context=record.document_context,
    )
