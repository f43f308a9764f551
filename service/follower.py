"""Following the database from a background thread: what keeps a server's indexes current.

Changes made elsewhere (an ingest by the CLI, a delete, a reindex switch by another process)
become searchable within ``interval_s``, and the database's integrity check is re-run when the
last one is older than configured. ``Groundwork.follow_in_background`` owns the one follower.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("groundwork.server")

FOLLOW_INTERVAL_S = 1.0


class IndexFollower:
    """Calls ``refresh_indexes`` every interval, then ``check_database``.

    A failed refresh (a full disk under the indexes) is retried for as long as it fails, with
    a backoff up to ``MAX_BACKOFF`` intervals: the index stays behind meanwhile (health says by
    how much) and catches up once the write succeeds; nothing is skipped.
    """

    MAX_BACKOFF = 30

    def __init__(self, groundwork, interval_s: float = FOLLOW_INTERVAL_S):
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
