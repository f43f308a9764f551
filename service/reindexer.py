"""Background reindexing: one rebuild at a time on its own thread, while searches continue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from index.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexState:
    running: bool
    started_at: datetime | None
    finished_at: datetime | None
    version: int | None  # the index version the last finished rebuild switched to
    error: str | None
    gate: dict | None = None  # the quality gate's figures when the last rebuild had one (passed or refused)


class Reindexer:
    """Runs ``rebuild(reembed)`` (``Groundwork.reindex``), or ``rebuild(reembed, gate=...)``
    behind a quality gate, in one background thread. A gated rebuild returns an object with
    ``version`` and ``gate``; a refusal raises an exception carrying ``gate``."""

    def __init__(self, rebuild: Callable[..., Any]):
        self._rebuild = rebuild
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started_at: datetime | None = None
        self._finished_at: datetime | None = None
        self._version: int | None = None
        self._error: str | None = None
        self._gate: dict | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, reembed: bool, gate: object | None = None) -> bool:
        """False when a rebuild is already running (the caller reports a conflict)."""
        with self._lock:
            if self.running:
                return False
            self._started_at, self._finished_at, self._error, self._gate = utcnow(), None, None, None
            self._thread = threading.Thread(target=self._run, args=(reembed, gate), name="reindex", daemon=True)
            self._thread.start()
            return True

    def _run(self, reembed: bool, gate: object | None) -> None:
        try:
            result = self._rebuild(reembed) if gate is None else self._rebuild(reembed, gate=gate)
            self._version, self._gate = getattr(result, "version", result), getattr(result, "gate", None)
            log.info("reindex finished: index version %s", self._version)
        except Exception as exc:
            self._gate = getattr(exc, "gate", None)
            if self._gate is None:
                log.exception("reindex failed")
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finished_at = utcnow()

    def state(self) -> ReindexState:
        return ReindexState(running=self.running, started_at=self._started_at, finished_at=self._finished_at,
                            version=self._version, error=self._error, gate=self._gate)
