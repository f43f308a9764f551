"""Ingestion job rows (index.job_store): the record of a run, the queue, orphans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from hypothesis import given
from hypothesis import strategies as st

from index.job_store import ORPHANED_MESSAGE, job_owner, owner_alive
from index.models import JobStatus


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_owner_is_host_and_pid():
    assert job_owner() == f"{socket.gethostname()}:{os.getpid()}"
    assert job_owner("node-7", 42) == "node-7:42"
    assert owner_alive(job_owner())
    assert not owner_alive(job_owner(pid=_dead_pid()))
    assert owner_alive(job_owner("another-host", 1))  # cannot be checked from here: counts as alive


@given(st.one_of(st.none(), st.text(max_size=40)))
def test_any_recorded_owner_is_judged_without_raising(owner):
    assert owner_alive(owner) in (True, False)


def test_a_run_is_recorded(any_store):
    jobs = any_store.jobs
    job_id = jobs.create({"paths": ["/a"], "collection": "c"})
    assert jobs.create({"paths": ["/other"]}, job_id) == job_id  # a re-run keeps the first record
    jobs.start(job_id)
    jobs.record_file(job_id, path="/a/x.txt", status="failed", reason="corrupt", detail="bad", chunks=0, document_id=None,
                     counts={"failed": 1})
    jobs.record_file(job_id, path="/a/y.txt", status="added", reason=None, detail=None, chunks=3, document_id=7,
                     counts={"failed": 1, "added": 1})
    job, failures = jobs.get(job_id)
    assert (job.status, job.owner, job.params["paths"], job.counts) == (JobStatus.running, job_owner(), ["/a"], {"failed": 1, "added": 1})
    assert [(f.path, f.reason, f.detail) for f in failures] == [("/a/x.txt", "corrupt", "bad")]
    jobs.finish(job_id, JobStatus.done, {"failed": 1, "added": 1, "files": 2})
    job, _ = jobs.get(job_id)
    assert job.status == JobStatus.done and job.finished_at is not None and job.counts["files"] == 2
    assert jobs.get("no-such-job") is None


def test_many_files_are_recorded_in_one_call(any_store):
    jobs = any_store.jobs
    job_id = jobs.create({"paths": ["/b"]})
    jobs.record_files(job_id, [], counts={"added": 0})  # nothing to record: no transaction, no error
    jobs.record_files(job_id, [
        {"path": "/b/x.txt", "status": "added", "reason": None, "detail": None, "chunks": 2, "document_id": 1},
        {"path": "/b/y.txt", "status": "failed", "reason": "empty", "detail": "file is empty", "chunks": 0, "document_id": 2},
    ], counts={"added": 1, "failed": 1})
    job, failures = jobs.get(job_id)
    assert job.counts == {"added": 1, "failed": 1}
    assert [(f.path, f.reason) for f in failures] == [("/b/y.txt", "empty")]


def test_a_queued_job_is_claimed_once(any_store):
    jobs = any_store.jobs
    first = jobs.create({"n": 1})
    claims: list[str | None] = []

    def claim(n: int) -> None:
        job = jobs.claim_next(f"host:{n}")
        claims.append(job.id if job else None)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims, key=lambda c: c is None) == [first, None, None, None]
    job, _ = jobs.get(first)
    assert job.status == JobStatus.running and job.owner.startswith("host:")
    jobs.fail_unfinished(first, "boom")
    jobs.finish(first, JobStatus.done, {})  # finishing later wins; failing a finished job does not
    jobs.fail_unfinished(first, "late")
    assert jobs.get(first)[0].status == JobStatus.done


def test_orphans_are_interrupted_and_server_jobs_requeued(any_store):
    jobs = any_store.jobs
    dead = job_owner(pid=_dead_pid())
    server_job = jobs.create({"submitted_via": "http"})
    cli_job = jobs.create({})
    live_job = jobs.create({"submitted_via": "http"})
    jobs.start(server_job, dead)
    jobs.start(cli_job, dead)
    jobs.start(live_job)
    assert jobs.mark_orphaned() == 2
    assert jobs.get(server_job)[0].error == ORPHANED_MESSAGE
    assert jobs.requeue_interrupted("http") == 1
    assert [jobs.get(j)[0].status for j in (server_job, cli_job, live_job)] == [JobStatus.queued, JobStatus.interrupted, JobStatus.running]
    assert jobs.get(server_job)[0].owner is None
