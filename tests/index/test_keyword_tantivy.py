"""tantivy engine specifics beyond the shared contract."""

from __future__ import annotations

import random

import pytest

import index.keyword_tantivy as keyword_tantivy
from index.keyword import KeywordDoc
from index.keyword_tantivy import TantivyKeywordIndex, build_text_analyzer


def test_en_stem_lowercases_drops_stop_words_and_stems():
    assert build_text_analyzer("en_stem").analyze("The Running dogs are NOT connected") == ["run", "dog", "connect"]
    assert build_text_analyzer("default").analyze("The Running dogs") == ["the", "running", "dogs"]
    assert build_text_analyzer("whitespace").analyze("The Running-dogs") == ["The", "Running-dogs"]


def test_over_long_tokens_are_dropped():
    assert build_text_analyzer("en_stem").analyze("ok " + "x" * 41) == ["ok"]


@pytest.fixture
def corpus_index(tmp_path):
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    docs = [
        KeywordDoc(i, rng.randrange(40), " ".join(rng.choices(words, k=rng.randint(1, 12))))
        for i in range(1, 600)
    ]
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert(docs)
    index.commit(1)
    yield index
    index.close()


def test_exact_filter_and_over_fetch_shortcut_agree(corpus_index, monkeypatch):
    """The shortcut (filter a deeper unfiltered ranking) and the exact term-set filter are two
    routes to one answer; force each in turn and compare."""
    rng = random.Random(11)
    cases = [
        (query, frozenset(rng.sample(range(40), rng.choice([1, 3, 20, 39]))), k)
        for query in ["alpha", "beta gamma", "omega sigma delta", "alpha alpha beta"]
        for k in (1, 5, 50)
        for _ in range(3)
    ]
    shortcut = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]
    monkeypatch.setattr(keyword_tantivy, "_FILTER_OVERFETCH", 0)
    monkeypatch.setattr(keyword_tantivy, "_FILTER_MIN_DEPTH", 1)
    exact = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]
    for (query, allowed, k), fast, slow in zip(cases, shortcut, exact):
        assert [s for _, s in fast] == pytest.approx([s for _, s in slow]), (query, sorted(allowed), k)


def test_a_search_only_instance_takes_no_writer_lock(tmp_path):
    writer = TantivyKeywordIndex(tmp_path / "kw")
    writer.upsert([KeywordDoc(1, 1, "shared index")])
    writer.commit(1)
    reader = TantivyKeywordIndex(tmp_path / "kw")
    try:
        assert [c for c, _ in reader.search("shared", 5)] == [1]
        assert reader.position == 1
    finally:
        reader.close()
        writer.close()
