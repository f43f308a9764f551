"""What `groundwork serve` does besides answering: following the indexes, cleaning up."""

from __future__ import annotations

import os
import threading
import time

from service.follower import IndexFollower
from service.server import remove_stale_spool


class FlakyGroundwork:
    """Refreshing fails (a full disk) a few times, then works."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0
        self.database_checks = 0
        self.caught_up = threading.Event()

    def refresh_indexes(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(28, "No space left on device")
        self.caught_up.set()
        return 1

    def check_database(self, max_age_s=None) -> dict:
        self.database_checks += 1
        return {"ok": True}


def test_the_follower_keeps_retrying_until_it_catches_up():
    groundwork = FlakyGroundwork(failures=4)
    follower = IndexFollower(groundwork, interval_s=0.01)
    follower.start()
    try:
        assert groundwork.caught_up.wait(10), f"gave up after {groundwork.calls} attempts"
    finally:
        follower.stop()
    assert groundwork.calls >= 5 and groundwork.database_checks >= 1


def test_stale_upload_spool_files_are_removed_and_fresh_ones_kept(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    stale, fresh, kept = uploads / ".incoming-aaa", uploads / ".incoming-bbb", uploads / "doc.txt"
    for path in (stale, fresh, kept):
        path.write_text("x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(kept, (hour_ago, hour_ago))
    assert remove_stale_spool(uploads, older_than_s=600) == 1
    assert not stale.exists() and fresh.exists() and kept.exists()
    assert remove_stale_spool(tmp_path / "missing", older_than_s=600) == 0


def _run_job(share, **runner_options) -> dict:
    """One server-side job over ``share`` with a recording ingest: the options it was given."""
    from service.jobs import JobRunner

    seen: dict = {}

    def ingest(paths, **kwargs):
        seen.update(kwargs)
        return None

    class Job:
        id = "job-1"
        params = {"paths": [str(share)], "collection": "default"}

    JobRunner(store=None, ingest=ingest, workers=0, roots=[share], **runner_options)._run(Job())
    return seen


def test_server_side_jobs_confine_every_open_to_the_ingest_roots(tmp_path):
    """The walk at job start is only a first look; each file is checked again where it is
    opened (a symlink swapped in during the job is refused there), so the runner must hand
    the roots down."""
    share = tmp_path / "share"
    share.mkdir()
    assert _run_job(share)["confine_to"] == [share]


def test_server_side_jobs_run_on_the_configured_ray_cluster(tmp_path):
    """GROUNDWORK_RAY_ADDRESS reaches each job's ingest (the app passes settings.ray_address)."""
    share = tmp_path / "share"
    share.mkdir()
    assert _run_job(share, ray_address="auto")["ray_address"] == "auto"
    assert _run_job(share)["ray_address"] is None
