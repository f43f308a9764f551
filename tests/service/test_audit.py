"""The audit trail: group commit, the full-queue decision per mode, a failed write refusing the
request, retention, and the ``groundwork audit`` command."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine

from index.audit_store import AuditRecord, AuditStore
from index.db import migrate
from index.models import utcnow
from index.settings import Settings
from service import auth
from service.audit import AuditTrail, AuditUnavailable


@pytest.fixture
def store(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    yield AuditStore(engine)
    engine.dispose()


def _settings(tmp_path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)


def _caller(name="alice") -> auth.KeyInfo:
    return auth.KeyInfo(key_id=1, prefix="ab12", name=name, role="reader", principal=auth.Principal(id=name))


class _Hit:
    def __init__(self, chunk_id, document_id):
        self.chunk_id, self.document_id = chunk_id, document_id


class _GatedStore:
    """Holds the writer inside ``insert`` until released, so the queue can be filled."""

    def __init__(self, inner, fail: bool = False):
        self.inner, self.fail = inner, fail
        self.gate, self.batches = threading.Event(), []

    def insert(self, records):
        self.gate.wait(10)
        self.batches.append(len(records))
        if self.fail:
            raise OSError("disk full")
        self.inner.insert(records)

    def query(self, **kw):
        return self.inner.query(**kw)

    def prune(self, older_than):
        return self.inner.prune(older_than)


def test_rows_name_hits_and_keep_text_or_only_its_hash(tmp_path, store):
    for mode, kept in (("text", "vpn rotation"), ("hash", None)):
        trail = AuditTrail(store, _settings(tmp_path, audit_query_text=mode))
        trail.start()
        trail.record_blocking(trail.event(_caller(mode), "POST /v1/search", "search", 200, query="vpn rotation",
                                          hits=[_Hit(7, 2), _Hit(8, 2), _Hit(9, 3)]))
        trail.stop()
        [row] = store.query(key=mode)
        assert row.query == kept and len(row.query_sha256) == 64
        assert row.document_ids == [2, 3] and row.chunk_ids == [7, 8, 9]
        assert [r.id for r in store.query(document_id=3, key=mode)] == [row.id]


def test_concurrent_requests_share_one_commit(tmp_path, store):
    gated = _GatedStore(store)
    trail = AuditTrail(gated, _settings(tmp_path))
    trail.start()
    threads = [threading.Thread(target=trail.record_blocking, args=(trail.event(_caller(), "r", "search", 200),)) for _ in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while trail.pending < 19 and time.monotonic() < deadline:  # one row is in the writer's hands
        time.sleep(0.01)
    gated.gate.set()
    for t in threads:
        t.join(10)
    trail.stop()
    assert sum(gated.batches) == 20 and len(gated.batches) <= 2
    assert len(store.query(limit=100)) == 20


class _CountingStore:
    """Counts the rows of each commit; the first commit waits for ``first_gate``."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []
        self.first_entered, self.first_gate = threading.Event(), threading.Event()

    def insert(self, records):
        if not self.batches:
            self.first_entered.set()
            self.first_gate.wait(10)
        self.batches.append(len(records))
        self.inner.insert(records)


def test_a_lone_caller_never_waits_for_the_commit_window(tmp_path, store):
    trail = AuditTrail(store, _settings(tmp_path, audit_commit_window_ms=100))
    trail.start()
    try:
        started = time.perf_counter()
        for _ in range(5):
            trail.record_blocking(trail.event(_caller(), "r", "search", 200))
        assert time.perf_counter() - started < 0.4  # five rows, not five windows of 100 ms
    finally:
        trail.stop()


def test_concurrent_callers_wait_one_window_and_share_its_commit(tmp_path, store):
    counting = _CountingStore(store)
    trail = AuditTrail(counting, _settings(tmp_path, audit_commit_window_ms=50))
    trail.start()
    try:
        def burst(n):  # n callers at once
            threads = [threading.Thread(target=trail.record_blocking, args=(trail.event(_caller(), "r", "search", 200),))
                       for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)

        writers = [threading.Thread(target=trail.record_blocking, args=(trail.event(_caller(), "r", "search", 200),))
                   for _ in range(3)]
        writers[0].start()  # one row held in the first commit, two queued behind it
        assert counting.first_entered.wait(5)
        for t in writers[1:]:
            t.start()
        deadline = time.monotonic() + 5
        while trail.pending < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        counting.first_gate.set()
        for t in writers:
            t.join(10)
        assert counting.batches == [1, 2]
        commits_before = len(counting.batches)
        burst(10)  # the writer saw concurrency: these rows are gathered over one window
        assert len(counting.batches) - commits_before <= 2
        assert sum(counting.batches) == 13
    finally:
        trail.stop()


