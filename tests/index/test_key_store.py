"""API key rows (index.key_store) and idempotency records (index.idempotency_store)."""

from __future__ import annotations

from datetime import timedelta

from index.models import utcnow


def test_key_rows(any_store):
    keys = any_store.keys
    row = keys.add(name="ci", prefix="abc123abc123", key_hash="sha256$x", role="reader", principal="ci", groups=["eng"])
    assert row.id is not None and row.groups == ["eng"]
    assert keys.prefix_taken("abc123abc123") and not keys.prefix_taken("000000000000")
    assert keys.find("abc123abc123").principal == "ci" and keys.find("000000000000") is None
    when = utcnow() - timedelta(hours=1)
    keys.touch(row.id, when)
    assert abs((keys.find(row.prefix).last_used_at.replace(tzinfo=None) - when.replace(tzinfo=None)).total_seconds()) < 1
    other = keys.add(name="b", prefix="def456def456", key_hash="sha256$y", role="admin", principal="b", groups=[])
    assert keys.revoke(str(other.id)) and not keys.revoke(str(other.id))  # by id, once
    assert keys.revoke("abc123abc123")
    assert [k.prefix for k in keys.list()] == ["abc123abc123", "def456def456"]
    assert keys.list(include_revoked=False) == []


def test_idempotency_records(any_store):
    records = any_store.idempotency
    assert records.get("k:1") is None
    assert records.remember("k:1", 201, {"request": "r", "body": {"id": 1}})
    assert not records.remember("k:1", 200, {"request": "other"})  # the first answer stays
    stored = records.get("k:1")
    assert (stored.status_code, stored.response) == (201, {"request": "r", "body": {"id": 1}})
