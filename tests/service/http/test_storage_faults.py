"""Storage faults as HTTP clients see them: /v1/health reports the indexes and the database as
they are, and a keyword index fenced off after an engine failure costs a hybrid search its
keyword half (never a plain-text 500)."""

from __future__ import annotations

import time

from tests.faults.harness import injected_enospc

QUESTION = {"query": "How many vacation days do new employees receive?"}


class EnginePanic(BaseException):
    """What pyo3 raises for a Rust panic: not an Exception."""


def fence_keyword_index(groundwork, monkeypatch) -> list[int]:
    """Make the keyword engine panic on its next search; returns the list of calls it gets."""
    calls: list[int] = []

    def panic(*_args, **_kwargs):
        calls.append(1)
        raise EnginePanic("called `Option::unwrap()` on a `None` value at /src/postings.rs:42")

    monkeypatch.setattr(groundwork.indexes.keyword.inner, "search", panic)
    return calls


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_fenced_keyword_index_degrades_search_and_health_until_rebuilt(fresh, monkeypatch):
    server = fresh()
    gw = server.groundwork
    gw.auto_refresh = False  # as under `groundwork serve`: the follower rebuilds, not the request
    calls = fence_keyword_index(gw, monkeypatch)
    with server.client(server.keys["reader"]) as reader, server.client(server.keys["admin"]) as admin, server.client() as anonymous:
        hybrid = reader.post("/v1/search", json={"query": "vacation days"})
        assert hybrid.status_code == 200, hybrid.text
        body = hybrid.json()
        assert body["results"] and all(r["source"] for r in body["results"])
        assert any("keyword index is unavailable" in note for note in body["provenance"]["notes"])
        answer = reader.post("/v1/answer", json=QUESTION)
        assert answer.status_code == 200 and "twenty vacation days" in answer.json()["answer"]

        keyword = reader.post("/v1/search", json={"query": "vacation days", "mode": "keyword"})
        assert keyword.status_code == 503 and keyword.headers["content-type"].startswith("application/json")
        assert keyword.json()["error"]["code"] == "index_unavailable" and int(keyword.headers["retry-after"]) >= 1
        assert "postings.rs" not in keyword.text
        assert len(calls) == 1  # fenced off after the first failure: the engine is not asked again

        public = anonymous.get("/v1/health")
        assert public.status_code == 200
        assert public.json()["status"] == "degraded" and public.json()["indexes"]["state"] == "degraded"
        assert "keyword index corrupt, being rebuilt from the database" in public.json()["problems"]
        assert "postings.rs" not in public.text and public.json()["database_integrity"] is None
        detailed = admin.get("/v1/health").json()
        assert detailed["indexes"]["keyword_docs"] is None and detailed["indexes"]["vectors"] >= 4
        assert any("postings.rs" in p for p in detailed["problems"])
        assert set(detailed["indexes"]["lag"]) == {"vectors", "keyword"} and "database" in detailed["indexes"]["positions"]
        assert metric(admin.get("/metrics").text, 'groundwork_fallbacks_total{stage="keyword"}') >= 1

        gw.refresh_indexes()  # the follower's next round rebuilds the index from the database
        assert admin.get("/v1/health").json()["status"] == "ok"
        assert admin.get("/v1/health").json()["indexes"]["keyword_docs"] >= 4
        keyword = reader.post("/v1/search", json={"query": "vacation days", "mode": "keyword"})
        assert keyword.status_code == 200 and keyword.json()["results"]
        assert not reader.post("/v1/search", json={"query": "vacation days"}).json()["provenance"]["notes"]


def test_health_says_how_far_an_index_is_behind_after_a_failed_write(fresh, monkeypatch):
    server = fresh()
    gw = server.groundwork
    gw.auto_refresh = False
    with server.client(server.keys["writer"]) as writer, server.client(server.keys["admin"]) as admin, server.client() as anonymous:
        assert anonymous.get("/v1/health").json()["status"] == "ok"
        with injected_enospc(monkeypatch) as full:
            upload = writer.post("/v1/documents", files={"file": ("kitchen.txt", b"The kitchen is cleaned every Friday afternoon.")})
            assert upload.status_code == 201, upload.text  # committed: the indexes catch up later
            public = anonymous.get("/v1/health")
            assert public.status_code == 200 and public.json()["status"] == "degraded"
            problems = public.json()["problems"]
            assert any(p.startswith("keyword index behind by ") and p.endswith(" change-log rows") for p in problems), problems
            assert not any("No space" in p for p in problems)  # the detail is for admins
            detailed = admin.get("/v1/health").json()
            assert detailed["indexes"]["lag"]["keyword"] > 0
            assert any("No space left on device" in p for p in detailed["problems"])
            full.clear()
        gw.refresh_indexes()
        assert anonymous.get("/v1/health").json()["status"] == "ok"
        assert admin.get("/v1/health").json()["indexes"]["lag"] == {"vectors": 0, "keyword": 0}


def test_health_is_503_while_the_database_fails_its_integrity_check(fresh):
    from index.db import IntegrityReport

    server = fresh()
    integrity = server.groundwork.store.integrity
    with server.client() as anonymous, server.client(server.keys["admin"]) as admin:
        integrity.check()
        assert anonymous.get("/v1/health").status_code == 200
        assert admin.get("/v1/health").json()["database_integrity"]["ok"] is True
        # What the server's background check records on a damaged SQLite file.
        integrity._last = IntegrityReport(False, "sqlite quick_check", ("*** in database main *** Page 7: btreeInitPage() returns error code 11",),
                                          time.time(), 0.2)
        response = anonymous.get("/v1/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "failing" and body["database"] == "failing its integrity check"
        assert "database fails its integrity check (sqlite quick_check)" in body["problems"]
        assert admin.get("/v1/health").json()["database_integrity"]["problems"][0].startswith("*** in database main")
        integrity.check()  # the file is intact: the next check clears it
        assert anonymous.get("/v1/health").status_code == 200