def test_acknowledged_mode_refuses_when_the_row_cannot_be_written(tmp_path, store):
    counts: dict[str, int] = {}
    gated = _GatedStore(store, fail=True)
    gated.gate.set()
    trail = AuditTrail(gated, _settings(tmp_path), on_outcome=lambda outcome, n: counts.__setitem__(outcome, counts.get(outcome, 0) + n))
    trail.start()
    with pytest.raises(AuditUnavailable):
        trail.record_blocking(trail.event(_caller(), "r", "search", 200))
    trail.stop()
    assert counts == {"failed": 1}


def test_full_queue_drops_and_counts_in_buffered_mode_and_refuses_in_acknowledged(tmp_path, store):
    counts: dict[str, int] = {}
    gated = _GatedStore(store)
    settings = _settings(tmp_path, audit_mode="buffered", audit_queue_size=2, audit_queue_wait_s=0.05)
    trail = AuditTrail(gated, settings, on_outcome=lambda outcome, n: counts.__setitem__(outcome, counts.get(outcome, 0) + n))
    trail.start()
    for _ in range(10):  # never blocks
        trail.record_blocking(trail.event(_caller(), "r", "search", 200))
    # At most 5 get in: the writer's batch (its first row and up to two it drains from the
    # queue before the store blocks it) and a refilled queue of two. Which of these happen
    # depends on thread scheduling (>= 7 failed once on a loaded machine).
    assert counts.get("dropped", 0) >= 5
    gated.gate.set()
    trail.stop()
    assert counts["written"] + counts["dropped"] == 10

    gated = _GatedStore(store)
    strict = AuditTrail(gated, _settings(tmp_path, audit_queue_size=1, audit_queue_wait_s=0.05))
    strict.start()
    waiting = [threading.Thread(target=strict.record_blocking, args=(strict.event(_caller(), "r", "search", 200),)) for _ in range(2)]
    for t in waiting:
        t.start()
    time.sleep(0.3)  # one row in the writer, one in the queue: the queue is full
    with pytest.raises(AuditUnavailable, match="full"):
        strict.record_blocking(strict.event(_caller(), "r", "search", 200))
    gated.gate.set()
    for t in waiting:
        t.join(10)
    strict.stop()


def test_retention_prunes_old_rows_only(tmp_path, store):
    now = utcnow()
    store.insert([AuditRecord("ab12", "old", "old", "r", "search", 200, document_ids=[1], occurred_at=now - timedelta(days=40)),
                  AuditRecord("ab12", "new", "new", "r", "search", 200, document_ids=[1], occurred_at=now - timedelta(days=1))])
    assert AuditTrail(store, _settings(tmp_path, audit_retention_days=0)).prune() == 0
    assert AuditTrail(store, _settings(tmp_path, audit_retention_days=30)).prune() == 1
    assert [r.key_name for r in store.query(document_id=1)] == ["new"]


def test_the_writer_prunes_on_its_own(tmp_path, store):
    store.insert([AuditRecord("ab12", "old", "old", "r", "search", 200, occurred_at=utcnow() - timedelta(days=3))])
    trail = AuditTrail(store, _settings(tmp_path, audit_retention_days=2), prune_every_s=0.05)
    trail.start()
    trail.record_blocking(trail.event(_caller("new"), "r", "search", 200))
    deadline = time.monotonic() + 5
    while store.query(key="old") and time.monotonic() < deadline:
        time.sleep(0.05)
    trail.stop()
    assert not store.query(key="old") and store.query(key="new")


def test_audit_command(tmp_path, capsys, monkeypatch):
    from index.db import open_database
    from service.cli import main

    monkeypatch.setenv("GROUNDWORK_DATA_DIR", str(tmp_path / "data"))
    engine = open_database(Settings())
    now = utcnow()
    AuditStore(engine).insert([
        AuditRecord("aaaa", "ops", "ops", "POST /v1/search", "search", 200, query="vpn", document_ids=[4], occurred_at=now - timedelta(days=500)),
        AuditRecord("bbbb", "hr-bot", "hr", "POST /v1/answer", "answer", 200, query="salary bands", document_ids=[5, 6], chunk_ids=[9]),
        AuditRecord("aaaa", "ops", "ops", "GET /v1/chunks/{chunk_id}", "chunk_read", 200, document_ids=[6], chunk_ids=[10]),
    ])
    engine.dispose()
    assert main(["audit", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in rows] == ["chunk_read", "answer", "search"]
    assert main(["audit", "--json", "--document", "6", "--key", "hr-bot"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["query"] == "salary bands" and row["document_ids"] == [5, 6] and row["chunk_ids"] == [9]
    assert main(["audit", "--since", "30d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "chunk_read" in lines[0] and "q='salary bands'" in lines[1]
    assert main(["audit", "--since", "yesterday-ish"]) == 2
    assert main(["audit", "--prune"]) == 0
    assert "pruned 1 audit row" in capsys.readouterr().out
    assert main(["audit", "--json", "--key", "aaaa"]) == 0
    assert [r["action"] for r in json.loads(capsys.readouterr().out)] == ["chunk_read"]
