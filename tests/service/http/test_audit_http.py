"""The audit trail through the HTTP API: rows name only what a caller was given, an answered
request's row is already committed, even a killed server keeps every acknowledged row, and a
row that cannot be written refuses the request."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import CANARY

REPO = Path(__file__).resolve().parents[3]


def test_denied_and_filtered_documents_never_appear_in_a_readers_rows(live):
    hr_doc = live.doc_ids["hr/salaries.md"]
    hr_chunk = next(cid for cid, rec in live.groundwork.store.chunk_records(range(1, 50)).items() if rec.document_id == hr_doc)
    with live.client(live.keys["reader_eng"]) as client:
        assert client.post("/v1/search", json={"query": f"salary bands {CANARY}", "k": 20}).status_code == 200
        assert client.post("/v1/answer", json={"query": f"compensation review marker {CANARY}"}).status_code == 200
        assert client.get(f"/v1/chunks/{hr_chunk}").status_code == 404
        assert client.patch(f"/v1/documents/{hr_doc}", json={"title": "x"}).status_code in (403, 404)
    rows = live.audit_rows(key="reader_eng", limit=1000)
    assert {"search", "answer", "chunk_read"} <= {r.action for r in rows}
    for row in rows:
        assert hr_doc not in row.document_ids and hr_chunk not in row.chunk_ids
    denied = next(r for r in rows if r.action == "chunk_read")
    assert denied.status == 404 and denied.document_ids == [] and denied.chunk_ids == []
    assert not live.audit_rows(key="reader_eng", document_id=hr_doc)
    # Positive control: the hr key's own search names the document.
    with live.client(live.keys["reader_hr"]) as client:
        client.post("/v1/search", json={"query": f"salary bands {CANARY}", "k": 20}).raise_for_status()
    assert live.audit_rows(key="reader_hr", document_id=hr_doc)


def test_admin_route_reads_and_filters_the_trail(live):
    with live.client(live.keys["reader"]) as client:
        assert client.get("/v1/audit").status_code == 403
        client.post("/v1/search", json={"query": "rotate the vpn certificate"}).raise_for_status()
    vpn = live.doc_ids["public/vpn.txt"]
    with live.client(live.keys["admin"]) as client:
        body = client.get("/v1/audit", params={"key": "reader", "action": "search", "limit": 1}).json()
        [event] = body["events"]
        assert event["query"] == "rotate the vpn certificate" and event["route"] == "POST /v1/search" and vpn in event["document_ids"]
        assert body["mode"] == "acknowledged"
        by_doc = client.get("/v1/audit", params={"document_id": vpn, "limit": 1000}).json()["events"]
        assert event["id"] in {e["id"] for e in by_doc} and all(vpn in e["document_ids"] for e in by_doc)
        if body["next_cursor"] is not None:
            older = client.get("/v1/audit", params={"key": "reader", "action": "search", "cursor": body["next_cursor"]}).json()
            assert all(e["id"] < event["id"] for e in older["events"])
        assert client.get("/v1/audit", params={"since": "2026-01-02T00:00:00", "until": "2026-01-01T00:00:00"}).status_code == 400
        assert client.get("/v1/audit", params={"limit": 0}).status_code == 400


def test_document_changes_are_audited(fresh):
    server = fresh()
    doc = server.doc_ids["public/handbook.md"]
    with server.client(server.keys["admin"]) as client:
        client.patch(f"/v1/documents/{doc}", json={"title": "Handbook"}).raise_for_status()
        assert client.delete(f"/v1/documents/{doc}").status_code == 204
    assert [(r.action, r.status) for r in server.audit_rows(document_id=doc)] == [("document_delete", 204), ("document_update", 200)]


def test_an_answered_request_is_already_committed(live):
    """Acknowledged mode: by the time a response arrives its row is in the database, as another
    connection sees it (no flush, no wait)."""
    ids = [f"ack-{n}" for n in range(24)]

    def ask(request_id):
        with live.client(live.keys["reader"]) as client:
            return client.post("/v1/search", json={"query": "vacation days"}, headers={"X-Request-ID": request_id}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(ask, ids)) == {200}
    with sqlite3.connect(live.root / "data" / "groundwork.db") as conn:
        seen = {row[0] for row in conn.execute("SELECT request_id FROM audit_event WHERE request_id LIKE 'ack-%'")}
    assert seen == set(ids)


def test_a_row_that_cannot_be_written_refuses_the_request(fresh):
    server = fresh()
    trail = server.app.state.services.audit

    def broken(records):
        raise OSError("disk full")

    good = trail.store.insert
    trail.store.insert = broken
    try:
        with server.client(server.keys["reader"]) as client:
            response = client.post("/v1/search", json={"query": "vacation days"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "audit_unavailable"
    finally:
        trail.store.insert = good
    with server.client(server.keys["admin"]) as client:
        metrics = client.get("/metrics").text
    assert 'groundwork_audit_events_total{outcome="failed"} 1' in metrics


_CHILD = textwrap.dedent("""
    import json, sys, time
    from pytest import MonkeyPatch
    from ingest import parser_pool
    from tests.service.conftest import InlineParser, launch
    MonkeyPatch().setattr(parser_pool.ParserPool, "from_settings", InlineParser.from_settings)
    server = launch(__import__("pathlib").Path(sys.argv[1]))
    print(json.dumps({"url": server.base_url, "key": server.keys["reader"]}), flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_the_trail_survives_a_kill_up_to_the_last_acknowledged_request(tmp_path):
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / "srv")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    acknowledged = []
    try:
        info = json.loads(proc.stdout.readline())
        headers = {"Authorization": f"Bearer {info['key']}"}

        def ask(n):
            try:
                response = httpx.post(info["url"] + "/v1/search", json={"query": f"vacation {n}"},
                                      headers=headers | {"X-Request-ID": f"kill-{n}"}, timeout=30)
            except httpx.HTTPError:
                return  # in flight when the server died: never acknowledged
            if response.status_code == 200:
                acknowledged.append(f"kill-{n}")
                if len(acknowledged) == 25:  # killed mid-stream, other requests in flight
                    proc.send_signal(signal.SIGKILL)  # no shutdown hook runs: no last flush

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(60)))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert 25 <= len(acknowledged) < 60
    with sqlite3.connect(tmp_path / "srv" / "data" / "groundwork.db") as conn:
        kept = {row[0] for row in conn.execute("SELECT request_id FROM audit_event")}
    assert set(acknowledged) <= kept
