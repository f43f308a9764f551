"""`groundwork serve`: the production entry point around the HTTP app.

Refuses to run without authentication anywhere but on loopback, loads every model before
accepting traffic (so the first request does not pay for it), has the engine follow the
database from a background thread (``Groundwork.follow_in_background``: ingests by the CLI,
deletes, a reindex switch by another process show up within a second), and micro-batches
concurrent query embeddings.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from index.settings import AuthMode, Settings
from service.query.batching import QueryBatcher

log = logging.getLogger("groundwork.server")

EXIT_UNSAFE = 2


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
    groundwork.pipeline  # builds the query pipeline: the embedder, the reranker and the indexes (caught up as they open)
    _reranker, status = groundwork.reranker_state
    try:
        generator = getattr(groundwork.generator, "name", groundwork.settings.generator)
    except Exception as exc:  # answers fall back to the extractive generator, per request
        generator = f"unavailable ({type(exc).__name__}: {exc})"
        log.warning("generator %s: answers will be extractive", generator)
    stats = groundwork.stats()
    log.info("ready in %.1fs: %s vectors, reranker %s, generator %s", time.perf_counter() - started, stats.get("vectors"), status, generator,
             extra={"documents": stats.get("documents"), "index_version": stats.get("index_version")})


def uvicorn_config(app, settings: Settings, **options):
    """uvicorn's configuration for the app: its HTTP protocol bounds each request head in time
    and size (``http_header_timeout_s``, ``http_max_header_bytes``; see ``service.http.protocol``),
    idle keep-alive connections close after ``http_keep_alive_s``, and logging stays ours."""
    import uvicorn

    from service.http.protocol import guarded_protocol

    options = {"log_config": None, "access_log": False, "lifespan": "on", **options}
    return uvicorn.Config(app, http=guarded_protocol(settings.http_header_timeout_s, settings.http_max_header_bytes),
                          timeout_keep_alive=settings.http_keep_alive_s, **options)


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

    from service.http.app import create_app
    from service.http.logging_setup import configure_logging
    from service.own_packages import check_own_packages

    check_own_packages()
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
    try:
        if ingest_paths:
            summary = gw.ingest(list(ingest_paths), progress=False)
            log.info("ingested before serving", extra=summary.to_json() | {"files": len(summary.files)})
        warm_up(gw)
        gw.follow_in_background()  # indexes kept current off the request path
        app = create_app(gw)
        config = uvicorn_config(app, settings, host=settings.host, port=settings.port, timeout_graceful_shutdown=10)
        with _sigterm_as_shutdown():
            try:
                uvicorn.Server(config).run()
            except (KeyboardInterrupt, _Shutdown):
                pass  # uvicorn has already shut down gracefully and re-raised the signal
        log.info("stopped")
        return 0
    finally:
        gw.close()  # stops the follower too
