"""The HTTP API over real HTTP: query routes, documents, jobs, limits, errors, observability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest.version import INGEST_VERSION


# --- helpers ---------------------------------------------------------------------------------------


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a server-sent event stream."""
    events, event, data = [], None, []
    for line in response.iter_lines():
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        events.append((event, "\n".join(data)))
    return events


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/ingest-jobs/{job_id}").json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


# --- search ----------------------------------------------------------------------------------------


def test_search_returns_results_provenance_and_timings(live):
    with live.client(live.keys["reader"]) as client:
        response = client.post("/v1/search", json={"query": "how many vacation days", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert 1 <= len(body["results"]) <= 3
    top = body["results"][0]
    assert set(top) >= {"chunk_id", "document_id", "source", "title", "text", "score", "page", "section"}
    assert top["document_id"] == live.doc_ids["public/handbook.md"]
    assert body["provenance"]["embedding_model"] == "test-hash-embedder"
    assert "dense" in body["timings_ms"] and "keyword" in body["timings_ms"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_search_modes_and_filters(live, mode):
    with live.client(live.keys["reader_eng"]) as client:
        body = client.post("/v1/search", json={"query": "deployments roll back", "mode": mode, "filters": {"collections": ["eng"]}}).json()
        assert body["results"] and {r["document_id"] for r in body["results"]} == {live.doc_ids["eng/runbook.md"]}
        by_id = client.post("/v1/search", json={"query": "certificate", "mode": mode,
                                                "filters": {"document_ids": [live.doc_ids["public/vpn.txt"]]}}).json()
        assert {r["document_id"] for r in by_id["results"]} == {live.doc_ids["public/vpn.txt"]}


def test_collapse_gives_one_result_per_document(live):
    with live.client(live.keys["admin_all"]) as client:
        results = client.post("/v1/search", json={"query": "the", "k": 20, "collapse": True}).json()["results"]
    ids = [r["document_id"] for r in results]
    assert len(ids) == len(set(ids))


# --- answer ----------------------------------------------------------------------------------------


def test_answer_is_grounded_with_verbatim_citations(live):
    with live.client(live.keys["reader"]) as client:
        body = client.post("/v1/answer", json={"query": "How many vacation days do new employees receive?"}).json()
        assert body["grounded"] is True
        assert "twenty vacation days" in body["answer"]
        assert body["citations"]
        for citation in body["citations"]:
            chunk = client.get(f"/v1/chunks/{citation['chunk_id']}").json()
            assert chunk["text"][citation["start"]:citation["end"]] == citation["quote"]
        assert "generate" in body["timings_ms"]
        assert body["provenance"]["generator"] == "extractive"


def test_answer_without_support_is_not_grounded(live):
    with live.client(live.keys["reader"]) as client:
        body = client.post("/v1/answer", json={"query": "What is the airspeed of an unladen swallow?"}).json()
    assert body["grounded"] is False and body["citations"] == []


@pytest.mark.parametrize("how", ["flag", "accept"])
def test_answer_streams_server_sent_events(live, how):
    payload = {"query": "How many vacation days do new employees receive?"}
    headers = {}
    if how == "flag":
        payload["stream"] = True
    else:
        headers["Accept"] = "text/event-stream"
    with live.client(live.keys["reader"]) as client:
        with client.stream("POST", "/v1/answer", json=payload, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
    names = [e for e, _ in events]
    assert names[0] == "results" and names[-1] == "done"
    assert "delta" in names and "citation" in names
    assert names.index("citation") > names.index("delta")
    deltas = "".join(json.loads(d)["text"] for e, d in events if e == "delta")
    done = json.loads(events[-1][1])
    assert done["answer"] == deltas and done["grounded"] is True
    assert len([e for e in names if e == "citation"]) == len(done["citations"])


# --- chunks ----------------------------------------------------------------------------------------


def test_chunk_by_id(live):
    with live.client(live.keys["reader"]) as client:
        hit = client.post("/v1/search", json={"query": "VPN certificate", "k": 1}).json()["results"][0]
        chunk = client.get(f"/v1/chunks/{hit['chunk_id']}")
        assert chunk.status_code == 200 and chunk.json()["text"] == hit["text"]
        for bad in ("0", "-1", "99999999999999999999999", "abc"):
            assert client.get(f"/v1/chunks/{bad}").status_code in (400, 404)


# --- chat completions ------------------------------------------------------------------------------


def test_chat_completion_matches_openai_shape(live):
    with live.client(live.keys["reader"]) as client:
        body = client.post("/v1/chat/completions", json={
            "model": "groundwork", "temperature": 0.2,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How many vacation days do new employees receive?"}],
        }).json()
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        message = body["choices"][0]["message"]
        assert message["role"] == "assistant" and "twenty vacation days" in message["content"]
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["citations"] and body["grounded"] is True
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "groundwork" in models and "it" in models
        scoped = client.post("/v1/chat/completions", json={"model": "it", "messages": [{"role": "user", "content": "vacation days?"}]}).json()
        assert all(c["document_id"] == live.doc_ids["public/vpn.txt"] for c in scoped["citations"])
        missing = client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        no_user = client.post("/v1/chat/completions", json={"model": "groundwork", "messages": [{"role": "system", "content": "x"}]})
        assert no_user.status_code == 400


def test_chat_completion_stream_follows_openai_chunks(live):
    with live.client(live.keys["reader"]) as client:
        with client.stream("POST", "/v1/chat/completions", json={
            "model": "groundwork", "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "How many vacation days do new employees receive?"}]}],
        }) as response:
            assert response.status_code == 200
            events = sse_events(response)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "twenty vacation days" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"]


def test_chat_with_the_openai_client(live):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key=live.keys["reader"])
    completion = client.chat.completions.create(model="groundwork", messages=[{"role": "user", "content": "How many vacation days do new employees receive?"}])
    assert "twenty vacation days" in completion.choices[0].message.content
    assert (completion.model_extra or {}).get("citations")
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="groundwork", stream=True, messages=[{"role": "user", "content": "How many vacation days do new employees receive?"}]) if chunk.choices)
    assert "twenty vacation days" in streamed
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="gw_0123456789ab_wrong").chat.completions.create(
            model="groundwork", messages=[{"role": "user", "content": "hi"}])


