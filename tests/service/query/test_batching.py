"""Query micro-batching: concurrent single queries share model calls, each gets its own vector,
failures reach every waiter, and everything else passes through to the wrapped embedder."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ingest.embedder import Embedder
from ingest.embedder_hash import HashEmbedder
from service.query.batching import QueryBatcher


def test_query_batcher_merges_concurrent_queries_and_keeps_them_apart():
    class Recording(HashEmbedder):
        def __init__(self):
            super().__init__(dimension=32)
            self.batches: list[int] = []
            self.release = threading.Event()

        def embed_queries(self, texts):
            self.batches.append(len(texts))
            self.release.wait(10)  # a slow model: the other queries queue behind the first batch
            return super().embed_queries(texts)

    inner = Recording()
    batcher = QueryBatcher(inner)
    threading.Timer(0.5, inner.release.set).start()
    texts = [f"query number {n} about topic {n * 7}" for n in range(8)]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(texts))

    def ask(n: int) -> None:
        barrier.wait()
        results[n] = batcher.embed_queries([texts[n]])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, text in enumerate(texts):
        assert results[n].shape == (1, 32)
        np.testing.assert_allclose(results[n][0], HashEmbedder(dimension=32).embed_queries([text])[0], rtol=1e-6)
    assert sum(inner.batches) == len(texts) and max(inner.batches) > 1
    assert batcher.fingerprint == inner.fingerprint and batcher.dimension == 32  # everything else passes through
    assert batcher.embed_queries(["a", "b"]).shape == (2, 32)
    batcher.close()
    with pytest.raises(RuntimeError, match="shut down"):
        batcher.embed_queries(["after close"])


def test_query_batcher_reports_failures_to_every_caller():
    class Broken:
        def embed_queries(self, texts):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        QueryBatcher(Broken()).embed_queries(["q"])


def test_query_batcher_is_an_embedder_passing_everything_else_through(tmp_path):
    class WithTokenizer(HashEmbedder):
        backend = "hash"

        def tokenizer_path(self):
            return tmp_path

    inner = WithTokenizer(dimension=16)
    batcher = QueryBatcher(inner)
    try:
        assert isinstance(batcher, Embedder)
        assert (batcher.model_name, batcher.fingerprint, batcher.dimension, batcher.device, batcher.backend) == (
            inner.model_name, inner.fingerprint, 16, "cpu", "hash")
        assert batcher.tokenizer_path() == tmp_path
        np.testing.assert_array_equal(batcher.embed_documents(["a text"]), inner.embed_documents(["a text"]))
        future = batcher.submit_query("a query")
        np.testing.assert_allclose(future.result(timeout=10), inner.embed_queries(["a query"])[0], rtol=1e-6)
    finally:
        batcher.close()
