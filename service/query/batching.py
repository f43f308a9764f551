"""Query micro-batching: concurrent single-query embeddings run through the model together.

The server wraps its embedder in a ``QueryBatcher``; the CLI does not need one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from ingest.embedder import Embedder


class QueryBatcher(Embedder):
    """Embedder wrapper that runs concurrent single-query calls through the model together.

    One batching thread owns the model: it takes every query waiting when the model frees up
    (up to ``max_batch``) and runs them as one batch. An idle server embeds a lone query at
    once, with no waiting window; under load the batch grows with the queue, so the model runs
    once per batch instead of once per query, which on a CPU is the difference between queueing
    and serving. Everything but single queries passes through to the wrapped embedder
    unchanged; calls with several texts are not held back.
    """

    def __init__(self, inner: Embedder, *, query_embedder: Embedder | None = None, max_batch: int = 64):
        self._inner = inner
        self._queries = query_embedder or inner  # same model and vectors, maybe other threading
        self._max_batch = max_batch
        self._ready = threading.Condition()
        self._pending: list[tuple[str, Future]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.queries = 0

    def __getattr__(self, name):
        # Attributes (model_name, fingerprint, dimension, device, backend, ...) are the inner one's.
        return getattr(self._inner, name)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.embed_documents(texts)

    def tokenizer_path(self) -> Path | None:
        return self._inner.tokenizer_path()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if len(texts) != 1:
            return self._inner.embed_queries(texts)
        return self.submit_query(texts[0]).result()[None, :]

    def submit_query(self, text: str) -> Future[np.ndarray]:
        """Queued for the batching thread; the future is filled when its batch has run."""
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the query embedder is shut down")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="query-batcher", daemon=True)
                self._thread.start()
            self._pending.append((text, future))
            self._ready.notify()
        return future

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._closed:
                    self._ready.wait()
                if self._closed and not self._pending:
                    return
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._run(batch)

    def _run(self, batch: list[tuple[str, Future]]) -> None:
        self.batches += 1
        self.queries += len(batch)
        try:
            vectors = np.asarray(self._queries.embed_queries([text for text, _ in batch]))
        except BaseException as exc:  # every waiter learns of the failure
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), vector in zip(batch, vectors):
            future.set_result(vector)
