"""Near-duplicate collapsing in retrieval: by embedding when enabled, by normalized text when
not, in rank order, and no more work than the caller can use."""

from __future__ import annotations

import numpy as np

from index.settings import Settings
from index.store import ChunkRecord
from service.query.types import Hit
from service.query.retrieval import Retriever


def _hit(cid: int, text: str) -> Hit:
    return Hit(chunk_id=cid, document_id=cid, score=1.0 / cid, text=text, source=f"/d/{cid}", title=None, pages=[], heading_path=[],
               collection="default", mime_type="text/plain")


def _record(cid: int, text: str, vector) -> ChunkRecord:
    return ChunkRecord(id=cid, document_id=cid, ordinal=0, text=text, context="", pages=[], heading_path=[], start=0, end=len(text),
                       source=f"/d/{cid}", title=None, mime_type="text/plain", collection="default",
                       embedding=None if vector is None else np.asarray(vector, dtype=np.float32))


def _retriever(threshold: float) -> Retriever:
    return Retriever(Settings(dedup_similarity=threshold), store=None, indexes=None, catalog=None)


def _unit(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_near_duplicate_embeddings_keep_the_higher_ranked_chunk():
    texts = {1: "alpha", 2: "alpha again", 3: "beta", 4: "gamma"}
    vectors = {1: _unit(1, 0, 0), 2: _unit(1, 0.01, 0), 3: _unit(0, 1, 0), 4: _unit(0, 0, 1)}
    hits = [_hit(c, texts[c]) for c in (1, 2, 3, 4)]
    records = {c: _record(c, texts[c], vectors[c]) for c in texts}
    kept = _retriever(0.98).dedupe(hits, records)
    assert [h.chunk_id for h in kept] == [1, 3, 4]


def test_stops_once_enough_results_are_kept():
    hits = [_hit(c, f"text {c}") for c in range(1, 11)]
    records = {c: _record(c, f"text {c}", np.eye(10, dtype=np.float32)[c - 1]) for c in range(1, 11)}
    assert [h.chunk_id for h in _retriever(0.98).dedupe(hits, records, need=3)] == [1, 2, 3]


def test_without_embeddings_equal_text_up_to_case_and_spacing_collapses():
    hits = [_hit(1, "Annual leave is 25 days"), _hit(2, "annual  leave is 25\ndays"), _hit(3, "Sick leave is separate")]
    records = {h.chunk_id: _record(h.chunk_id, h.text, None) for h in hits}
    assert [h.chunk_id for h in _retriever(1.0).dedupe(hits, records)] == [1, 3]


def test_a_chunk_missing_its_embedding_falls_back_to_text():
    hits = [_hit(1, "same words"), _hit(2, "Same words"), _hit(3, "other")]
    records = {1: _record(1, "same words", None), 2: _record(2, "Same words", None), 3: _record(3, "other", _unit(1, 0))}
    assert [h.chunk_id for h in _retriever(0.98).dedupe(hits, records)] == [1, 3]


class _Store:
    """Chunk records by id, counting how many rows each fetch asks for."""

    def __init__(self, records: dict[int, ChunkRecord]):
        self.records = records
        self.fetches: list[int] = []

    def chunk_records(self, ids, *, with_embeddings=False):
        self.fetches.append(len(ids))
        return {i: self.records[i] for i in ids if i in self.records}


def test_fetch_reads_a_little_more_than_needed_then_the_rest_only_when_drops_leave_too_few():
    from service.query.types import Principal

    records = {c: _record(c, f"text {c}", np.eye(40, dtype=np.float32)[c - 1]) for c in range(1, 41)}
    for c in range(1, 9):  # the top 8 became hidden (a group change the index has not seen yet)
        records[c].groups = ["hr"]
    ranked = [(c, 1.0 / c, (c, None), (1.0 / c, None)) for c in range(1, 41)]
    store = _Store(records)
    retriever = Retriever(Settings(dedup_similarity=0.98), store=store, indexes=None, catalog=None)
    kept = retriever.fetch_visible(ranked, Principal("eng-reader", frozenset({"eng"})), need=10)
    assert [h.chunk_id for h in kept] == list(range(9, 19))
    assert store.fetches == [15, 25]  # need + 5 first, then the rest of the window

    store.fetches.clear()
    assert len(retriever.fetch_visible(ranked, Principal("hr-reader", frozenset({"hr"})), need=10)) == 10
    assert store.fetches == [15]
