"""The audit trail: who saw what, written off the request path, durable before the answer.

Requests hand their row to a bounded queue; one writer thread takes everything queued, inserts
it in one transaction and commits (a group commit: concurrent requests share one commit and one
fsync). What a request waits for is the ``audit_mode`` setting:

- ``acknowledged`` (default): the response is sent only after its row's batch has committed, so
  the trail survives a crash up to the last answered request. A row that cannot be written
  (database down, queue still full after ``audit_queue_wait_s``) fails the request with 503
  ``audit_unavailable``: nothing is ever answered unaudited.
- ``buffered``: the request only enqueues; a crash loses the rows not yet committed (at most
  the queue), and a full queue drops the row, counted as ``dropped``.
- ``off``: nothing is recorded.

Rows name only what the caller was given (the hits of its own, access-filtered query; a chunk
it was allowed to read), so nothing filtered out or denied ever appears in them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import timedelta

import anyio

from index.audit_store import AuditRecord, AuditStore
from index.errors import StorageUnavailable
from index.models import utcnow
from index.settings import Settings
from service.auth import KeyInfo

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
_STOP = object()


class AuditUnavailable(StorageUnavailable):
    """The audit row of a request could not be committed: the request is refused (503)."""

    code = "audit_unavailable"


def query_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditTrail:
    """The queue and its writer thread. ``on_outcome(outcome, count)`` counts rows ``written``,
    ``failed`` (their transaction did not commit) and ``dropped`` (buffered mode, queue full)."""

    def __init__(self, store: AuditStore, settings: Settings, *, on_outcome: Callable[[str, int], None] | None = None,
                 prune_every_s: float = PRUNE_EVERY_S):
        self.store = store
        self.mode = settings.audit_mode
        self.keep_query_text = settings.audit_query_text == "text"
        self.batch_size = settings.audit_batch_size
        self.commit_window_s = settings.audit_commit_window_ms / 1000.0
        self.queue_wait_s = settings.audit_queue_wait_s
        self.retention = timedelta(days=settings.audit_retention_days) if settings.audit_retention_days > 0 else None
        self.on_outcome = on_outcome
        self.prune_every_s = prune_every_s
        self._queue: queue.Queue = queue.Queue(maxsize=settings.audit_queue_size)
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._dropped_warned = 0.0

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.error("audit queue still full at shutdown; %d row(s) not written", self._queue.qsize())
        self._thread.join(timeout=timeout_s)
        self._thread = None

    # --- building rows -----------------------------------------------------------------------------
    def event(self, caller: KeyInfo, route: str, action: str, status: int, *, query: str | None = None,
              hits: Iterable = (), document_ids: Iterable[int] = (), chunk_ids: Iterable[int] = (),
              request_id: str | None = None) -> AuditRecord:
        """A row for ``caller``: ``hits`` (search results) add their chunk and document ids."""
        docs, chunks = list(document_ids), list(chunk_ids)
        for hit in hits:
            chunks.append(hit.chunk_id)
            docs.append(hit.document_id)
        return AuditRecord(
            key_prefix=caller.prefix, key_name=caller.name, principal=caller.principal.id, route=route, action=action,
            status=status, query=query if (query is not None and self.keep_query_text) else None,
            query_sha256=query_hash(query) if query is not None else None, document_ids=list(dict.fromkeys(docs)),
            chunk_ids=list(dict.fromkeys(chunks)), request_id=request_id,
        )

    # --- recording ---------------------------------------------------------------------------------
    async def record(self, row: AuditRecord) -> None:
        """From the event loop: returns once the row is committed (acknowledged) or queued."""
        if not self.enabled:
            return
        future: Future | None = Future() if self.mode == "acknowledged" else None
        try:
            self._queue.put_nowait((row, future))
        except queue.Full:
            if future is None:
                self._dropped()
                return
            try:  # wait for room on a worker thread, never on the event loop
                await anyio.to_thread.run_sync(self._queue.put, (row, future), True, self.queue_wait_s)
            except queue.Full:
                raise AuditUnavailable("the audit queue is full; the request was not served") from None
        if future is not None:
            await asyncio.wrap_future(future)

    def record_blocking(self, row: AuditRecord) -> None:
        """From a worker thread: the same as ``record``."""
        if not self.enabled:
            return
        future: Future | None = Future() if self.mode == "acknowledged" else None
        try:
            self._queue.put((row, future), block=future is not None, timeout=self.queue_wait_s)
        except queue.Full:
            if future is None:
                self._dropped()
                return
            raise AuditUnavailable("the audit queue is full; the request was not served") from None
        if future is not None:
            future.result()

    def _dropped(self) -> None:
        self._count("dropped", 1)
        now = time.monotonic()
        if now - self._dropped_warned > 60:
            self._dropped_warned = now
            log.warning("audit queue full (%d rows): rows are being dropped (buffered mode)", self._queue.maxsize)

    def _count(self, outcome: str, n: int) -> None:
        if self.on_outcome is not None and n:
            try:
                self.on_outcome(outcome, n)
            except Exception:
                log.exception("audit metrics hook failed")

    # --- the writer ----------------------------------------------------------------------------------
    def _run(self) -> None:
        last_batch = 0
        while True:
            try:
                item = self._queue.get(timeout=min(self.prune_every_s, 60.0))
            except queue.Empty:
                self._maybe_prune()
                continue
            stop = item is _STOP
            batch = [] if stop else [item]
            if not stop and self.commit_window_s > 0 and last_batch > 1:
                # Requests are arriving concurrently (the last commit took several rows): let the
                # ones in flight join this commit. A lone caller (last batch of one) never waits.
                time.sleep(self.commit_window_s)
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    continue
                batch.append(more)
            if batch:
                self._write(batch)
            last_batch = len(batch)
            if stop:
                return
            self._maybe_prune()

    def _write(self, batch: list[tuple[AuditRecord, Future | None]]) -> None:
        try:
            self.store.insert([row for row, _ in batch])
        except Exception as exc:
            log.error("audit rows could not be written (%d lost): %s: %s", len(batch), type(exc).__name__, exc)
            self._count("failed", len(batch))
            failure = AuditUnavailable(f"the audit row could not be written: {type(exc).__name__}")
            for _row, future in batch:
                _settle(future, failure)
            return
        self._count("written", len(batch))
        for _row, future in batch:
            _settle(future, None)

    def _maybe_prune(self) -> None:
        if self.retention is None or time.monotonic() - self._last_prune < self.prune_every_s:
            return
        self._last_prune = time.monotonic()
        try:
            removed = self.prune()
            if removed:
                log.info("pruned %d audit row(s) older than the retention", removed)
        except Exception as exc:
            log.warning("audit pruning failed: %s", exc)

    def prune(self) -> int:
        """Delete rows older than ``audit_retention_days`` (none when it is 0)."""
        if self.retention is None:
            return 0
        return self.store.prune(utcnow() - self.retention)


def _settle(future: Future | None, failure: Exception | None) -> None:
    """Tell a waiting request; one that went away meanwhile (its future cancelled) is skipped."""
    if future is None or not future.set_running_or_notify_cancel():
        return
    if failure is None:
        future.set_result(None)
    else:
        future.set_exception(failure)
