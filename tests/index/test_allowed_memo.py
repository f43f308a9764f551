"""Both indexes remember what they derive from an allowed-id array (the catalog hands a caller
the same array until it changes); a remembered set must never outlive a write."""

from __future__ import annotations

import numpy as np
import pytest

from index.keyword import KeywordDoc
from index.keyword_tantivy import TantivyKeywordIndex
from index.vectors import VectorIndex, VectorParams


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_remembered_allowed_slots_follow_adds_and_removes(kind):
    rng = np.random.default_rng(1)
    params = VectorParams(vector_filter_exact_max=0)  # hnsw: the selector path, not the exact one
    index = VectorIndex.create(16, model="m", model_fingerprint="f", kind=kind, params=params)
    vectors = _unit(rng, 400)
    index.add(np.arange(1, 401), vectors)
    allowed = np.arange(1, 301, dtype=np.int64)  # 75%: filtered through the index
    query = vectors[9]
    _, ids = index.search(query, 5, allowed_ids=allowed)
    assert ids[0][0] == 10 and set(ids[0]) <= set(allowed.tolist())
    index.remove(np.array([10]))
    _, ids = index.search(query, 5, allowed_ids=allowed)  # the same array object
    assert 10 not in ids[0] and set(ids[0]) <= set(allowed.tolist())
    index.add(np.array([10]), query[None, :])
    _, ids = index.search(query, 5, allowed_ids=allowed)
    assert ids[0][0] == 10
    index.add(np.array([999]), query[None, :])  # not allowed: never returned
    _, ids = index.search(query, 5, allowed_ids=allowed)
    assert 999 not in ids[0]


def test_keyword_filter_remembered_per_array_answers_like_a_fresh_one(tmp_path):
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert([KeywordDoc(i, i % 50, f"common word{i % 7} text") for i in range(1, 2001)])
    index.commit(1)
    allowed = np.arange(0, 50, 10, dtype=np.int64)  # 10% of documents
    first = index.search("common text", 100, allowed_document_ids=allowed)
    again = index.search("common text", 100, allowed_document_ids=allowed)
    fresh = index.search("common text", 100, allowed_document_ids=allowed.tolist())
    assert first == again == fresh and len(first) == 100  # past the unfiltered look-ahead: the term-set filter ran
    index.upsert([KeywordDoc(5000, 10, "common word3 word3 word3")])  # a new chunk of an allowed document
    index.commit(2)
    assert index.search("common word3", 100, allowed_document_ids=allowed)[0][0] == 5000
    index.close()