# --- documents -------------------------------------------------------------------------------------


def test_upload_list_patch_delete(fresh):
    server = fresh()
    with server.client(server.keys["writer_eng"]) as client:
        content = b"# Parking\n\nThe parking garage opens at six in the morning. Badges unlock level two."
        first = client.post("/v1/documents", files={"file": ("../../etc/parking notes.md", content)},
                            data={"collection": "facilities", "groups": "eng,ops", "metadata": json.dumps({"owner": "facilities"})})
        assert first.status_code == 201, first.text
        doc = first.json()
        assert doc["status"] == "added" and doc["chunks"] >= 1 and doc["source"] == "upload://facilities/writer_eng/parking notes.md"
        stored = list((server.root / "data" / "uploads").rglob("parking notes.md"))
        assert len(stored) == 1 and stored[0].read_bytes() == content  # no path traversal: lands under uploads/<sha256>/
        again = client.post("/v1/documents", files={"file": ("parking notes.md", content)}, data={"collection": "facilities", "groups": ["eng", "ops"]})
        assert again.status_code == 200 and again.json()["status"] == "unchanged"
        document_id = doc["document_id"]

        shown = client.get(f"/v1/documents/{document_id}").json()
        assert shown["groups"] == ["eng", "ops"] and shown["metadata"]["owner"] == "facilities" and shown["collection"] == "facilities"
        assert shown["ingest_version"] == INGEST_VERSION and shown["context"]  # what read it, and what it is
        hits = client.post("/v1/search", json={"query": "parking garage opens"}).json()["results"]
        assert hits[0]["document_id"] == document_id

        listing = client.get("/v1/documents", params={"collection": "facilities"}).json()
        assert [d["id"] for d in listing["documents"]] == [document_id]

        patched = client.patch(f"/v1/documents/{document_id}", json={"groups": ["ops"], "title": "Parking", "metadata": {"owner": "x"}})
        assert patched.status_code == 200 and patched.json()["groups"] == ["ops"] and patched.json()["title"] == "Parking"
        # No longer in one of the writer's groups: the document is invisible to it now.
        assert client.get(f"/v1/documents/{document_id}").status_code == 404
        assert all(h["document_id"] != document_id for h in client.post("/v1/search", json={"query": "parking garage opens"}).json()["results"])
    with server.client(server.keys["admin_all"]) as admin:
        calls = server.embedder.document_calls
        assert admin.patch(f"/v1/documents/{document_id}", json={"groups": []}).status_code == 200
        assert server.embedder.document_calls == calls
        assert admin.delete(f"/v1/documents/{document_id}").status_code == 204
        assert admin.get(f"/v1/documents/{document_id}").status_code == 404
        assert admin.delete(f"/v1/documents/{document_id}").status_code == 404
        assert all(h["document_id"] != document_id for h in admin.post("/v1/search", json={"query": "parking garage opens"}).json()["results"])
        assert not list((server.root / "data" / "uploads").rglob("parking notes.md"))


