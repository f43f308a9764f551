"""The assembled service: store, derived indexes, models, the query pipeline, ingestion and
reindexing.

The CLI and the HTTP API are thin shells over this object, and both query through its one
``pipeline``, so they behave identically. Models load lazily: `groundwork stats` never pays
for a transformer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from index.catalog import Catalog
from index.db import open_database
from index.errors import IndexCorrupt
from index.indexset import EmbeddingIdentity, IndexSet, IndexWriteFailed
from index.settings import Settings
from index.store import Store
from ingest.embedder import Embedder
from ingest.pipeline import IngestRunner, JobSummary, embedding_text
from ingest.safe_open import OpenPolicy
from ingest.tokens import TokenCounter
from service.query.batching import QueryBatcher
from service.query.generation.base import Generator
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.reindexer import Reindexer

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
        self._pipeline: QueryPipeline | None = None
        # Reindexing in the background (the HTTP API's); searches continue meanwhile.
        self.reindexer = Reindexer(lambda reembed: self.reindex(reembed=reembed, progress=False))
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
            from service.query.rerank import load_reranker

            self._reranker_state = load_reranker(self.settings)
        return self._reranker_state

    @property
    def generator(self) -> Generator:
        """The configured generator; raises GeneratorUnavailable when it cannot be built (the
        pipeline then answers with the extractive one)."""
        if self._generator is None:
            from service.query.generation import make_generator

            self._generator = make_generator(self.settings, embed=self._embed_sentences)
        return self._generator

    @cached_property
    def extractive_generator(self) -> Generator:
        from service.query.generation import ExtractiveGenerator

        return ExtractiveGenerator.from_settings(self.settings, embed=self._embed_sentences)

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

    # --- queries --------------------------------------------------------------------------------
    @property
    def pipeline(self) -> QueryPipeline:
        """The one query path (embed -> candidates -> fuse -> rerank -> answer), built on first
        use: it loads the embedder, the reranker and the indexes."""
        if self._pipeline is None:
            with self._lock:
                if self._pipeline is None:
                    reranker, _status = self.reranker_state
                    self._pipeline = QueryPipeline(
                        self.settings, Retriever(self.settings, self.store, self.indexes, self.catalog), self.embedder, reranker,
                        generator=lambda: self.generator, extractive_generator=lambda: self.extractive_generator,
                        follow_changes=self._follow_changes,
                    )
        return self._pipeline

    def _follow_changes(self) -> None:
        if self.auto_refresh:
            try:
                self.refresh_indexes()
            except IndexWriteFailed as exc:  # serve what the indexes hold; lag() says what is missing
                log.warning("searching indexes that are behind the database: %s", exc)

    # --- operations -----------------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, collection: str = "default", groups: Sequence[str] = (), sync: bool = False,
               metadata: dict | None = None, job_id: str | None = None, progress: bool | None = None,
               source_names: dict[Path, str] | None = None, follow_symlinks: bool = False,
               confine_to: Sequence[Path] | None = None) -> JobSummary:
        """Ingest files and folders. Symlinks inside folders are refused unless
        ``follow_symlinks``; ``confine_to`` (server-side jobs) follows them only to files
        inside those folders. Checked where each file is opened (``ingest.safe_open``)."""
        runner = IngestRunner(self.settings, self.store, self.embedder, self.tokens, progress=progress,
                              parser_factory=self._borrow_parser)
        policy = OpenPolicy.confined(confine_to) if confine_to is not None else OpenPolicy(follow_symlinks=follow_symlinks)
        summary = runner.run(paths, collection=collection, groups=groups, sync=sync, metadata=metadata, job_id=job_id,
                             source_names=source_names, policy=policy)
        if self._indexes is not None:
            try:
                self.refresh_indexes()  # read-your-writes for whoever ingested
            except IndexWriteFailed as exc:  # the documents are committed; the indexes catch up later
                log.warning("ingested, but the indexes are behind: %s", exc)
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
            try:
                out["keyword_docs"] = int(indexes.keyword.count())
            except IndexCorrupt:
                out["keyword_docs"] = None  # being rebuilt; `groundwork verify` says why
            out["index_version"] = indexes.version
            out["index_position"] = indexes.position
        else:
            out["vectors"] = 0
            out["keyword_docs"] = 0
            out["index_version"] = 0
        return out

    def verify(self) -> dict:
        """Run the database's own integrity check, then compare it with the indexes (see
        ``IndexSet.verify``). A damaged database is reported even when the comparison cannot run."""
        integrity = self.store.integrity.check()
        try:
            report = self.indexes.verify()
            report["documents"] = self.store.stats()["documents"]
        except Exception as exc:
            if integrity.ok:
                raise
            report = {"consistent": False, "problems": [f"the indexes could not be compared with the database: {type(exc).__name__}: {exc}"],
                      "repaired": []}
        report["database_integrity"] = integrity.to_json()
        if not integrity.ok:
            report["consistent"] = False
            report["problems"].insert(0, f"the database fails its integrity check ({integrity.method}): {'; '.join(integrity.problems[:5])}")
        return report

    def check_database(self, max_age_s: float | None = None) -> dict:
        """Run the database's integrity check if the last one is older than ``max_age_s``
        (default: the configured interval); the server calls this in the background."""
        interval = self.settings.database_check_interval_s if max_age_s is None else max_age_s
        return self.store.integrity.check(max_age_s=interval).to_json()

    def storage_health(self) -> dict:
        """What the health route reports about storage, without any expensive work: the
        indexes' lag, last write errors and corruption (``IndexSet.health``), and the last
        database integrity check (run by ``check_database``). ``status``: "ok", "degraded"
        (an index behind after a failed write, or being rebuilt: searches may miss recent or
        all keyword matches) or "failing" (the database fails its integrity check);
        ``problems``: one line each."""
        problems: list[str] = []
        last = self.store.integrity.last
        database = last.to_json() if last is not None else {"ok": None, "method": "not checked yet"}
        failing = last is not None and not last.ok
        if failing:
            problems.append(f"database fails its integrity check ({last.method}): {'; '.join(last.problems[:3])}")
        indexes = self.indexes.health() if self._indexes is not None else {"status": "not open", "problems": []}
        problems.extend(indexes["problems"])
        status = "failing" if failing else ("degraded" if problems else "ok")
        return {"status": status, "problems": problems, "database_integrity": database, "indexes": indexes}

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
        if self._pipeline is not None:
            self._pipeline.close()
        if isinstance(self._embedder, QueryBatcher):  # the server's: stop its batching thread
            self._embedder.close()
        self.engine.dispose()


class _BorrowedPool:
    def __init__(self, pool, lock: threading.Lock):
        self.pool, self.lock = pool, lock

    def __enter__(self):
        self.lock.acquire()
        return self.pool

    def __exit__(self, *exc) -> None:
        self.lock.release()
