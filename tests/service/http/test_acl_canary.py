"""Access-control canary: a document only group ``hr`` may see carries a unique string.

Keys outside ``hr`` (readers, writers, and admins without ``*``) probe for it every way the
API offers: the exact string, a paraphrase, filters by document id, source prefix, collection
and metadata, streaming and non-streaming answers, chat, listings and direct ids. The string,
the document's source and its ids must never appear in any response. A positive control with
an ``hr`` key proves the probes would have found it.
"""

from __future__ import annotations

import json

import pytest

from tests.service.conftest import CANARY

OUTSIDERS = ["reader", "reader_eng", "writer_eng", "admin_eng", "admin"]
PROBES = [CANARY, "CANARY 51d2e9", "51d2e9", "salary bands for senior engineers", "How much do salary bands rise in the compensation review?",
          "confidential compensation marker"]


@pytest.fixture(scope="module")
def secret(live):
    store = live.groundwork.store
    document_id = live.doc_ids["hr/salaries.md"]
    doc = store.get_document(document_id)
    chunk_ids = _chunk_ids(live, document_id)
    assert chunk_ids
    return {"document_id": document_id, "source": doc.source, "chunk_ids": chunk_ids}


def _chunk_ids(live, document_id):
    from sqlalchemy import select
    from sqlmodel import Session

    from index.models import Chunk

    with Session(live.groundwork.engine) as session:
        return list(session.execute(select(Chunk.id).where(Chunk.document_id == document_id)).scalars())


def _assert_clean(response, secret):
    body = response.text
    assert CANARY not in body and "51d2e9" not in body
    assert secret["source"] not in body and "salaries.md" not in body
    if response.headers.get("content-type", "").startswith("application/json"):
        _no_secret_ids(response.json(), secret)


def _no_secret_ids(value, secret):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "document_id":
                assert item != secret["document_id"]
            if key == "chunk_id":
                assert item not in secret["chunk_ids"]
            _no_secret_ids(item, secret)
    elif isinstance(value, list):
        for item in value:
            _no_secret_ids(item, secret)


def _filters(secret):
    return [
        None,
        {"document_ids": [secret["document_id"]]},
        {"source_prefix": secret["source"]},
        {"source_prefix": secret["source"][: len(secret["source"]) // 2]},
        {"collections": ["hr"]},
        {"collections": ["hr", "default", "eng", "it"]},
    ]


@pytest.mark.parametrize("who", OUTSIDERS)
def test_search_never_reveals_the_canary(live, secret, who):
    with live.client(live.keys[who]) as client:
        for probe in PROBES:
            for mode in ("hybrid", "dense", "keyword"):
                for filters in _filters(secret):
                    body = {"query": probe, "mode": mode, "k": 20} | ({"filters": filters} if filters else {})
                    response = client.post("/v1/search", json=body)
                    assert response.status_code == 200
                    _assert_clean(response, secret)
                    if filters and ("document_ids" in filters or filters.get("collections") == ["hr"]):
                        assert response.json()["results"] == []


@pytest.mark.parametrize("who", OUTSIDERS)
def test_answers_and_chat_never_reveal_the_canary(live, secret, who):
    with live.client(live.keys[who]) as client:
        for probe in PROBES[::2]:
            for filters in _filters(secret)[:3]:
                body = {"query": probe} | ({"filters": filters} if filters else {})
                response = client.post("/v1/answer", json=body)
                assert response.status_code == 200
                _assert_clean(response, secret)
                with client.stream("POST", "/v1/answer", json=body | {"stream": True}) as streamed:
                    streamed.read()
                    _assert_clean(streamed, secret)
            for model in ("groundwork", "hr"):
                chat = client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": probe}]})
                # A collection the key cannot see answers exactly like one that does not exist.
                missing = client.post("/v1/chat/completions", json={"model": "no-such-collection", "messages": [{"role": "user", "content": probe}]})
                assert chat.status_code == (200 if model == "groundwork" else missing.status_code)
                _assert_clean(chat, secret)
                with client.stream("POST", "/v1/chat/completions",
                                   json={"model": model, "stream": True, "messages": [{"role": "user", "content": probe}]}) as streamed:
                    streamed.read()
                    _assert_clean(streamed, secret)


@pytest.mark.parametrize("who", OUTSIDERS)
def test_direct_access_looks_like_nothing_is_there(live, secret, who):
    with live.client(live.keys[who]) as client:
        missing_chunk = client.get("/v1/chunks/987654321")
        for chunk_id in secret["chunk_ids"]:
            response = client.get(f"/v1/chunks/{chunk_id}")
            assert response.status_code == 404
            assert response.json() == missing_chunk.json()  # indistinguishable from a missing id
            _assert_clean(response, secret)
        if who.startswith("reader"):
            return
        missing_doc = client.get("/v1/documents/987654321")
        for method, extra in (("GET", {}), ("PATCH", {"json": {"groups": []}}), ("DELETE", {})):
            response = client.request(method, f"/v1/documents/{secret['document_id']}", **extra)
            assert response.status_code == 404
            assert response.json() == missing_doc.json()
        for params in ({}, {"collection": "hr"}, {"source_prefix": secret["source"]}, {"limit": 1000}):
            listing = client.get("/v1/documents", params=params)
            assert listing.status_code == 200
            _assert_clean(listing, secret)
            if params.get("collection") == "hr":
                assert listing.json()["documents"] == []
    # The probes above changed nothing.
    doc = live.groundwork.store.get_document(secret["document_id"])
    assert doc is not None and doc.groups == ["hr"]


def test_positive_control_hr_sees_the_canary(live, secret):
    with live.client(live.keys["reader_hr"]) as client:
        response = client.post("/v1/search", json={"query": CANARY, "mode": "keyword"})
        assert any(r["document_id"] == secret["document_id"] for r in response.json()["results"])
        assert CANARY in response.text
        assert client.get(f"/v1/chunks/{secret['chunk_ids'][0]}").status_code == 200
        answer = client.post("/v1/answer", json={"query": "How much do salary bands rise in the compensation review?"}).json()
        assert any(c["document_id"] == secret["document_id"] for c in answer["citations"]), json.dumps(answer)[:500]
    with live.client(live.keys["admin_all"]) as admin:
        assert admin.get(f"/v1/documents/{secret['document_id']}").status_code == 200
