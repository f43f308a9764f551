"""`groundwork serve`: the production entry point around the HTTP app.

Refuses to run without authentication anywhere but on loopback, loads every model before
accepting traffic (so the first request does not pay for it), follows the database from a
background thread (ingests by the CLI, deletes, a reindex switch by another process show up
within a second), and micro-batches concurrent query embeddings.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from index.settings import AuthMode, Settings

log = logging.getLogger("groundwork.server")

EXIT_UNSAFE = 2
REFRESH_INTERVAL_S = 1.0


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_binding(settings: Settings) -> str | None:
    """Why this configuration must not start, or None."""
    if settings.auth == AuthMode.off and not is_loopback(settings.host):
        return (f"refusing to serve with auth=off on {settings.host}: without authentication every caller is an all-access admin. "
                "Bind to 127.0.0.1 / ::1 / localhost for local trials, or enable auth (GROUNDWORK_AUTH=required) and create keys "
                "with `groundwork keys create`.")
    return None


class QueryBatcher:
    """Embedder wrapper that runs concurrent single-query calls through the model together.

    One batching thread owns the model: it takes every query waiting when the model frees up
    (up to ``max_batch``) and runs them as one batch. An idle server embeds a lone query at
    once, with no waiting window; under load the batch grows with the queue, so the model runs
    once per batch instead of once per query, which on a CPU is the difference between queueing
    and serving. Everything but ``embed_queries`` is passed through unchanged; calls with
    several texts are not held back.
    """

    def __init__(self, inner, *, query_embedder=None, max_batch: int = 64):
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
        return getattr(self._inner, name)

    def embed_queries(self, texts):
        texts = list(texts)
        if len(texts) != 1:
            return self._inner.embed_queries(texts)
        return self.submit(texts[0]).result()[None, :]

    def submit(self, text: str) -> Future:
        """The query's vector, later: lets an async caller wait without holding a thread."""
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


class IndexFollower:
    """Calls ``refresh_indexes`` every interval so changes made elsewhere become searchable,
    and re-runs the database's integrity check when the last one is older than configured.

    A failed refresh (a full disk under the indexes) is retried for as long as it fails, with
    a backoff up to ``MAX_BACKOFF`` intervals: the index stays behind meanwhile (health says by
    how much) and catches up once the write succeeds; nothing is skipped.
    """

    MAX_BACKOFF = 30

    def __init__(self, groundwork, interval_s: float = REFRESH_INTERVAL_S):
        self.groundwork = groundwork
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.interval_s * min(2 ** failures, self.MAX_BACKOFF)):
            try:
                self.groundwork.refresh_indexes()
                if failures:
                    log.warning("indexes caught up after %d failed attempt(s)", failures)
                failures = 0
            except Exception as exc:
                failures += 1
                # The first failure with its traceback; then one line per attempt, not a flood.
                log.warning("refreshing the indexes failed (attempt %d; retrying): %s", failures, exc, exc_info=failures == 1)
            try:
                self.groundwork.check_database()
            except Exception as exc:
                log.warning("database integrity check could not run: %s", exc)


def build_groundwork(settings: Settings):
    """Groundwork with the configured embedder wrapped for query micro-batching."""
    from ingest.embedder_st import SentenceTransformerEmbedder
    from service.engine import Groundwork

    documents = SentenceTransformerEmbedder.from_settings(settings)
    queries = None
    if documents.backend in ("openvino", "onnx") and settings.query_embedding_threads != settings.embedding_threads:
        # The same exported model, compiled again with its own thread count: ingestion's large
        # batches want every core, the server's small query batches one (torch threads are
        # process-wide, so the torch backend shares one setting).
        queries = SentenceTransformerEmbedder.from_settings(settings.model_copy(update={"embedding_threads": settings.query_embedding_threads}))
        if queries.fingerprint != documents.fingerprint:
            raise RuntimeError("the query embedder does not match the document embedder")
    return Groundwork(settings, embedder=QueryBatcher(documents, query_embedder=queries))


def remove_stale_spool(uploads_dir: Path, older_than_s: float) -> int:
    """Delete upload spool files (``.incoming-*``) older than ``older_than_s``: an upload whose
    process died while copying it. Younger ones may belong to another live server process."""
    removed = 0
    try:
        entries = list(Path(uploads_dir).glob(".incoming-*"))
    except OSError:
        return 0
    cutoff = time.time() - older_than_s
    for entry in entries:
        try:
            if entry.is_file() and not entry.is_symlink() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        log.warning("removed %d stale upload spool file(s) from %s", removed, uploads_dir)
    return removed


def warm_up(groundwork) -> None:
    """Load models and indexes now, not on the first request."""
    started = time.perf_counter()
    groundwork.refresh_indexes()
    _reranker, status = groundwork.reranker_state
    try:
        generator = getattr(groundwork.generator, "name", groundwork.settings.generator)
    except Exception as exc:  # answers fall back to the extractive generator, per request
        generator = f"unavailable ({type(exc).__name__}: {exc})"
        log.warning("generator %s: answers will be extractive", generator)
    stats = groundwork.stats()
    log.info("ready in %.1fs: %s vectors, reranker %s, generator %s", time.perf_counter() - started, stats.get("vectors"), status, generator,
             extra={"documents": stats.get("documents"), "index_version": stats.get("index_version")})


class _Shutdown(Exception):
    """SIGTERM, turned into an exception so that clean-up runs (as it does for Ctrl-C)."""


@contextmanager
def _sigterm_as_shutdown():
    def handler(_signum, _frame):
        raise _Shutdown()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings, *, ingest_paths: Sequence[Path] = (), groundwork=None) -> int:
    """Run the HTTP service until interrupted. Returns a process exit code."""
    import uvicorn

    from service.app import create_app
    from service.logging_setup import configure_logging

    reason = unsafe_binding(settings)
    if reason is not None:
        print(f"groundwork: {reason}", file=sys.stderr)
        return EXIT_UNSAFE
    configure_logging(logging.INFO)
    if settings.auth == AuthMode.off:
        banner = f"AUTH IS OFF (dev mode): every request to {settings.host}:{settings.port} is an all-access admin"
        log.warning(banner)
        print(f"*** {banner} ***", file=sys.stderr)
    remove_stale_spool(settings.data_dir / "uploads", settings.upload_spool_stale_s)
    gw = groundwork or build_groundwork(settings)
    follower = IndexFollower(gw)
    try:
        if ingest_paths:
            summary = gw.ingest(list(ingest_paths), progress=False)
            log.info("ingested before serving", extra=summary.to_json() | {"files": len(summary.files)})
        warm_up(gw)
        follower.start()
        gw.auto_refresh = False  # the follower keeps indexes current, off the request path
        app = create_app(gw)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                                timeout_graceful_shutdown=10, lifespan="on")
        with _sigterm_as_shutdown():
            try:
                uvicorn.Server(config).run()
            except (KeyboardInterrupt, _Shutdown):
                pass  # uvicorn has already shut down gracefully and re-raised the signal
        log.info("stopped")
        return 0
    finally:
        follower.stop()
        gw.close()
