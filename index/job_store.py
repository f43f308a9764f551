"""Ingestion job rows: the job queue and each job's record, behind one small class.

A job is an ``IngestJob`` row, written by the ingestion run (``ingest.pipeline``), the
server's job runner (``service.jobs``) and the upload route, and its files are
``IngestJobFile`` rows. A running job names its owner, ``host:pid`` (``job_owner``), so that
a later process can tell a job whose process died (``mark_orphaned``) from one still running.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from index.models import IngestJob, IngestJobFile, JobStatus, utcnow

ORPHANED_MESSAGE = "the process running this job stopped before it finished; re-run it to resume"
MAX_FAILED_FILES_SHOWN = 100


def job_owner(host: str | None = None, pid: int | None = None) -> str:
    """The owner recorded on a running job: ``host:pid``, this process by default."""
    return f"{host or socket.gethostname()}:{os.getpid() if pid is None else pid}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``owner`` may still be running. A process on another
    host cannot be checked from here, so it counts as alive."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """Every read and write of ``ingest_job`` and ``ingest_job_file``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # --- one job's record ---------------------------------------------------------------------
    def create(self, params: Mapping, job_id: str | None = None) -> str:
        """A queued job with ``params``; an existing ``job_id`` is kept as it is (a re-run)."""
        job_id = job_id or uuid.uuid4().hex
        with Session(self.engine) as session, session.begin():
            if session.get(IngestJob, job_id) is None:
                session.add(IngestJob(id=job_id, status=JobStatus.queued, params=dict(params)))
        return job_id

    def start(self, job_id: str, owner: str | None = None) -> None:
        """Running, owned by ``owner`` (this process by default); a previous error is cleared."""
        self._set(job_id, status=JobStatus.running, started_at=utcnow(), owner=owner or job_owner(), error=None)

    def finish(self, job_id: str, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        """Done, failed or interrupted, with its final counts."""
        values: dict = {"status": status, "finished_at": utcnow(), "counts": dict(counts)}
        if error is not None:
            values["error"] = error
        self._set(job_id, **values)

    def record_file(self, job_id: str, *, path: str, status: str, reason: str | None, detail: str | None, chunks: int,
                    document_id: int | None, counts: Mapping[str, int]) -> None:
        """One file's outcome and the job's running counts, in one transaction."""
        with Session(self.engine) as session, session.begin():
            session.add(IngestJobFile(job_id=job_id, path=path, status=status, reason=reason, detail=detail, chunks=chunks,
                                      document_id=document_id))
            session.execute(update(IngestJob).where(IngestJob.id == job_id).values(counts=dict(counts), updated_at=utcnow()))

    def record_files(self, job_id: str, files: Sequence[Mapping[str, Any]], *, counts: Mapping[str, int]) -> None:
        """Many files' outcomes (``record_file``'s keywords, less ``counts``) and the job's running
        counts, in one transaction: one commit for a batch of documents rather than one each."""
        if not files:
            return
        with Session(self.engine) as session, session.begin():
            session.add_all([IngestJobFile(job_id=job_id, **dict(f)) for f in files])
            session.execute(update(IngestJob).where(IngestJob.id == job_id).values(counts=dict(counts), updated_at=utcnow()))

    def get(self, job_id: str) -> tuple[IngestJob, list[IngestJobFile]] | None:
        """The job and its failed files (at most ``MAX_FAILED_FILES_SHOWN``): what a status request returns."""
        with Session(self.engine) as session:
            job = session.get(IngestJob, job_id)
            if job is None:
                return None
            failures = session.execute(
                select(IngestJobFile).where(IngestJobFile.job_id == job_id, IngestJobFile.status == "failed")
                .order_by(IngestJobFile.id).limit(MAX_FAILED_FILES_SHOWN)
            ).scalars().all()
            session.expunge(job)
            for failure in failures:
                session.expunge(failure)
            return job, list(failures)

    def recent(self, *, status: str | None = None, limit: int = 50) -> list[IngestJob]:
        """The newest jobs first (optionally of one status): what the admin job list shows."""
        statement = select(IngestJob).order_by(IngestJob.created_at.desc(), IngestJob.id).limit(limit)
        if status:
            statement = statement.where(IngestJob.status == status)
        with Session(self.engine) as session:
            jobs = session.execute(statement).scalars().all()
            for job in jobs:
                session.expunge(job)
            return list(jobs)

    def _set(self, job_id: str, **values) -> None:
        values["updated_at"] = utcnow()
        with Session(self.engine) as session, session.begin():
            session.execute(update(IngestJob).where(IngestJob.id == job_id).values(**values))

    # --- the queue ------------------------------------------------------------------------------
    def claim_next(self, owner: str | None = None) -> IngestJob | None:
        """The oldest queued job, now running and owned by ``owner``. The claim is a
        conditional update, so two processes sharing the database never run the same job."""
        owner = owner or job_owner()
        with Session(self.engine) as session:
            candidates = session.execute(
                select(IngestJob.id).where(IngestJob.status == JobStatus.queued).order_by(IngestJob.created_at).limit(5)
            ).scalars().all()
        for job_id in candidates:
            with Session(self.engine) as session, session.begin():
                claimed = session.execute(
                    update(IngestJob).where(IngestJob.id == job_id, IngestJob.status == JobStatus.queued)
                    .values(status=JobStatus.running, owner=owner, started_at=utcnow(), updated_at=utcnow())
                ).rowcount
                if claimed:
                    job = session.get(IngestJob, job_id)
                    session.expunge(job)
                    return job
        return None

    def fail_unfinished(self, job_id: str, error: str) -> None:
        """Failed with ``error``, unless the job already finished on its own."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(IngestJob).where(IngestJob.id == job_id, IngestJob.status.in_([JobStatus.running, JobStatus.queued]))
                .values(status=JobStatus.failed, error=error, finished_at=utcnow(), updated_at=utcnow())
            )

    def mark_orphaned(self) -> int:
        """Jobs left running by a process that died become interrupted (they can be re-run)."""
        changed = 0
        with Session(self.engine) as session, session.begin():
            for job in session.execute(select(IngestJob).where(IngestJob.status == JobStatus.running)).scalars():
                if not owner_alive(job.owner):
                    job.status = JobStatus.interrupted
                    job.error = ORPHANED_MESSAGE
                    job.updated_at = utcnow()
                    changed += 1
        return changed

    def requeue_interrupted(self, submitted_via: str) -> int:
        """Interrupted jobs that came in through ``submitted_via`` go back to the queue;
        others (a command-line job) are left for their user to re-run."""
        requeued = 0
        with Session(self.engine) as session, session.begin():
            for job in session.execute(select(IngestJob).where(IngestJob.status == JobStatus.interrupted)).scalars().all():
                if (job.params or {}).get("submitted_via") != submitted_via:
                    continue
                job.status = JobStatus.queued
                job.owner = None
                job.updated_at = utcnow()
                requeued += 1
        return requeued
