"""The database's own integrity check: found damage is reported, cached results expire."""

from __future__ import annotations

import os

import numpy as np
import pytest

from index.db import IntegrityMonitor, check_integrity, open_database
from index.errors import StorageCorrupt
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store


def _fill(store: Store, documents: int = 30) -> None:
    rng = np.random.default_rng(0)
    for i in range(documents):
        texts = [f"document {i} part {j} " * 20 for j in range(10)]
        vectors = rng.normal(size=(len(texts), 64)).astype(np.float32)
        chunks = [NewChunk(j, t, 10, 0, len(t), [], []) for j, t in enumerate(texts)]
        store.put_document(DocumentWrite("default", f"s{i}", f"h{i}", None, "text/plain", " ".join(texts), 1, [], {}, chunks, vectors, "fp"))


def _damage(path, offset_share: float = 0.5) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(int(size * offset_share) // 4096 * 4096)
        handle.write(os.urandom(4096))


def test_a_healthy_sqlite_database_passes(tmp_path):
    report = check_integrity(open_database(Settings(data_dir=tmp_path)))
    assert report.ok and report.method == "sqlite quick_check" and report.problems == ()


def test_a_page_of_garbage_in_the_middle_fails_the_check_and_writes_are_refused(tmp_path):
    settings = Settings(data_dir=tmp_path)
    engine = open_database(settings)
    _fill(Store(engine))
    engine.dispose()  # checkpoint: the rows are in the main file now
    _damage(tmp_path / "groundwork.db")
    try:
        engine = open_database(settings)
    except StorageCorrupt as exc:  # the garbage landed where opening reads
        assert "Restore the database from a snapshot" in str(exc)
        return
    monitor = IntegrityMonitor(engine)
    report = monitor.check()
    assert not report.ok and report.problems
    with pytest.raises(StorageCorrupt, match="refusing to write"):
        monitor.require_intact()


def test_results_are_reused_while_fresh(tmp_path, monkeypatch):
    import index.db as db

    engine = open_database(Settings(data_dir=tmp_path))
    calls = []
    real = db.check_integrity
    monkeypatch.setattr(db, "check_integrity", lambda e: calls.append(1) or real(e))
    monitor = IntegrityMonitor(engine)
    assert monitor.last is None
    monitor.check(max_age_s=300)
    monitor.check(max_age_s=300)
    assert len(calls) == 1 and monitor.last.ok
    monitor.check(max_age_s=0)  # 0: always now
    assert len(calls) == 2


@pytest.mark.integration
def test_postgres_uses_amcheck_when_installed(fresh_postgres_url):
    from sqlalchemy import text

    engine = open_database(Settings(database_url=fresh_postgres_url))
    try:
        _fill(Store(engine), documents=3)
        without = check_integrity(engine)
        assert without.ok and "reachable" in without.method
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
        report = check_integrity(engine)
        assert report.ok and report.method.startswith("postgres amcheck"), report
    finally:
        engine.dispose()
