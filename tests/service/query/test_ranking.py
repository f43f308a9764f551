"""Document-aware score adjustments and the per-document spread (service/query/ranking.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.query.fusion import Fused, fused_arrays
from service.query.ranking import DocumentAwareness, adjustments, spread_per_document


def _fused(scores: list[float]) -> list[Fused]:
    return [Fused(i, s, (i + 1, None), (s, None)) for i, s in enumerate(scores)]


def rescore(fused: list[Fused], extra: np.ndarray, *, limit: int | None = None) -> list[Fused]:
    """``fused`` re-ranked with ``extra`` added, through the array path retrieval uses: one
    list whose votes are the fused scores themselves."""
    arrays = fused_arrays([[(f.id, f.score) for f in fused]], lambda i, values: values)
    by_id = {f.id: (f, x) for f, x in zip(fused, extra.tolist())}
    head = arrays.head(np.asarray([by_id[i][1] for i in arrays.ids.tolist()]), limit)
    return [Fused(h.id, h.score, by_id[h.id][0].ranks, by_id[h.id][0].scores) for h in head]


def test_the_named_documents_chunk_overtakes_a_slightly_better_match_elsewhere():
    fused = _fused([1.0, 0.95, 0.5])
    documents = np.asarray([10, 20, 30])
    extra = adjustments(documents, np.ones(3), {20: 1.0, 30: 0.2}, DocumentAwareness(document_weight=0.3))
    assert np.allclose(extra, [0.0, 0.3, 0.06])
    assert [f.id for f in rescore(fused, extra)] == [1, 0, 2]
    assert [f.id for f in rescore(fused, extra, limit=1)] == [1]


def test_boilerplate_is_demoted_only_from_the_threshold_on():
    awareness = DocumentAwareness(boilerplate_min_documents=3, boilerplate_penalty=0.5)
    extra = adjustments(np.asarray([1, 2, 3]), np.asarray([1, 2, 3]), {}, awareness)
    assert extra.tolist() == [0.0, 0.0, -0.5]
    assert not DocumentAwareness(boilerplate_min_documents=1, boilerplate_penalty=0.5).active
    assert not adjustments(np.asarray([1]), np.asarray([9]), {}, DocumentAwareness()).any()


def test_rescore_without_adjustments_keeps_the_fused_order():
    fused = _fused([0.9, 0.9, 0.1])
    assert rescore(fused, np.zeros(3)) == fused


def test_spread_caps_a_document_in_the_head_without_dropping_anything():
    items = [("a", 1), ("a", 2), ("a", 3), ("b", 4), ("a", 5), ("c", 6)]
    spread = spread_per_document(items, lambda item: item[0], 2)
    assert spread == [("a", 1), ("a", 2), ("b", 4), ("c", 6), ("a", 3), ("a", 5)]
    assert spread_per_document(items, lambda item: item[0], 0) == items


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=30), st.integers(1, 4))
def test_spread_is_a_permutation_that_respects_the_cap_first(documents, cap):
    items = list(enumerate(documents))
    spread = spread_per_document(items, lambda item: item[1], cap)
    assert sorted(spread) == items
    head_size = sum(min(cap, documents.count(d)) for d in set(documents))
    head = spread[:head_size]
    assert all(sum(1 for _, d in head if d == doc) <= cap for doc in set(documents))
    assert [i for i, _ in head] == sorted(i for i, _ in head)  # order kept within the head
