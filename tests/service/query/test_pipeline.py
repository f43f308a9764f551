"""The query pipeline: one path for every front door, degradations decided once inside it.

A failing or slow reranker leaves the fused order with a note and one fallback report; the
async path (embedding awaited as a future, the rest on a search thread) returns what the
synchronous one does.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from index.catalog import Catalog
from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store
from ingest.embedder_hash import HashEmbedder
from service.query.generation import ExtractiveGenerator, GeneratorUnavailable
from service.query.pipeline import QueryPipeline
from service.query.rerank.lexical import LexicalReranker
from service.query.retrieval import Retriever
from service.query.types import Principal, Query, SearchFilters

ADMIN = Principal("admin", all_access=True)
TEXTS = [
    "Employees receive twenty vacation days per year.",
    "Vacation requests go to your manager two weeks ahead.",
    "The VPN certificate expires after ninety days.",
    "Remote work is allowed three days per week.",
    "Expenses above five thousand euros need a director's approval.",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    embedder = HashEmbedder(dimension=64)
    settings = Settings(data_dir=tmp_path_factory.mktemp("pipeline"), reranker_enabled=False, rerank_candidates=4)
    store = Store(open_database(settings))
    for n, text in enumerate(TEXTS):
        chunks = [NewChunk(0, text, 10, 0, len(text), [], [])]
        store.put_document(DocumentWrite("default", f"/docs/{n}.txt", str(n), f"Doc {n}", "text/plain", text, 1, [], {}, chunks,
                                         embedder.embed_documents([text]), embedder.fingerprint))
    indexes = IndexSet(settings, store, EmbeddingIdentity(embedder.model_name, embedder.fingerprint, embedder.dimension)).open()
    yield settings, Retriever(settings, store, indexes, Catalog(store)), embedder
    indexes.close()


def _pipeline(world, reranker=None, *, settings=None, embedder=None, generator=None) -> QueryPipeline:
    base_settings, retriever, hash_embedder = world
    settings = settings or base_settings
    extractive = ExtractiveGenerator.from_settings(settings, embed=hash_embedder.embed_queries)
    return QueryPipeline(settings, retriever, embedder or hash_embedder, reranker,
                         generator=generator or (lambda: extractive), extractive_generator=lambda: extractive)


class Broken(LexicalReranker):
    def rerank(self, query, texts):
        raise RuntimeError("reranker crashed")


class Stuck(LexicalReranker):
    def __init__(self):
        self.release = threading.Event()

    def rerank(self, query, texts):
        self.release.wait(10)
        return super().rerank(query, texts)


def _ids(outcome) -> list[int]:
    return [h.chunk_id for h in outcome.hits]


def test_a_failing_reranker_leaves_the_fused_order_with_a_note_and_one_fallback(world):
    query = Query("vacation days per year", ADMIN, k=3)
    fused = _pipeline(world).search(query)
    reported: list[str] = []
    pipeline = _pipeline(world, Broken())
    outcome = pipeline.search(query, on_fallback=reported.append)
    pipeline.close()
    assert _ids(outcome) == _ids(fused) and outcome.reranked is False
    assert reported == ["rerank"]
    assert outcome.notes == ["the reranker failed (RuntimeError); results are fused, not reranked"]
    assert "rerank" in outcome.timings_ms


WORDS = sorted({w.strip(".,'").lower() for text in TEXTS for w in text.split()} | {"unrelated"})


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=5), k=st.integers(1, 6),
       mode=st.sampled_from(["hybrid", "dense", "keyword"]), collapse=st.booleans())
def test_a_failed_rerank_returns_exactly_the_unreranked_results(world, words, k, mode, collapse):
    query = Query(" ".join(words), ADMIN, k=k, mode=mode, collapse=collapse)
    reported: list[str] = []
    pipeline = _pipeline(world, Broken())
    try:
        fallen_back = pipeline.search(query, on_fallback=reported.append)
        unreranked = pipeline.search(Query(query.text, ADMIN, k=k, mode=mode, collapse=collapse, rerank=False))
    finally:
        pipeline.close()
    assert [(h.chunk_id, h.score) for h in fallen_back.hits] == [(h.chunk_id, h.score) for h in unreranked.hits]
    assert reported == (["rerank"] if fallen_back.hits else [])


def test_a_reranker_past_its_deadline_is_abandoned(world):
    settings = world[0].model_copy(update={"rerank_timeout_s": 0.2})
    stuck = Stuck()
    pipeline = _pipeline(world, stuck, settings=settings)
    try:
        reported: list[str] = []
        outcome = pipeline.search(Query("vacation days per year", ADMIN, k=3), on_fallback=reported.append)
        assert outcome.hits and outcome.reranked is False and reported == ["rerank"]
        assert outcome.notes == ["the reranker took longer than 0.2 s; results are fused, not reranked"]
    finally:
        stuck.release.set()
        pipeline.close()


def test_a_working_reranker_reorders_the_head(world):
    outcome = _pipeline(world, LexicalReranker()).search(Query("vacation days", ADMIN, k=3))
    assert outcome.reranked and not outcome.notes
    scores = [h.rerank_score for h in outcome.hits]
    assert scores == sorted(scores, reverse=True)
    assert _pipeline(world, LexicalReranker()).search(Query("vacation days", ADMIN, k=3, rerank=False)).reranked is False


class LaterEmbedder(HashEmbedder):
    """Fills each query's future from another thread, as the server's batching embedder does."""

    def __init__(self):
        super().__init__(dimension=64)
        self.pool = ThreadPoolExecutor(1)
        self.submitted = 0

    def submit_query(self, text: str) -> Future:
        self.submitted += 1
        return self.pool.submit(lambda: self.embed_queries([text])[0])


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_the_async_path_returns_what_the_sync_path_does(world, mode):
    embedder = LaterEmbedder()
    pipeline = _pipeline(world, embedder=embedder)
    query = Query("remote work days", ADMIN, k=4, mode=mode)
    search_thread = ThreadPoolExecutor(1, thread_name_prefix="search")
    try:
        outcome = asyncio.run(pipeline.search_async(query, search_thread))
    finally:
        search_thread.shutdown()
        embedder.pool.shutdown()
    expected = pipeline.search(query)
    assert _ids(outcome) == _ids(expected) and outcome.hits
    assert embedder.submitted == (0 if mode == "keyword" else 1)
    assert ("embed_query" in outcome.timings_ms) == (mode != "keyword")
    assert list(outcome.timings_ms) == list(expected.timings_ms)  # same stages, same order


def test_nothing_visible_means_no_embedding(world):
    class Counting(HashEmbedder):
        calls = 0

        def embed_queries(self, texts):
            Counting.calls += 1
            return super().embed_queries(texts)

    query = Query("vacation", ADMIN, k=3, mode="dense", filters=SearchFilters(collections=("no-such-collection",)))
    outcome = _pipeline(world, embedder=Counting(dimension=64)).search(query)
    assert outcome.hits == [] and Counting.calls == 0


def test_answers_fall_back_to_extractive_when_the_generator_cannot_be_built(world):
    settings = world[0].model_copy(update={"generator": "openai"})

    def unavailable():
        raise GeneratorUnavailable("no endpoint configured")

    reported: list[str] = []
    answer, outcome = _pipeline(world, settings=settings, generator=unavailable).answer(
        Query("How many vacation days per year?", ADMIN, k=3), on_fallback=reported.append)
    assert answer.generator == "extractive" and reported == ["generate"]
    assert any("unavailable" in note for note in answer.notes) and "generate" in outcome.timings_ms


def test_the_default_submit_query_is_a_done_future_holding_embed_queries():
    embedder = HashEmbedder(dimension=16)
    future = embedder.submit_query("vacation days")
    assert future.done()
    np.testing.assert_array_equal(future.result(), embedder.embed_queries(["vacation days"])[0])

    class Failing(HashEmbedder):
        def embed_queries(self, texts):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        Failing(dimension=16).submit_query("q").result(timeout=1)
