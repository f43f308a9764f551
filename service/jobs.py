"""Background ingestion jobs submitted over HTTP.

A job is an ``IngestJob`` row (``index.job_store``): the request creates it ``queued`` and
returns at once; a small pool of worker threads claims queued rows (a conditional UPDATE, so
two processes sharing a database never run the same job) and runs them through the ordinary
ingestion path. Because the row is the queue, nothing is lost when the process dies: at
start-up, jobs whose owner is gone are marked ``interrupted`` and queued again, and re-running
a job skips every file that was already committed unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from index.errors import InputRejected
from index.job_store import job_owner
from index.models import IngestJob
from ingest.pipeline import JobSummary
from ingest.source_names import storable

log = logging.getLogger(__name__)

SUBMITTED_VIA = "http"


class PathNotAllowed(InputRejected, ValueError):
    """A path outside every configured ingest root (directly, via ``..`` or via a symlink)."""

    code = "path_forbidden"


def inside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path``, with every symlink and ``..`` resolved, lies inside one of ``roots``."""
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in (Path(r).resolve() for r in roots))


def check_paths(paths: Sequence[str], roots: Sequence[Path]) -> list[Path]:
    """The requested paths, each verified to resolve inside an ingest root."""
    if not roots:
        raise PathNotAllowed("no ingest roots are configured (GROUNDWORK_INGEST_ROOTS); server-side ingestion is disabled")
    out: list[Path] = []
    for raw in paths:
        if not raw or "\x00" in raw:
            raise PathNotAllowed("empty or malformed path")
        path = Path(raw)
        if not path.is_absolute():
            raise PathNotAllowed(f"{raw[:200]!r} is not an absolute path")
        try:
            allowed = inside_roots(path, roots)
        except (OSError, ValueError):  # unresolvable: too long, a symlink loop, ...
            raise PathNotAllowed(f"{raw[:200]!r} cannot be resolved") from None
        if not allowed:
            raise PathNotAllowed(f"{raw[:200]!r} is outside the ingest roots")
        out.append(path)
    return out


def escaping_files(paths: Sequence[Path], roots: Sequence[Path]) -> list[Path]:
    """Files the ingest walk would reach through a symlink pointing outside the roots."""
    bad: list[Path] = []
    root_paths = [Path(r).resolve() for r in roots]
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.startswith("."):
                        continue
                    candidate = Path(dirpath) / name
                    if candidate.is_symlink() and not inside_roots(candidate, root_paths):
                        bad.append(candidate)
        elif not inside_roots(path, root_paths):
            bad.append(path)
    return bad


class JobRunner:
    """A bounded pool of threads that run queued ingestion jobs.

    ``ingest`` is ``Groundwork.ingest``; ``ray_address`` runs jobs on a Ray cluster; ``on_finished`` receives each job's summary (for metrics).
    """

    def __init__(self, store, ingest: Callable[..., JobSummary], *, workers: int, roots: Sequence[Path],
                 on_finished: Callable[[str, JobSummary | None], None] | None = None, poll_s: float = 5.0,
                 ray_address: str | None = None):
        self.store = store
        self.ray_address = ray_address  # jobs parse and embed on this Ray cluster (Settings.ray_address)
        self.ingest = ingest
        self.workers = max(0, workers)
        self.roots = [Path(r) for r in roots]
        self.on_finished = on_finished
        self.poll_s = poll_s
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.owner = job_owner()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._stopping.clear()
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"ingest-job-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking jobs. A job in flight keeps its row 'running'; the next start re-queues it."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads.clear()

    def recover(self) -> int:
        """Jobs a dead process left behind go back to the queue (re-running skips finished files)."""
        self.store.jobs.mark_orphaned()
        requeued = self.store.jobs.requeue_interrupted(SUBMITTED_VIA)  # a command-line job: its user re-runs it
        if requeued:
            log.warning("re-queued %d interrupted ingestion job(s)", requeued)
        return requeued

    # --- queue ---------------------------------------------------------------------------------------
    def submit(self, paths: Sequence[Path], *, collection: str, groups: Sequence[str], sync: bool, metadata: dict | None,
               submitted_by: str) -> str:
        params = {"paths": [str(p) for p in paths], "collection": collection, "groups": list(groups), "sync": sync,
                  "metadata": metadata or {}, "submitted_via": SUBMITTED_VIA, "submitted_by": submitted_by}
        job_id = self.store.jobs.create(params)
        with self._wake:
            self._wake.notify()
        return job_id

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.jobs.claim_next(self.owner)
            except Exception:
                log.exception("could not read the job queue")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=self.poll_s)
                continue
            self._run(job)

    def _run(self, job: IngestJob) -> None:
        params = job.params or {}
        paths = [Path(p) for p in params.get("paths", [])]
        summary: JobSummary | None = None
        try:
            # The tree may have changed since submission: check the walk, not just the roots.
            check_paths([str(p) for p in paths], self.roots)
            escapes = escaping_files(paths, self.roots)
            if escapes:
                raise PathNotAllowed(f"{len(escapes)} file(s) are symlinks that leave the ingest roots, e.g. {escapes[0]}")
            # The walk above is only a first look: a file swapped for a symlink after it is
            # refused where it is opened (confine_to), alone.
            summary = self.ingest(paths, collection=params.get("collection", "default"), groups=params.get("groups", []),
                                  sync=bool(params.get("sync")), metadata=params.get("metadata") or None, job_id=job.id, progress=False,
                                  confine_to=self.roots, ray_address=self.ray_address)
        except Exception as exc:
            log.warning("ingestion job %s failed: %s", job.id, exc, extra={"job_id": job.id})
            self.store.jobs.fail_unfinished(job.id, storable(f"{type(exc).__name__}: {exc}")[:4000])
        finally:
            if self.on_finished is not None:
                try:
                    self.on_finished(job.id, summary)
                except Exception:
                    log.exception("job completion hook failed")

