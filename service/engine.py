"""The assembled service: store, derived indexes, models, retrieval and answering.

The CLI and the HTTP API are thin shells over this object, so both behave identically.
Models load lazily: `groundwork stats` never pays for a transformer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np

from index.catalog import Catalog
from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet
from index.settings import Settings
from index.store import Store
from ingest.embedder import Embedder
from ingest.pipeline import IngestRunner, JobSummary, embedding_text
from ingest.tokens import TokenCounter
from service.generation.base import GeneratorUnavailable, answer_with_fallback, stream_with_fallback
from service.query_types import Answer, Hit, Principal, SearchFilters
from service.retrieval import HybridRetriever, SearchOutcome

log = logging.getLogger(__name__)


class Groundwork:
    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, index_writer: bool = True):
        self.settings = settings
        settings.ensure_dirs()
        self.engine = open_database(settings)
        self.store = Store(self.engine)
        self._embedder = embedder
        self._index_writer = index_writer
        self._indexes: IndexSet | None = None
        self._lock = threading.RLock()
        self.catalog = Catalog(self.store)
        self._reranker_state: tuple[object | None, str] | None = None
        self._generator = None
        self._parser_pool = None
        self._parser_lock = threading.Lock()
        # True: every search first follows the change log (CLI, tests). The server turns it off
        # and follows from a background thread instead, keeping that work off the request path.
        self.auto_refresh = True

    # --- models ---------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from ingest.embedder_st import SentenceTransformerEmbedder

                    self._embedder = SentenceTransformerEmbedder.from_settings(self.settings)
        return self._embedder

    @cached_property
    def tokens(self) -> TokenCounter:
        from ingest.tokens import HFTokenCounter

        path = self.embedder.tokenizer_path()
        if path is None:
            from ingest.tokens import RegexTokenCounter

            log.warning("embedder has no tokenizer files; chunk budgets use a regex token estimate")
            return RegexTokenCounter()
        return HFTokenCounter.from_model_path(path)

    @property
    def identity(self) -> EmbeddingIdentity:
        e = self.embedder
        return EmbeddingIdentity(e.model_name, e.fingerprint, e.dimension)

    @property
    def reranker_state(self) -> tuple[object | None, str]:
        if self._reranker_state is None:
            from service.rerank import load_reranker

            self._reranker_state = load_reranker(self.settings)
        return self._reranker_state

    @property
    def generator(self):
        if self._generator is None:
            from service.generation import make_generator

            self._generator = make_generator(self.settings, embed=self._embed_sentences)
        return self._generator

    def _embed_sentences(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed_queries(texts)

    # --- indexes --------------------------------------------------------------------------------
    @property
    def indexes(self) -> IndexSet:
        if self._indexes is None:
            with self._lock:
                if self._indexes is None:
                    self._indexes = IndexSet(self.settings, self.store, self.identity, writer=self._index_writer).open()
        return self._indexes

    def refresh_indexes(self) -> int:
        """Follow the database (new ingests, deletes, a reindex switch by another process)."""
        indexes = self.indexes
        indexes.reload_if_switched()
        if not indexes.lock.held and self._index_writer:
            indexes.lock.try_acquire()
        return indexes.catch_up()

    @property
    def retriever(self) -> HybridRetriever:
        reranker, _status = self.reranker_state
        return HybridRetriever(self.settings, self.store, self.indexes, self.catalog, self._embed_query, reranker,
                               rerank_pool=self._rerank_pool if reranker is not None else None)

    @cached_property
    def _rerank_pool(self) -> ThreadPoolExecutor:
        """One thread: reranks queue rather than pile up on the CPU, and a stuck one makes the
        next ones miss their deadline (and fall back) instead of multiplying."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")

    def _embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed_queries([query])[0]

    # --- operations -----------------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, collection: str = "default", groups: Sequence[str] = (), sync: bool = False,
               metadata: dict | None = None, job_id: str | None = None, progress: bool | None = None,
               source_names: dict[Path, str] | None = None) -> JobSummary:
        runner = IngestRunner(self.settings, self.store, self.embedder, self.tokens, progress=progress,
                              parser_factory=self._borrow_parser)
        summary = runner.run(paths, collection=collection, groups=groups, sync=sync, metadata=metadata, job_id=job_id, source_names=source_names)
        if self._indexes is not None:
            self.refresh_indexes()  # read-your-writes for whoever ingested
        return summary

    def _borrow_parser(self) -> "_BorrowedPool":
        """The long-lived parser pool: starting workers (each loads its NLP model) costs
        seconds, which an upload over HTTP should not pay every time. One job at a time uses it."""
        with self._lock:
            if self._parser_pool is None:
                from ingest.parser_pool import ParserPool

                pool = ParserPool.from_settings(self.settings)
                pool.start()
                self._parser_pool = pool
        return _BorrowedPool(self._parser_pool, self._parser_lock)

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid", filters: SearchFilters | None = None,
               principal: Principal, rerank: bool | None = None, collapse_documents: bool = False,
               query_vector: np.ndarray | None = None, max_per_document: int | None = None) -> SearchOutcome:
        if self.auto_refresh:
            self.refresh_indexes()
        return self.retriever.search(query, k=k, mode=mode, filters=filters, principal=principal, rerank=rerank,
                                     collapse_documents=collapse_documents, query_vector=query_vector,
                                     max_per_document=max_per_document)

    def submit_query_embedding(self, query: str) -> Future | None:
        """The query's vector as a future when the embedder batches queries (the server's does),
        so that an async caller waits without holding a thread; None otherwise."""
        submit = getattr(self.embedder, "submit", None)
        return submit(query) if callable(submit) else None

    def answer(self, question: str, *, k: int | None = None, filters: SearchFilters | None = None, principal: Principal,
               rerank: bool | None = None) -> tuple[Answer, SearchOutcome]:
        k = k or self.settings.context_chunks
        outcome = self.search(question, k=k, filters=filters, principal=principal, rerank=rerank)
        t = time.perf_counter()
        answer = self.generate(question, outcome.hits[: self.settings.context_chunks])
        outcome.timings_ms["generate"] = round((time.perf_counter() - t) * 1000, 3)
        return answer, outcome

    def generate(self, question: str, passages: Sequence[Hit], *, on_fallback: Callable[[Exception], None] | None = None) -> Answer:
        """The configured generator's answer; when it fails, the extractive one's, with a note."""
        primary, fallback = self._generators()
        if fallback is None:
            return primary.answer(question, passages)
        return answer_with_fallback(primary, fallback, question, passages, on_fallback)

    def generate_stream(self, question: str, passages: Sequence[Hit], *,
                        on_fallback: Callable[[Exception], None] | None = None) -> Iterator:
        """Text deltas then one Answer; falls back like ``generate`` before the first delta."""
        primary, fallback = self._generators()
        if fallback is None:
            return iter(primary.stream(question, passages))
        return stream_with_fallback(primary, fallback, question, passages, on_fallback)

    def _generators(self):
        """(primary, fallback): the extractive generator backs up any other, even a
        misconfigured one, so an answer request never fails for want of an LLM."""
        if self.settings.generator == "extractive":
            return self.generator, None
        try:
            primary = self.generator
        except GeneratorUnavailable as exc:
            primary = _UnavailableGenerator(self.settings.generator, exc)
        return primary, self._extractive_generator

    @cached_property
    def _extractive_generator(self):
        from service.generation import ExtractiveGenerator

        return ExtractiveGenerator.from_settings(self.settings, embed=self._embed_sentences)

    def provenance(self, *, reranked: bool | None = None) -> dict:
        indexes = self.indexes
        reranker, status = self.reranker_state
        return {
            "index_version": indexes.version,
            "index_position": indexes.position,
            "embedding_model": self.embedder.model_name,
            "embedding_fingerprint": self.embedder.fingerprint[:16],
            "embedding_backend": getattr(self.embedder, "backend", None),
            "vector_index": getattr(indexes.vectors, "kind", "unknown"),
            "keyword_index": getattr(indexes.keyword, "name", "unknown"),
            "fusion": self.settings.fusion,
            "reranker": getattr(reranker, "name", None) if reranker is not None else None,
            "reranker_status": status,
            "reranked": reranked,
            "generator": getattr(self.generator, "name", self.settings.generator) if self._generator is not None else self.settings.generator,
        }

    def stats(self) -> dict:
        out = self.store.stats()
        if self._indexes is not None or (self.settings.data_dir / "indexes" / "CURRENT.json").exists():
            indexes = self.indexes
            out["vectors"] = int(indexes.vectors.live_count)
            out["keyword_docs"] = int(indexes.keyword.count())
            out["index_version"] = indexes.version
            out["index_position"] = indexes.position
        else:
            out["vectors"] = 0
            out["keyword_docs"] = 0
            out["index_version"] = 0
        return out

    def verify(self) -> dict:
        report = self.indexes.verify()
        report["documents"] = self.store.stats()["documents"]
        return report

    def reindex(self, *, reembed: bool = False, progress: bool | None = None) -> int:
        if reembed:
            self._reembed(progress=progress)
        indexes = self.indexes
        indexes.identity = self.identity
        return indexes.rebuild()

    def _reembed(self, progress: bool | None = None) -> None:
        """New vectors for every chunk with the configured model; chunk ids stay the same."""
        fingerprint = self.embedder.fingerprint
        batch: list[tuple[int, str]] = []
        docs: set[int] = set()
        prefix_budget = self.settings.chunk_prefix_tokens
        from sqlalchemy import select
        from sqlmodel import Session

        from index.models import Chunk, Document

        def flush() -> None:
            if not batch:
                return
            vectors = self.embedder.embed_documents([t for _, t in batch])
            self.store.replace_embeddings([(cid, vectors[i]) for i, (cid, _) in enumerate(batch)], fingerprint, sorted(docs))
            batch.clear()
            docs.clear()

        with Session(self.engine) as session:
            rows = session.execute(
                select(Chunk.id, Chunk.document_id, Document.title, Chunk.heading_path, Chunk.context, Chunk.text, Document.context)
                .join(Document, Document.id == Chunk.document_id).order_by(Chunk.id)
            ).all()
        for cid, doc_id, title, heading_path, context, text, document_context in rows:
            batch.append((cid, embedding_text(title, heading_path or [], context, text, self.tokens, prefix_budget, document_context)))
            docs.add(doc_id)
            if len(batch) >= 512:
                flush()
        flush()
        # The old index's vectors are from another model: start the rebuild from scratch.
        if self._indexes is not None:
            self._indexes.identity = self.identity

    def close(self) -> None:
        if self._parser_pool is not None:
            self._parser_pool.close()
            self._parser_pool = None
        if self._indexes is not None:
            self._indexes.close()
        rerank_pool = self.__dict__.get("_rerank_pool")
        if rerank_pool is not None:
            rerank_pool.shutdown(wait=False, cancel_futures=True)
        close_embedder = getattr(self._embedder, "close", None)  # e.g. the server's query batcher thread
        if callable(close_embedder):
            close_embedder()
        self.engine.dispose()


class _UnavailableGenerator:
    """Stands for a configured generator that could not be built, so the shared fallback
    path reports it like any other generator failure."""

    def __init__(self, name: str, error: Exception):
        self.name, self.error = name, error

    def answer(self, question, passages):
        raise self.error

    def stream(self, question, passages):
        raise self.error


class _BorrowedPool:
    def __init__(self, pool, lock: threading.Lock):
        self.pool, self.lock = pool, lock

    def __enter__(self):
        self.lock.acquire()
        return self.pool

    def __exit__(self, *exc) -> None:
        self.lock.release()