def test_document_listing_paginates_with_a_cursor(live):
    with live.client(live.keys["admin_all"]) as client:
        seen, cursor = [], None
        while True:
            params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
            page = client.get("/v1/documents", params=params).json()
            seen.extend(d["id"] for d in page["documents"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == seen and set(seen) >= set(live.doc_ids.values())
        assert client.get("/v1/documents", params={"limit": 0}).status_code == 400
        assert client.get("/v1/documents", params={"limit": 5000}).status_code == 400
        prefixed = client.get("/v1/documents", params={"source_prefix": str(live.root / "corpus" / "public")}).json()["documents"]
        assert {d["id"] for d in prefixed} == {live.doc_ids["public/handbook.md"], live.doc_ids["public/vpn.txt"]}


def test_idempotency_key_replays_the_first_response(fresh):
    server = fresh()
    key = str(uuid.uuid4())
    with server.client(server.keys["writer"]) as client:
        first = client.post("/v1/documents", files={"file": ("a.txt", b"Alpha bravo charlie delta echo.")}, headers={"Idempotency-Key": key})
        assert first.status_code == 201
        replay = client.post("/v1/documents", files={"file": ("a.txt", b"Alpha bravo charlie delta echo.")}, headers={"Idempotency-Key": key})
        assert replay.status_code == 201 and replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"
        reused = client.post("/v1/documents", files={"file": ("b.txt", b"Something else entirely.")}, headers={"Idempotency-Key": key})
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    with server.client(server.keys["writer_eng"]) as other:  # keys are scoped per API key
        fresh_response = other.post("/v1/documents", files={"file": ("c.txt", b"Foxtrot golf hotel india.")}, headers={"Idempotency-Key": key})
        assert fresh_response.status_code == 201


def test_upload_rejections(fresh):
    server = fresh()
    with server.client(server.keys["writer"]) as client:
        too_big = client.post("/v1/documents", files={"file": ("big.txt", b"x" * 60_000)})
        assert too_big.status_code == 413
        over_body = client.post("/v1/documents", files={"file": ("big.txt", b"x" * 200_000)})
        assert over_body.status_code == 413
        assert client.post("/v1/documents", files={"file": ("e.txt", b"")}).json()["error"]["code"] == "empty_file"
        assert client.post("/v1/documents", files={"file": ("a.txt", b"hello there")}, data={"collection": "../x"}).status_code == 400
        assert client.post("/v1/documents", files={"file": ("a.txt", b"hello there")}, data={"groups": "*"}).status_code == 400
        assert client.post("/v1/documents", files={"file": ("a.txt", b"hello there")}, data={"metadata": "[1]"}).status_code == 400
        assert client.post("/v1/documents", files={"file": ("a.txt", b"hello there")}, data={"metadata": "{bad"}).status_code == 400
        binary = client.post("/v1/documents", files={"file": ("blob.bin", os.urandom(2048))})
        assert binary.status_code == 422 and binary.json()["error"]["code"] == "unprocessable_document"
        assert client.post("/v1/documents", content=b"not multipart", headers={"content-type": "text/plain"}).status_code in (400, 415)


def test_upload_names_are_per_uploader_so_an_invisible_document_is_neither_replaced_nor_revealed(fresh):
    server = fresh()
    with server.client(server.keys["admin_all"]) as admin:
        secret = admin.post("/v1/documents", files={"file": ("plan.txt", b"Secret plan for the merger.")}, data={"groups": "hr"})
        assert secret.status_code == 201
    with server.client(server.keys["writer_eng"]) as writer:
        mine = writer.post("/v1/documents", files={"file": ("plan.txt", b"Our plan for the offsite.")})
        # Exactly what an upload of a new name looks like: no conflict, nothing about the other document.
        assert mine.status_code == 201 and mine.json()["status"] == "added", mine.text
        assert mine.json()["document_id"] != secret.json()["document_id"] and "merger" not in mine.text
        again = writer.post("/v1/documents", files={"file": ("plan.txt", b"Our revised plan for the offsite.")})
        assert again.status_code == 200 and again.json()["document_id"] == mine.json()["document_id"]  # own name: replaced
    with server.client(server.keys["admin_all"]) as admin:
        kept = admin.get(f"/v1/documents/{secret.json()['document_id']}")
        assert kept.status_code == 200 and kept.json()["groups"] == ["hr"]
        hits = admin.post("/v1/search", json={"query": "merger plan", "k": 5}).json()["results"]
        assert any("merger" in h["text"] for h in hits)


# --- ingestion jobs ----------------------------------------------------------------------------------


def test_ingest_job_runs_in_the_background(fresh):
    server = fresh()
    share = server.root / "share"
    (share / "docs").mkdir(parents=True)
    (share / "docs" / "a.md").write_text("# Kitchen\n\nThe kitchen is cleaned every Friday afternoon.")
    (share / "docs" / "b.txt").write_text("Printer toner is in the supply closet on floor three.")
    with server.client(server.keys["admin"]) as admin:
        accepted = admin.post("/v1/ingest-jobs", json={"paths": [str(share / "docs")], "collection": "office"})
        assert accepted.status_code == 202 and accepted.headers["location"].endswith(accepted.json()["job_id"])
        job = wait_for_job(admin, accepted.json()["job_id"])
        assert job["status"] == "done", job
        assert job["counts"]["added"] == 2 and job["finished_at"]
        hits = admin.post("/v1/search", json={"query": "printer toner closet", "filters": {"collections": ["office"]}}).json()["results"]
        assert hits and "toner" in hits[0]["text"]
    with server.client(server.keys["writer"]) as writer:  # writers see only their own jobs
        assert writer.get(f"/v1/ingest-jobs/{accepted.json()['job_id']}").status_code == 404


def test_ingest_job_paths_must_stay_inside_the_roots(fresh, tmp_path):
    server = fresh()
    share = server.root / "share"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the share")
    (share / "link-out").symlink_to(outside, target_is_directory=True)
    (share / "ok").mkdir()
    (share / "ok" / "fine.txt").write_text("fine")
    (share / "mixed").mkdir()
    (share / "mixed" / "sneaky.txt").symlink_to(outside / "secret.txt")
    with server.client(server.keys["admin"]) as admin:
        for path in (str(outside), str(share / ".." / "outside"), str(share / "link-out"), "relative/path", str(share) + "/../../etc"):
            response = admin.post("/v1/ingest-jobs", json={"paths": [path]})
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"]["code"] == "path_forbidden"
        assert admin.post("/v1/ingest-jobs", json={"paths": [str(share / "missing")]}).status_code == 400
        assert admin.post("/v1/ingest-jobs", json={"paths": [str(share / ("x" * 300))]}).status_code == 400
        assert admin.post("/v1/ingest-jobs", json={"paths": [str(share / "a\x00b")]}).status_code == 403
        job = wait_for_job(admin, admin.post("/v1/ingest-jobs", json={"paths": [str(share / "mixed")]}).json()["job_id"])
        assert job["status"] == "failed" and "symlink" in job["error"]
        assert admin.post("/v1/search", json={"query": "outside the share", "mode": "keyword"}).json()["results"] == []


def test_ingest_jobs_disabled_without_roots(fresh):
    server = fresh(ingest_roots=[])
    with server.client(server.keys["admin"]) as admin:
        response = admin.post("/v1/ingest-jobs", json={"paths": ["/tmp"]})
    assert response.status_code == 403 and "ingest roots" in response.json()["error"]["message"]


def test_interrupted_jobs_are_requeued_on_start(tmp_path):
    """A job left 'running' by a dead process is resumed by the next server."""
    from index.job_store import job_owner
    from tests.service.conftest import launch

    share = tmp_path / "srv" / "share"
    share.mkdir(parents=True)
    (share / "note.txt").write_text("The fire drill is on the first Monday of the month.")
    first = launch(tmp_path / "srv", ingest=False)
    first.stop()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    jobs = first.groundwork.store.jobs
    jobs.create({"paths": [str(share / "note.txt")], "collection": "default", "groups": [], "sync": False,
                 "submitted_via": "http", "submitted_by": "admin"}, "orphan1")
    jobs.start("orphan1", job_owner(pid=dead_pid))
    from service.http.app import create_app
    from tests.service.conftest import start_server

    first.groundwork.settings.ingest_job_workers = 1
    server, thread, url = start_server(create_app(first.groundwork))
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {first.keys['admin']}"}) as admin:
            job = wait_for_job(admin, "orphan1")
            assert job["status"] == "done", job
            assert admin.post("/v1/search", json={"query": "fire drill"}).json()["results"]
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        first.groundwork.close()


# --- limits and errors -------------------------------------------------------------------------------


def test_limits_are_checked_before_any_model_runs(live):
    with live.client(live.keys["reader"]) as client:
        calls = live.embedder.query_calls
        cases = [
            ({"query": "x" * 301}, 400, "query_too_long"),
            ({"query": "   "}, 400, "empty_query"),
            ({"query": "ok", "k": 21}, 400, "invalid_k"),
            ({"query": "ok", "k": 0}, 400, "invalid_k"),
            ({"query": "ok", "mode": "semantic"}, 400, "invalid_request"),
            ({"query": "ok", "filters": {"collection": ["x"]}}, 400, "invalid_request"),
            ({"query": 5}, 400, "invalid_request"),
            ({}, 400, "invalid_request"),
        ]
        for body, status, code in cases:
            for route in ("/v1/search", "/v1/answer"):
                response = client.post(route, json=body)
                assert response.status_code == status, (route, body, response.text)
                assert response.json()["error"]["code"] == code
        too_large = client.post("/v1/search", content=json.dumps({"query": "a " * 15_000}), headers={"content-type": "application/json"})
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "request_too_large"
        assert client.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        long_chat = client.post("/v1/chat/completions", json={"model": "groundwork", "messages": [{"role": "user", "content": "y" * 301}]})
        assert long_chat.status_code == 400
        assert live.embedder.query_calls == calls


def test_errors_are_json_with_stable_codes(live):
    with live.client(live.keys["reader"]) as client:
        missing = client.get("/v1/nothing-here")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        wrong_method = client.put("/v1/search", json={})
        assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("payload", [
    {"query": "\x00\x01\x02"}, {"query": "AND OR NOT ((( \"unbalanced"}, {"query": "*:* title:[a TO z]"},
    {"query": "ok", "filters": {"document_ids": [2**70]}}, {"query": "ok", "filters": {"updated_after": "2025-01-01"}},
    {"query": "ok", "filters": {"updated_after": "not a date"}}, {"query": "ok", "filters": {"metadata": {"a": [1, {"b": None}]}}},
    {"query": "ok", "filters": {"source_prefix": "%_'\";--"}}, {"query": "ünïcödé 😀 漢字"}, {"query": "ok", "rerank": True},
])
def test_odd_inputs_never_cause_a_500(live, payload):
    with live.client(live.keys["reader"]) as client:
        for route in ("/v1/search", "/v1/answer"):
            response = client.post(route, json=payload)
            assert response.status_code < 500, (route, payload, response.text)
            if response.status_code >= 400:
                assert "error" in response.json()


# --- observability -----------------------------------------------------------------------------------


def test_request_ids(live):
    with live.client() as client:
        assert client.get("/v1/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
        replaced = client.get("/v1/health", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
        assert replaced != "bad id with spaces" and len(replaced) == 32
        assert client.get("/nowhere").headers["x-request-id"]


def test_health(live):
    with live.client(live.keys["admin"]) as client:
        body = client.get("/v1/health").json()
    assert body["status"] in ("ok", "degraded")
    assert body["database"] == "ok"
    assert body["indexes"]["vectors"] >= 4 and body["indexes"]["keyword_docs"] >= 4
    assert body["embedder"]["model"] == "test-hash-embedder"
    assert isinstance(body["reranker"], str) and body["generator"] == "extractive"


def test_metrics_exposition(live):
    with live.client(live.keys["reader"]) as client:
        client.post("/v1/search", json={"query": "vacation"})
    with live.client(live.keys["admin"]) as client:
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert '# TYPE groundwork_http_request_duration_seconds histogram' in text
    assert 'groundwork_http_request_duration_seconds_bucket{method="POST",route="/v1/search",le="+Inf"}' in text
    assert 'groundwork_stage_duration_seconds_count{stage="dense"}' in text
    assert 'groundwork_index_size{kind="vectors"}' in text
    assert 'groundwork_ingest_files_total' in text


def test_openapi_schema_has_routes_and_examples(live):
    with live.client() as client:
        schema = client.get("/schema/openapi.json").json()
        assert client.get("/schema").status_code == 200
    for path in ("/v1/search", "/v1/answer", "/v1/documents", "/v1/chat/completions", "/v1/ingest-jobs", "/v1/health"):
        assert path in schema["paths"], path
    body = schema["paths"]["/v1/search"]["post"]["requestBody"]["content"]["application/json"]
    assert body.get("examples") or body["schema"].get("examples"), body
    assert "BearerAuth" in schema["components"]["securitySchemes"]


def test_reindex_switches_while_searches_continue(fresh):
    server = fresh()
    with server.client(server.keys["admin"]) as admin:
        before = admin.get("/v1/health").json()["indexes"]["version"]
        started = admin.post("/v1/reindex", json={})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while admin.get("/v1/reindex").json()["running"] and time.monotonic() < deadline:
            assert admin.post("/v1/search", json={"query": "vacation days"}).status_code == 200
            time.sleep(0.05)
        status = admin.get("/v1/reindex").json()
        assert status["error"] is None and status["version"] == before + 1
        assert admin.get("/v1/health").json()["indexes"]["version"] == before + 1
        assert admin.post("/v1/search", json={"query": "vacation days"}).json()["results"]


# --- degraded operation --------------------------------------------------------------------------------


def test_failing_reranker_degrades_to_fused_results(fresh, monkeypatch):
    server = fresh(reranker_enabled=True, reranker_model="lexical")
    reranker, status = server.groundwork.reranker_state
    assert reranker is not None and status.startswith("ok")
    with server.client(server.keys["reader"]) as client:
        healthy = client.post("/v1/search", json={"query": "vacation days"}).json()
        assert healthy["provenance"]["reranked"] is True

        def broken(query, texts):
            raise RuntimeError("reranker crashed")

        monkeypatch.setattr(type(reranker), "rerank", lambda self, query, texts: broken(query, texts))
        degraded = client.post("/v1/search", json={"query": "vacation days"})
        assert degraded.status_code == 200
        body = degraded.json()
        assert body["results"] and body["provenance"]["reranked"] is False
        assert any("reranker failed" in note for note in body["provenance"]["notes"])
        answer = client.post("/v1/answer", json={"query": "How many vacation days do new employees receive?"})
        assert answer.status_code == 200 and answer.json()["grounded"] is True
    with server.client(server.keys["admin"]) as admin:
        assert 'groundwork_fallbacks_total{stage="rerank"}' in admin.get("/metrics").text


def test_slow_reranker_misses_its_deadline_and_the_request_still_answers(fresh, monkeypatch):
    server = fresh(reranker_enabled=True, reranker_model="lexical", rerank_timeout_s=0.3)
    reranker, _status = server.groundwork.reranker_state
    release = threading.Event()
    original = type(reranker).rerank

    def slow(self, query, texts):
        release.wait(10)  # a stuck model
        return original(self, query, texts)

    monkeypatch.setattr(type(reranker), "rerank", slow)
    try:
        with server.client(server.keys["reader"]) as client:
            started = time.monotonic()
            response = client.post("/v1/search", json={"query": "vacation days"})
            elapsed = time.monotonic() - started
            body = response.json()
            assert response.status_code == 200 and body["results"], response.text
            assert body["provenance"]["reranked"] is False
            assert any("took longer than 0.3 s" in note for note in body["provenance"]["notes"])
            assert elapsed < 5, elapsed  # the deadline, not the stuck model, decided
            answer = client.post("/v1/answer", json={"query": "How many vacation days do new employees receive?"})
            assert answer.status_code == 200 and any("took longer" in n for n in answer.json()["provenance"]["notes"])
    finally:
        release.set()


def test_errors_from_below_answer_with_their_family_status(fresh, monkeypatch):
    """Missing model, broken index, unreachable database: 503 with a stable code and no internal
    detail in the message; the database one says when to retry."""
    from index.errors import StorageUnavailable
    from index.vectors import IndexCorrupt
    from ingest.runtime.resolve import ModelNotAvailable

    server = fresh()
    gw = server.groundwork
    with server.client(server.keys["reader"]) as client:
        assert client.post("/v1/search", json={"query": "vacation days"}).status_code == 200

        def down(*_args, **_kwargs):
            raise StorageUnavailable("connection refused by db.internal:5432")

        with monkeypatch.context() as patch:
            patch.setattr(gw.store, "chunk_records", down)
            response = client.get(f"/v1/chunks/{server.doc_ids['public/handbook.md']}")
            assert response.status_code == 503 and response.headers["retry-after"] == "5"
            assert response.json()["error"]["code"] == "storage_unavailable" and "db.internal" not in response.text

        def corrupt(*_args, **_kwargs):
            raise IndexCorrupt("checksum mismatch in /var/lib/groundwork/indexes/v1/vectors.faiss")

        with monkeypatch.context() as patch:
            patch.setattr(gw.indexes.vectors, "search", corrupt)
            response = client.post("/v1/search", json={"query": "vacation days"})
            assert response.status_code == 503 and response.json()["error"]["code"] == "index_corrupt"
            assert "/var/lib" not in response.text
            assert client.post("/v1/search", json={"query": "vacation days", "mode": "keyword"}).status_code == 200

        def missing(_texts):
            raise ModelNotAvailable("model 'x' is not in /root/.cache")

        with monkeypatch.context() as patch:
            patch.setattr(server.embedder, "embed_queries", missing)
            response = client.post("/v1/search", json={"query": "vacation days"})
            assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"
        assert client.post("/v1/search", json={"query": "vacation days"}).status_code == 200


def test_unavailable_generator_falls_back_to_extractive(fresh):
    server = fresh(generator="openai", openai_base_url=None)  # selected but not configured
    question = {"query": "How many vacation days do new employees receive?"}
    with server.client(server.keys["reader"]) as client:
        body = client.post("/v1/answer", json=question).json()
        assert body["grounded"] is True and "twenty vacation days" in body["answer"]
        assert body["provenance"]["generator"] == "extractive"
        assert any("openai" in note for note in body["provenance"]["notes"])
        with client.stream("POST", "/v1/answer", json=question | {"stream": True}) as streamed:
            events = sse_events(streamed)
        assert events[-1][0] == "done" and json.loads(events[-1][1])["grounded"] is True
        chat = client.post("/v1/chat/completions", json={"model": "groundwork", "messages": [{"role": "user", "content": question["query"]}]})
        assert chat.status_code == 200 and "twenty vacation days" in chat.json()["choices"][0]["message"]["content"]
    with server.client() as anonymous:
        health = anonymous.get("/v1/health").json()
    assert health["status"] == "degraded" and "generator" in " ".join(health["problems"])


def test_a_generator_failing_mid_stream_ends_with_an_error_event(fresh, monkeypatch):
    server = fresh()
    generator = server.groundwork.generator

    def half_stream(question, passages):
        yield "New employees receive"
        raise RuntimeError("connection reset")

    monkeypatch.setattr(generator, "stream", half_stream)
    with server.client(server.keys["reader"]) as client:
        with client.stream("POST", "/v1/answer", json={"query": "vacation days", "stream": True}) as response:
            events = sse_events(response)
        assert [e for e, _ in events] == ["results", "delta", "error"]
        assert json.loads(events[-1][1])["code"] == "generation_failed"
        with client.stream("POST", "/v1/chat/completions", json={"model": "groundwork", "stream": True,
                                                                 "messages": [{"role": "user", "content": "vacation days"}]}) as response:
            chat = sse_events(response)
        assert json.loads(chat[-2][1])["error"]["code"] == "generation_failed" and chat[-1][1] == "[DONE]"


# --- server plumbing -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_server_embeds_queries_with_a_single_thread_model_giving_the_same_vectors(tmp_path):
    import numpy as np

    from index.settings import Settings
    from service.server import build_groundwork

    groundwork = build_groundwork(Settings(data_dir=tmp_path))
    try:
        batcher = groundwork.embedder
        if batcher.backend not in ("openvino", "onnx"):
            pytest.skip(f"the {batcher.backend} backend shares one thread setting")
        assert batcher._queries is not batcher._inner and batcher._queries.fingerprint == batcher._inner.fingerprint
        queries = ["how many vacation days do new employees get", "renew the VPN certificate"]
        one_by_one = np.vstack([batcher.embed_queries([q]) for q in queries])
        np.testing.assert_allclose(one_by_one, batcher._inner.embed_queries(queries), atol=1e-5)
    finally:
        groundwork.close()


def test_prometheus_exposition_format():
    from service.http.metrics import Counter, Histogram, Registry

    registry = Registry()
    counter = registry.register(Counter("demo_total", "Demo\ncounter.", ("route",)))
    histogram = registry.register(Histogram("demo_seconds", "Demo latency.", ("route",), buckets=(0.1, 1.0)))
    counter.inc(route='/a"b\\c')
    counter.inc(2, route="/x")
    for value in (0.05, 0.5, 5.0):
        histogram.observe(value, route="/x")
    text = registry.render()
    assert "# HELP demo_total Demo\\ncounter." in text and "# TYPE demo_total counter" in text
    assert 'demo_total{route="/a\\"b\\\\c"} 1' in text and 'demo_total{route="/x"} 2' in text
    assert 'demo_seconds_bucket{route="/x",le="0.1"} 1' in text
    assert 'demo_seconds_bucket{route="/x",le="1"} 2' in text
    assert 'demo_seconds_bucket{route="/x",le="+Inf"} 3' in text
    assert 'demo_seconds_count{route="/x"} 3' in text and 'demo_seconds_sum{route="/x"} 5.55' in text
    with pytest.raises(ValueError):
        counter.inc(other="x")


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=30))
def test_histogram_buckets_count_the_values_at_or_below_each_bound(values):
    from service.http.metrics import Histogram, Registry

    bounds = (0.1, 1.0, 2.5)
    histogram = Registry().register(Histogram("h_seconds", "H.", (), buckets=bounds))
    for value in values:
        histogram.observe(value)
    text = "\n".join(histogram.render())
    if values:
        for bound, label in zip(bounds, ("0.1", "1", "2.5")):
            assert f'h_seconds_bucket{{le="{label}"}} {sum(v <= bound for v in values)}' in text
        assert f'h_seconds_bucket{{le="+Inf"}} {len(values)}' in text
    assert histogram.count() == len(values)


def test_search_threads_run_in_the_requests_context():
    """Log lines written during a search carry the request id of the request they serve."""
    import asyncio

    from service.http.logging_setup import RequestContext, current_request
    from service.query.pipeline import run_on, search_threads

    pool = search_threads(1)
    try:
        async def one_request(request_id: str):
            current_request.set(RequestContext(request_id))
            return await run_on(pool, lambda: (current_request.get().request_id, threading.current_thread().name))

        async def two_requests():
            return await asyncio.gather(one_request("req-1"), one_request("req-2"))

        (first, first_thread), (second, _) = asyncio.run(two_requests())
    finally:
        pool.shutdown()
    assert (first, second) == ("req-1", "req-2") and first_thread.startswith("search")


def test_fresh_install_is_healthy_without_a_reranker(fresh):
    """No reranker ships offline, so none is configured by default: that is not a problem."""
    from service.query.rerank import RERANKER_OFF

    server = fresh(reranker_enabled=True, ingest=False)
    with server.client() as anonymous:
        health = anonymous.get("/v1/health").json()
    assert health["reranker"] == RERANKER_OFF == "off, set GROUNDWORK_RERANKER_MODEL to enable"
    assert health["status"] == "ok" and health["problems"] == []


def test_a_configured_reranker_that_fails_to_load_degrades_health(fresh, tmp_path):
    server = fresh(reranker_enabled=True, reranker_model=str(tmp_path / "no-such-cross-encoder"), ingest=False)
    with server.client() as anonymous:
        health = anonymous.get("/v1/health").json()
    assert health["status"] == "degraded" and health["reranker"].startswith("unavailable: ")
    assert any("reranker" in problem for problem in health["problems"])


def test_a_split_table_is_served_as_a_window_over_http(fresh):
    """A hit on one piece of a long table carries the pieces around it (``window``); every
    window chunk is a real chunk, and the answer's citations quote the piece they name."""
    server = fresh(chunk_max_tokens=96, chunk_prefix_tokens=16, chunk_min_tokens=0, table_window_chars=1500)
    rows = "".join(f"<tr><td>Line item {name}</td><td>{1000 + 37 * n:,}</td><td>{900 + 41 * n:,}</td></tr>"
                   for n, name in enumerate(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                             "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa"]))
    html = (f"<html><body><h1>Annual report</h1><table><tr><th>(In millions)</th><th>2023</th><th>2022</th></tr>{rows}"
            "</table><p>The notes are part of these statements.</p></body></html>")
    path = server.root / "statement.html"
    path.write_text(html)
    result = server.groundwork.ingest([path], progress=False).files[0]
    assert result.status == "added", result
    server.groundwork.refresh_indexes()
    with server.client(server.keys["admin_all"]) as client:
        found = client.post("/v1/search", json={"query": "Line item kilo 2023", "k": 5}).json()["results"]
        windowed = [r for r in found if r["window"]]
        assert windowed, found
        window = windowed[0]["window"]
        assert windowed[0]["chunk_id"] in window["chunk_ids"] and len(window["chunk_ids"]) >= 2
        assert len(window["text"]) <= 1500
        texts = [client.get(f"/v1/chunks/{cid}").json()["text"] for cid in window["chunk_ids"]]
        assert window["text"] == "\n\n".join(texts)
        held = set(window["chunk_ids"]) - {windowed[0]["chunk_id"]}
        assert not held & {r["chunk_id"] for r in found}
        answer = client.post("/v1/answer", json={"query": "What was line item kilo in 2023?"}).json()
        for citation in answer["citations"]:
            chunk = client.get(f"/v1/chunks/{citation['chunk_id']}").json()
            assert chunk["text"][citation["start"]:citation["end"]] == citation["quote"]
