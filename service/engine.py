"""The assembled service: store, derived indexes, models, the query pipeline, ingestion and
reindexing.

The CLI and the HTTP API are thin shells over this object, and both query through its one
``pipeline``, so they behave identically. Models load lazily: `groundwork stats` never pays
for a transformer.

The engine alone decides when the indexes catch up with the database (``refresh_indexes`` is
the one call that does it): before each search (``auto_refresh``), after its own ingests,
from a background follower in the server (``follow_in_background``), and once before a run
over a fixed corpus (``fixed_corpus``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from index.atomic import read_json
from index.catalog import Catalog
from index.db import open_database
from index.errors import IndexCorrupt
from index.indexset import EmbeddingIdentity, IndexSet, IndexWriteFailed
from index.settings import Settings
from index.store import Store, decode_vectors
from index.vectors import IndexCorrupt as VectorIndexCorrupt
from index.vectors import IndexMissing, VectorIndex, VectorParams
from index.vectors import read_manifest as read_vector_manifest
from ingest.embedder import Embedder
from ingest.pipeline import IngestRunner, JobSummary, embedding_text
from ingest.safe_open import OpenPolicy
from ingest.tokens import TokenCounter
from service.query.batching import QueryBatcher
from service.query.generation.base import Generator
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.quality_gate import GateOutcome, GateRefused, GateUnusable, QualityGate, load_gate_queries, measure
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
        self.catalog = Catalog(self.store, incremental_max_changes=settings.catalog_incremental_max_changes,
                               document_index_sync_max=settings.document_index_sync_max)
        self._reranker_state: tuple[object | None, str] | None = None
        self._generator = None
        self._pipeline: QueryPipeline | None = None
        # Reindexing in the background (the HTTP API's); searches continue meanwhile.
        self.reindexer = Reindexer(self._background_reindex)
        self._parser_pool = None
        self._parser_lock = threading.Lock()
        self._ray_cluster = None  # ingest.ray_ingest.RayCluster, started by the first Ray job
        # True: every search first follows the change log (CLI, tests). The server turns it off
        # and follows from a background thread instead, keeping that work off the request path.
        self.auto_refresh = True
        self._follower = None

    def _background_reindex(self, reembed: bool, gate: QualityGate | None = None) -> "int | GatedReindex":
        if gate is None:
            return self.reindex(reembed=reembed, progress=False)
        return self.reindex_gated(gate, reembed=reembed)

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
        return _token_counter(self.embedder)

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
        """Follow the database (new ingests, deletes, a reindex switch by another process).
        Raises ``IndexWriteFailed`` when an index could not be written (it stays behind)."""
        indexes = self.indexes
        indexes.reload_if_switched()
        if not indexes.lock.held and self._index_writer:
            indexes.lock.try_acquire()
        return indexes.catch_up()

    def _refresh_or_warn(self, what: str) -> None:
        """``refresh_indexes``, where a failed index write must not fail ``what``: the
        database is what counts, and the indexes replay what they missed at the next catch-up."""
        try:
            self.refresh_indexes()
        except IndexWriteFailed as exc:
            log.warning("%s, but the indexes are behind the database: %s", what, exc)

    @property
    def maintains_indexes(self) -> bool:
        """Whether this process writes the index files (else another one, the running service,
        does and this one follows them)."""
        return self.indexes.lock.held

    def follow_in_background(self, interval_s: float | None = None) -> None:
        """Keep the indexes current from a background thread instead of before each search
        (the server's mode: that work stays off the request path). A first catch-up that cannot
        write (a full disk) is logged, not raised: the server serves what the indexes hold and
        the follower retries. ``close`` stops it."""
        from service.follower import FOLLOW_INTERVAL_S, IndexFollower

        if self._follower is not None:
            return
        self._refresh_or_warn("serving")
        self._follower = IndexFollower(self, FOLLOW_INTERVAL_S if interval_s is None else interval_s)
        self._follower.start()
        self.auto_refresh = False

    @contextmanager
    def fixed_corpus(self) -> Iterator[None]:
        """Catch up once, then search the indexes as they are until the block ends: over a
        corpus that does not change (an evaluation, a benchmark), following the change log
        before every search would only add work."""
        self.refresh_indexes()
        following, self.auto_refresh = self.auto_refresh, False
        try:
            yield
        finally:
            self.auto_refresh = following

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
            self._refresh_or_warn("searching")  # serve what the indexes hold; lag() says what is missing

    # --- operations -----------------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, collection: str = "default", groups: Sequence[str] = (), sync: bool = False,
               metadata: dict | None = None, job_id: str | None = None, progress: bool | None = None,
               source_names: dict[Path, str] | None = None, follow_symlinks: bool = False,
               confine_to: Sequence[Path] | None = None, index_now: bool = False, ray_address: str | None = None) -> JobSummary:
        """Ingest files and folders. Symlinks inside folders are refused unless
        ``follow_symlinks``; ``confine_to`` (server-side jobs) follows them only to files
        inside those folders. Checked where each file is opened (``ingest.safe_open``).

        Open indexes catch up at once (read-your-writes for whoever ingested); ``index_now``
        opens them first (the CLI, which has no later search to do it).

        ``ray_address`` parses and embeds on a Ray cluster (``ingest.ray_ingest``); this process
        still lists, skips, chunks and commits, so the outcome is the single-process one."""
        if not ray_address and self._embedder is None and self._parser_pool is None:
            # Parser workers load their NLP model while this process loads the embedding model,
            # rather than after it (seconds, each, for a one-off command).
            self._borrow_parser()
        policy = OpenPolicy.confined(confine_to) if confine_to is not None else OpenPolicy(follow_symlinks=follow_symlinks)
        run = dict(collection=collection, groups=groups, sync=sync, metadata=metadata, job_id=job_id,
                   source_names=source_names, policy=policy)
        if ray_address:
            cluster = self._ray(ray_address)
            with cluster.lock:
                runner = IngestRunner(self.settings, self.store, cluster.embedder, _token_counter(cluster.embedder),
                                      progress=progress, parser_factory=cluster.parser_pool)
                summary = runner.run(paths, **run)
        else:
            runner = IngestRunner(self.settings, self.store, self.embedder, self.tokens, progress=progress,
                                  parser_factory=self._borrow_parser)
            summary = runner.run(paths, **run)
        if index_now or self._indexes is not None:
            with summary.stages.measure("index"):
                self._refresh_or_warn("ingested")  # the documents are committed; the indexes catch up later
        return summary

    def _ray(self, address: str):
        """The Ray cluster's actors, started by the first Ray job and kept for later ones."""
        with self._lock:
            if self._ray_cluster is None:
                from ingest.ray_ingest import RayCluster

                self._ray_cluster = RayCluster(self.settings, address)
        return self._ray_cluster

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

    def reindex_gated(self, gate: QualityGate, *, reembed: bool = False, live_embedder: Embedder | None = None) -> GatedReindex:
        """``reindex`` behind a quality gate: build the new version's vectors aside, measure it
        and the live version on the gate's labelled queries, and only if nDCG@10 did not drop by
        more than ``gate.max_drop`` commit the new embeddings to the database and switch.

        A refusal (``GateRefused``, carrying both figures) leaves everything as it was: the new
        embeddings were only ever held in memory beside the live index (the database is written
        in one transaction, after the gate passed), and the live version keeps serving. The live
        version is measured with the model that built it: the configured one, ``live_embedder``,
        or else the model its manifest names, loaded like the configured one."""
        queries = load_gate_queries(gate, self.store)  # an unusable gate refuses before any work
        live_model = self._live_embedder(live_embedder)
        if live_model is None:
            raise GateUnusable("there is no live index version to measure against yet; run `groundwork reindex` without the gate first")
        if self._indexes is None:
            with self._lock:
                if self._indexes is None:  # opened with the model that built it, not the configured one
                    self._indexes = IndexSet(self.settings, self.store, _identity_of(live_model), writer=self._index_writer).open()
        self.refresh_indexes()
        live_ndcg = measure(self.settings, self.store, self.indexes, live_model, queries)
        embedder = self.embedder
        ids, vectors, documents = self._embed_all() if reembed else self._stored_embeddings()
        candidate = VectorIndex.create(embedder.dimension, model=embedder.model_name, model_fingerprint=embedder.fingerprint,
                                       kind=self.settings.vector_index_kind, expected_size=len(ids),
                                       params=VectorParams.from_settings(self.settings))
        if len(ids):
            candidate.add(ids, vectors)
        # New vectors leave the keyword side as it is: the new version shares the live one's.
        view = _IndexView(candidate, self.indexes.keyword, self.indexes.position)
        outcome = GateOutcome(live_ndcg=live_ndcg, new_ndcg=measure(self.settings, self.store, view, embedder, queries),
                              max_drop=gate.max_drop, queries=len(queries.qrels), live_model=live_model.model_name,
                              new_model=embedder.model_name)
        log.warning(outcome.describe()) if not outcome.passed else log.info(outcome.describe())
        if not outcome.passed:
            raise GateRefused(outcome)
        if reembed:
            # One transaction: the database never holds a mix of the two models' vectors.
            self.store.replace_embeddings(list(zip(ids.tolist(), vectors)), embedder.fingerprint, sorted(documents))
        indexes = self.indexes
        indexes.identity = self.identity
        return GatedReindex(indexes.rebuild(), outcome.to_json())

    def _live_embedder(self, given: Embedder | None) -> Embedder | None:
        """The model the live version was built with (None when there is no live version)."""
        if self._indexes is not None:
            live = self._indexes.identity
        else:
            root = self.settings.data_dir / "indexes"
            try:
                version = int(read_json(root / "CURRENT.json")["version"])
                manifest = read_vector_manifest(root / f"v{version}" / "vectors")
            except (OSError, KeyError, ValueError, TypeError, IndexMissing, IndexCorrupt, VectorIndexCorrupt):
                return None  # none, or unreadable (opening the indexes rebuilds it)
            live = EmbeddingIdentity(manifest.model, manifest.model_fingerprint, manifest.dim)
        for candidate in (given, self.embedder):
            if candidate is not None and candidate.fingerprint == live.fingerprint:
                return candidate
        from ingest.embedder_st import SentenceTransformerEmbedder

        try:
            loaded = SentenceTransformerEmbedder.from_settings(self.settings.model_copy(update={"embedding_model": live.model}))
        except Exception as exc:
            raise GateUnusable(f"the live version was built with {live.model!r}, which cannot be loaded to measure it "
                               f"({type(exc).__name__}: {exc})") from exc
        if loaded.fingerprint != live.fingerprint:
            raise GateUnusable(f"the live version was built with {live.model!r} (fingerprint {live.fingerprint[:12]}), but that "
                               f"model now loads as {loaded.fingerprint[:12]}: its own figures cannot be measured")
        return loaded

    def _embed_all(self) -> tuple[np.ndarray, np.ndarray, set[int]]:
        """Every chunk's vector from the configured model, in memory (as the new vector index
        holds them anyway), and the documents they belong to."""
        ids: list[int] = []
        parts: list[np.ndarray] = []
        documents: set[int] = set()
        for rows in self._embedding_texts():
            parts.append(self.embedder.embed_documents([text for _, _, text in rows]))
            ids.extend(cid for cid, _, _ in rows)
            documents.update(doc for _, doc, _ in rows)
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.embedder.dimension), np.float32)
        return np.asarray(ids, dtype=np.int64), vectors.astype(np.float32, copy=False), documents

    def _stored_embeddings(self) -> tuple[np.ndarray, np.ndarray, set[int]]:
        ids: list[int] = []
        blobs: list[bytes] = []
        for rows in self.store.iter_chunks_for_index():
            for chunk_id, _doc, _text, blob, _groups in rows:
                if blob is not None:
                    ids.append(chunk_id)
                    blobs.append(blob)
        return np.asarray(ids, dtype=np.int64), decode_vectors(blobs, self.embedder.dimension), set()

    def _embedding_texts(self, batch: int = 512):
        """Batches of (chunk id, document id, text to embed), every chunk in id order."""
        prefix_budget = self.settings.chunk_prefix_tokens
        rows: list[tuple[int, int, str]] = []
        for cid, doc_id, title, heading_path, context, text, document_context in self.store.chunks_to_embed():
            rows.append((cid, doc_id, embedding_text(title, heading_path or [], context, text, self.tokens, prefix_budget, document_context)))
            if len(rows) >= batch:
                yield rows
                rows = []
        if rows:
            yield rows

    def _reembed(self, progress: bool | None = None) -> None:
        """New vectors for every chunk with the configured model; chunk ids stay the same."""
        fingerprint = self.embedder.fingerprint
        for rows in self._embedding_texts():
            vectors = self.embedder.embed_documents([text for _, _, text in rows])
            self.store.replace_embeddings([(cid, vectors[i]) for i, (cid, _, _) in enumerate(rows)], fingerprint,
                                          sorted({doc for _, doc, _ in rows}))
        # The old index's vectors are from another model: start the rebuild from scratch.
        if self._indexes is not None:
            self._indexes.identity = self.identity

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._parser_pool is not None:
            self._parser_pool.close()
            self._parser_pool = None
        if self._ray_cluster is not None:
            self._ray_cluster.close()
            self._ray_cluster = None
        if self._indexes is not None:
            self._indexes.close()
        if self._pipeline is not None:
            self._pipeline.close()
        if isinstance(self._embedder, QueryBatcher):  # the server's: stop its batching thread
            self._embedder.close()
        self.engine.dispose()


@dataclass(frozen=True)
class GatedReindex:
    """A gated reindex that switched: the new version and the gate's figures."""

    version: int
    gate: dict


@dataclass(frozen=True)
class _IndexView:
    """An index pair as a ``Retriever`` reads it: a version being measured, not yet live."""

    vectors: VectorIndex
    keyword: object
    position: int


def _identity_of(embedder: Embedder) -> EmbeddingIdentity:
    return EmbeddingIdentity(embedder.model_name, embedder.fingerprint, embedder.dimension)


def _token_counter(embedder: Embedder) -> TokenCounter:
    """Chunk budgets counted with the embedder's own tokenizer."""
    from ingest.tokens import HFTokenCounter

    path = embedder.tokenizer_path()
    if path is None:
        from ingest.tokens import RegexTokenCounter

        log.warning("embedder has no tokenizer files; chunk budgets use a regex token estimate")
        return RegexTokenCounter()
    return HFTokenCounter.from_model_path(path)


class _BorrowedPool:
    def __init__(self, pool, lock: threading.Lock):
        self.pool, self.lock = pool, lock

    def __enter__(self):
        self.lock.acquire()
        return self.pool

    def __exit__(self, *exc) -> None:
        self.lock.release()
