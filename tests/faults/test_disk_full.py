"""A full disk under the indexes while the database (elsewhere) keeps committing.

The probe: the server's index refresh failed three times on a tantivy temp file and gave up;
once space was freed the keyword index stayed 64 chunks short, across restarts, while health
said "ok". Fail closed means: a failed index write never moves that index's position, health
says which index is behind and why, a restart on the full disk still serves what is there,
and once there is room the next catch-up replays what was missed, so `verify` is consistent.

Two variants: a real size-limited tmpfs (needs root and mount; skipped where the sandbox
forbids it) and ENOSPC injected at the index write boundary (always runs; what CI relies on
when it cannot mount).
"""

from __future__ import annotations

import pytest

from index.indexset import IndexWriteFailed
from tests.faults.harness import (
    can_mount_tmpfs,
    fill,
    injected_enospc,
    keyword_answers,
    open_groundwork,
    settings_for,
    write_corpus,
)

pytestmark = pytest.mark.faults


def _half_corpora(tmp_path):
    first = write_corpus(tmp_path / "first", documents=20, seed=1)
    second = write_corpus(tmp_path / "second", documents=20, seed=2)
    return first, second


def _assert_behind_then_caught_up(gw, free_space, reopen) -> None:
    lag = gw.indexes.lag()
    assert lag.keyword_behind > 0 and "keyword" in lag.errors, lag
    health = gw.storage_health()
    assert health["status"] == "degraded" and any(p.startswith("keyword index behind by") for p in health["problems"])
    gw = reopen(gw)  # a restart while the disk is still full: serves what is there, still degraded
    assert gw.indexes.lag().keyword_behind > 0 and gw.storage_health()["status"] == "degraded"
    free_space()
    gw.refresh_indexes()
    assert gw.indexes.lag().problems() == [] and gw.storage_health()["status"] == "ok"
    report = gw.verify()
    assert report["consistent"], report["problems"]
    gw.close()


def test_injected_enospc_at_the_write_boundary(tmp_path, monkeypatch):
    first, second = _half_corpora(tmp_path)
    settings = settings_for(tmp_path / "data")
    gw = open_groundwork(settings)
    gw.ingest([first], progress=False)
    expected_before = keyword_answers(gw)
    with injected_enospc(monkeypatch) as full:
        gw.ingest([second], progress=False)  # committed to the database; the index refresh fails
        with pytest.raises(IndexWriteFailed, match="No space left"):
            gw.refresh_indexes()
        assert keyword_answers(gw) == expected_before  # the last good commit, not a torn one

        def reopen(old):
            old.close()
            return open_groundwork(settings)

        _assert_behind_then_caught_up(gw, full.clear, reopen)
    clean = open_groundwork(settings_for(tmp_path / "clean"))
    try:
        clean.ingest([first, second], progress=False)
        again = open_groundwork(settings)
        try:
            assert keyword_answers(again) == keyword_answers(clean)
        finally:
            again.close()
    finally:
        clean.close()


def test_a_real_full_tmpfs_under_the_indexes(tmp_path):
    from tests.faults.harness import tmpfs

    if not can_mount_tmpfs(tmp_path / "probe"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount); the injected variant covers this")
    first, second = _half_corpora(tmp_path)
    with tmpfs(tmp_path / "small", "8m") as small:
        settings = settings_for(small / "data", database_url=f"sqlite:///{tmp_path / 'groundwork.db'}")
        gw = open_groundwork(settings)
        gw.ingest([first], progress=False)
        gw.refresh_indexes()  # the indexes exist and are current before the disk fills
        ballast = fill(small)
        gw.ingest([second], progress=False)
        with pytest.raises(IndexWriteFailed):
            gw.refresh_indexes()

        def reopen(old):
            old.close()
            return open_groundwork(settings)

        _assert_behind_then_caught_up(gw, ballast.unlink, reopen)


def test_the_server_starts_following_on_a_full_disk(tmp_path, monkeypatch):
    """Starting to serve on a full disk (an ingest by the CLI meanwhile) serves what is there
    and keeps retrying, rather than failing to start on its first catch-up; the CLI's own
    ingest stores the documents and reports the indexes as behind."""
    import time

    first, second = _half_corpora(tmp_path)
    settings = settings_for(tmp_path / "data")
    gw = open_groundwork(settings)
    gw.ingest([first], progress=False, index_now=True)
    expected_before = keyword_answers(gw)
    gw.close()
    with injected_enospc(monkeypatch) as full:
        cli = open_groundwork(settings)
        summary = cli.ingest([second], progress=False, index_now=True)  # as `groundwork ingest` does: no raise
        assert summary.count("added") == 20 and cli.maintains_indexes
        assert any(p.startswith("keyword index behind by") for p in cli.storage_health()["indexes"]["problems"])
        cli.close()
        server = open_groundwork(settings)
        try:
            server.pipeline  # what warm-up loads: the indexes open behind the database
            server.follow_in_background(interval_s=0.05)
            assert not server.auto_refresh and keyword_answers(server) == expected_before
            assert server.storage_health()["status"] == "degraded"
            full.clear()
            deadline = time.monotonic() + 30
            while server.storage_health()["status"] != "ok" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.storage_health()["status"] == "ok" and server.indexes.lag().keyword_behind == 0
        finally:
            server.close()
