"""First-stage retrieval: who may see what, dense (FAISS) and BM25 candidates, their fusion,
and the fetch of visible, deduplicated hits. The pipeline (``service.query.pipeline``) calls
these stages in order and times each.

Access control and filters become allowed-id sets *before* either retriever runs, so both
search only what the caller may see and a caller always gets up to k results it may see.
A final per-hit visibility check guards against any index lagging behind a group change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.catalog import Catalog
from index.indexset import IndexSet
from index.settings import Settings
from index.store import ChunkRecord, Store
from service.query.fusion import (
    fused_arrays,
    reciprocal_contributions,
    reciprocal_rank_fusion,
    weighted_contributions,
    weighted_score_fusion,
)
from service.query import sections, synonyms
from service.query.ranking import DocumentAwareness, adjustments, per_chunk
from service.query.types import Hit, Mode, Principal, SearchFilters
from service.query.windows import Neighbour, table_window

# (chunk id, fused score, (dense rank, keyword rank), (dense score, keyword score)); plain
# tuples, because building a few dozen objects per search showed in its CPU time.
Ranked = tuple[int, float, tuple[int | None, int | None], tuple[float | None, float | None]]
Candidates = list[tuple[int, float]]
# A table window reads the chunks within this many ordinals of its hit: table pieces are
# rarely under a few hundred characters, so a window of table_window_chars never needs more.
_WINDOW_MIN_PIECE_CHARS = 250
_WINDOW_MAX_REACH = 24
# Chunks whose section labels are remembered (a few dozen bytes each).
_SECTION_CACHE_CHUNKS = 200_000


@dataclass(frozen=True)
class Allowed:
    """What one caller may search: ``None`` means everything."""

    documents: np.ndarray | None
    chunks: np.ndarray | None
    # Set when ``documents`` are exactly those visible to these groups (no other filter): the
    # keyword index can then filter by its group terms (``KeywordIndex.search``).
    groups: frozenset[str] | None = None

    @property
    def nothing(self) -> bool:
        return self.documents is not None and len(self.documents) == 0


class Retriever:
    def __init__(self, settings: Settings, store: Store, indexes: IndexSet, catalog: Catalog):
        self.settings = settings
        self.store = store
        self.indexes = indexes
        self.catalog = catalog
        synonyms.load(settings.query_synonyms)  # a bad setting fails here, at start-up
        sections.load(settings.section_names)
        # chunk id -> the section groups its label names. A chunk's label never changes (a
        # changed document gets new chunk ids), so entries stay true until evicted.
        self._chunk_sections: dict[int, frozenset[int]] = {}
        self._chunk_sections_of: sections.SectionNames | None = None  # the groups those indices refer to

    def expansion(self, text: str) -> str:
        """Words the keyword index adds to the question: its synonym groups' other phrasings."""
        groups = synonyms.load(self.settings.query_synonyms)  # remembered per setting value
        return groups.expansion(text) if groups is not None else ""

    def allowed(self, principal: Principal, filters: SearchFilters | None) -> Allowed:
        self.catalog.refresh(self.indexes.position)
        documents, chunks = self.catalog.allowed(principal.groups, principal.all_access, principal.can_see, filters)
        # The keyword index's group terms agree with the catalog once it has caught up to the
        # catalog's position (a keyword index left behind by a failed write could hold a
        # document's old groups, and would miss its chunks until it catches up).
        only_groups = (documents is not None and not principal.all_access and (filters is None or filters.is_empty())
                       and self.indexes.keyword.position >= self.catalog.position)
        return Allowed(documents, chunks, principal.groups if only_groups else None)

    def dense(self, vector: np.ndarray, k: int, allowed: Allowed, *, limit: int | None = None) -> Candidates:
        # Never fetch fewer candidates than the caller asked for results.
        limit = max(self.settings.dense_candidates if limit is None else limit, k)
        scores, ids = self.indexes.vectors.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), limit, allowed_ids=allowed.chunks)
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]  # tolist: Python ints and floats at C speed

    def keyword(self, text: str, k: int, allowed: Allowed, *, limit: int | None = None) -> Candidates:
        # The catalog's array itself: the same object for a caller until the catalog changes,
        # so the engine can reuse what it derived from it.
        limit = max(self.settings.keyword_candidates if limit is None else limit, k)
        return self.indexes.keyword.search(text, limit, allowed_document_ids=allowed.documents, allowed_groups=allowed.groups,
                                           expansion=self.expansion(text), expansion_weight=self.settings.query_synonym_weight)

    def named_documents(self, text: str, allowed: Allowed | None) -> dict[int, float]:
        """Documents the question names, with their scores in (0, 1] (``index.document_index``),
        among those the caller may see and at least ``named_document_min_chunks`` long; empty
        when the document boost is off or none is named."""
        awareness = self.awareness
        if awareness.document_weight <= 0 or not text:
            return {}
        visible = allowed.documents if allowed is not None else None
        named = self.catalog.document_index.scores(text, floor=awareness.document_floor, allowed=visible,
                                                   max_documents=awareness.document_max_named,
                                                   names_only=awareness.document_names_only)
        # A short document's chunks carry its name themselves (each starts with its title and
        # context line): boosting it would count the name twice (named_document_min_chunks).
        shortest = self.settings.named_document_min_chunks
        if shortest > 1 and named:
            sizes = self.catalog.doc_chunks
            named = {d: s for d, s in named.items() if len(sizes.get(d, ())) >= shortest}
        return named

    def within_named(self, vector: np.ndarray | None, text: str, named: dict[int, float], *,
                     keyword: bool = True) -> tuple[Candidates, Candidates]:
        """Dense and keyword candidates from inside the named documents only.

        In a corpus of long filings the passage a question needs often ranks below the
        corpus-wide candidate cut (``dense_candidates``), behind similar passages of other
        filings, so the document boost never sees it. Searching the named documents on their
        own, as a per-document index would, brings their best passages into fusion. The named
        documents are already limited to what the caller may see; those shorter than
        ``named_document_min_chunks`` are left out."""
        limit = self.settings.named_document_candidates
        if limit <= 0 or not named:
            return [], []
        # A short named document whose passages all missed the corpus-wide cut does not say
        # what the question asks; only long ones bury passages behind their own.
        sizes, shortest = self.catalog.doc_chunks, self.settings.named_document_min_chunks
        documents = np.asarray(sorted(d for d in named if len(sizes.get(d, ())) >= shortest), dtype=np.int64)
        if not len(documents):
            return [], []
        scoped = Allowed(documents, self.catalog.chunk_ids(documents))
        dense = self.dense(vector, limit, scoped, limit=limit) if vector is not None else []
        return dense, (self.keyword(text, limit, scoped, limit=limit) if keyword else [])

    def fuse(self, mode: Mode, dense: Candidates, lexical: Candidates, depth: int, *, text: str = "",
             allowed: Allowed | None = None, named: dict[int, float] | None = None) -> list[Ranked]:
        """The head (``depth``) of one ranked list: both lists fused, or the one the mode uses.

        Hybrid fusion is document-aware when the settings ask for it (``service.query.ranking``):
        ``text`` is the question, ``allowed`` what the caller may see, ``named`` the documents
        it names when the caller has them already (``named_documents``).
        """
        settings = self.settings
        if mode == "hybrid":
            weights = (settings.fusion_dense_weight, settings.fusion_keyword_weight)
            awareness = self.awareness
            asked_sections = self.sections_named(text)
            if awareness.active or asked_sections:
                # Adjustments can lift a candidate from below the cut, so they see every
                # candidate: as arrays, since with named-document candidates there are thousands.
                votes = (weighted_contributions(weights) if settings.fusion == "weighted"
                         else reciprocal_contributions(weights, settings.rrf_k))
                arrays = fused_arrays([dense, lexical], votes)
                documents, shared = self.catalog.chunk_facts(arrays.ids)
                scores = named if named is not None else self.named_documents(text, allowed)
                extra = adjustments(documents, shared, scores, awareness)
                if asked_sections:
                    # A question naming documents wants their statement, not another company's,
                    # and the best-named document's most: the boost is scaled by its document's score.
                    weights = per_chunk(documents, scores) if scores else None
                    extra += self.section_adjustments(arrays.ids, arrays.scores + extra, asked_sections, weights)
                fused = arrays.head(extra, depth)
            elif settings.fusion == "weighted":
                fused = weighted_score_fusion([dense, lexical], weights=weights, limit=depth)
            else:
                fused = reciprocal_rank_fusion([dense, lexical], k=settings.rrf_k, weights=weights, limit=depth)
            return [(f.id, f.score, f.ranks, f.scores) for f in fused]
        if mode == "dense":
            return [(cid, s, (r, None), (s, None)) for r, (cid, s) in enumerate(dense[:depth], 1)]
        return [(cid, s, (None, r), (None, s)) for r, (cid, s) in enumerate(lexical[:depth], 1)]

    def sections_named(self, text: str) -> frozenset[int]:
        """The section groups the question names ("based on the balance sheet"); empty when the
        section boost is off or it names none."""
        if self.settings.section_boost <= 0 or not text:
            return frozenset()
        names = sections.load(self.settings.section_names)
        return names.named_by(text) if names is not None else frozenset()

    def section_adjustments(self, ids: np.ndarray, scores: np.ndarray, asked: frozenset[int],
                            weights: np.ndarray | None = None) -> np.ndarray:
        """``section_boost`` for each of the best ``section_candidates`` candidates whose label
        names a section the question names, 0 for the rest (``service.query.sections``). With
        ``weights`` (the named documents' scores, in (0, 1]), only candidates of weight above 0
        compete, and each gains the boost times its weight.

        Labels are read for those candidates only, and remembered per chunk, so a question that
        names no section costs nothing and one that does reads a few hundred short rows once."""
        settings = self.settings
        out = np.zeros(len(ids), dtype=np.float64)
        names = sections.load(settings.section_names)
        if names is None or not len(ids):
            return out
        order = np.argsort(-scores, kind="stable")
        if weights is not None:
            order = order[weights[order] > 0]
        best = order[: settings.section_candidates]
        if self._chunk_sections_of is not names:  # the setting changed: other groups, other indices
            self._chunk_sections, self._chunk_sections_of = {}, names
        known = self._chunk_sections
        missing = [int(ids[j]) for j in best if int(ids[j]) not in known]
        if missing:
            if len(known) + len(missing) > _SECTION_CACHE_CHUNKS:
                known.clear()
            for cid, (heading_path, context, kind, head) in self.store.chunk_labels(missing, sections.LABEL_CHARS).items():
                known[cid] = names.labelled(sections.label_text(heading_path, context, kind, head))
        for j in best:
            if known.get(int(ids[j]), frozenset()) & asked:
                out[j] = settings.section_boost * (weights[j] if weights is not None else 1.0)
        return out

    @property
    def awareness(self) -> DocumentAwareness:
        settings = self.settings
        return DocumentAwareness(settings.document_boost_weight, settings.document_boost_floor,
                                 settings.boilerplate_min_documents, settings.boilerplate_penalty,
                                 settings.document_boost_max_documents, settings.document_boost_names_only)

    def fetch_visible(self, ranked: list[Ranked], principal: Principal, need: int | None) -> list[Hit]:
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
            kept = self.dedupe(candidates, records, need)
            if need is not None and len(kept) >= need:
                break
        return kept

    def with_table_windows(self, hits: list[Hit], k: int) -> list[Hit]:
        """The first ``k`` hits, each piece of a split table given its window; a hit already
        inside an earlier hit's window is dropped (its text is there), freeing its place."""
        max_chars = self.settings.table_window_chars
        reach = max(1, min(_WINDOW_MAX_REACH, max_chars // _WINDOW_MIN_PIECE_CHARS))
        kept: list[Hit] = []
        shown: set[int] = set()
        for hit in hits:
            if len(kept) >= k:
                break
            if hit.chunk_id in shown:
                continue
            if hit.kind == "table" and hit.ordinal is not None:
                rows = self.store.chunk_neighbours(hit.document_id, hit.ordinal - reach, hit.ordinal + reach)
                parts = table_window([Neighbour(r[0], r[1], r[2], r[3], r[4], tuple(r[5])) for r in rows], hit.chunk_id, max_chars)
                if parts:
                    hit.window = tuple(parts)
                    shown.update(part.chunk_id for part in parts)
            shown.add(hit.chunk_id)
            kept.append(hit)
        return kept

    def dedupe(self, hits: list[Hit], records: dict[int, ChunkRecord], need: int | None = None) -> list[Hit]:
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


def merge_candidates(first: Candidates, second: Candidates) -> Candidates:
    """One candidate list from two searches of the same index (scores on one scale): each
    chunk once, with its better score, best first (ties by id)."""
    if not second:
        return first
    pairs = first + second
    ids = np.fromiter((item for item, _ in pairs), dtype=np.int64, count=len(pairs))
    scores = np.fromiter((float(score) for _, score in pairs), dtype=np.float64, count=len(pairs))
    order = np.lexsort((ids, -scores))
    _, keep = np.unique(ids[order], return_index=True)  # the first, i.e. best, of each chunk
    best = order[np.sort(keep)]
    return list(zip(ids[best].tolist(), scores[best].tolist()))


def collapse_documents(hits: list[Hit]) -> list[Hit]:
    """The best hit of each document, in order."""
    seen: set[int] = set()
    collapsed = []
    for hit in hits:
        if hit.document_id in seen:
            continue
        seen.add(hit.document_id)
        collapsed.append(hit)
    return collapsed


def _hit(record: ChunkRecord, score: float, ranks, scores) -> Hit:
    return Hit(
        chunk_id=record.id, document_id=record.document_id, score=float(score), text=record.text, source=record.source,
        title=record.title, pages=record.pages, heading_path=record.heading_path, collection=record.collection,
        mime_type=record.mime_type, dense_rank=ranks[0], keyword_rank=ranks[1], dense_score=scores[0], keyword_score=scores[1],
        document_context=record.document_context, ordinal=record.ordinal, kind=record.kind,
        table_head=record.context if record.kind == "table" else "",
    )
