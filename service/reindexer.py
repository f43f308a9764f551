"""Background reindexing: one rebuild at a time on its own thread, while searches continue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from index.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexState:
    running: bool
    started_at: datetime | None
    finished_at: datetime | None
    version: int | None  # the index version the last finished rebuild switched to
    error: str | None


class Reindexer:
    """Runs ``rebuild(reembed)`` (``Groundwork.reindex``) in one background thread."""

    def __init__(self, rebuild: Callable[[bool], int]):
        self._rebuild = rebuild
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started_at: datetime | None = None
        self._finished_at: datetime | None = None
        self._version: int | None = None
        self._error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, reembed: bool) -> bool:
        """False when a rebuild is already running (the caller reports a conflict)."""
        with self._lock:
            if self.running:
                return False
            self._started_at, self._finished_at, self._error = utcnow(), None, None
            self._thread = threading.Thread(target=self._run, args=(reembed,), name="reindex", daemon=True)
            self._thread.start()
            return True

    def _run(self, reembed: bool) -> None:
        try:
            self._version = self._rebuild(reembed)
            log.info("reindex finished: index version %s", self._version)
        except Exception as exc:
            log.exception("reindex failed")
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finished_at = utcnow()

    def state(self) -> ReindexState:
        return ReindexState(running=self.running, started_at=self._started_at, finished_at=self._finished_at,
                            version=self._version, error=self._error)
