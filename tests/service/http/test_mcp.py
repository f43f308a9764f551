"""The MCP endpoint through the SDK's own client over real HTTP: the same keys, roles, access
control and audit trail as the HTTP API."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.service.conftest import CANARY


async def _session(live, key: str | None, calls):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(live.base_url + "/mcp", http_client=http)) as client:
            return [await call(client) for call in calls]


def run(live, key, *calls):
    return asyncio.run(_session(live, key, calls))


def test_tools_are_listed(live):
    [tools] = run(live, live.keys["reader"], lambda c: c.list_tools())
    assert {t.name for t in tools.tools} == {"search", "answer", "get_chunk"}


def test_search_answer_and_get_chunk_follow_the_key(live):
    query = "salary bands compensation review"
    search, answer = run(live, live.keys["reader_hr"], lambda c: c.call_tool("search", {"query": query, "k": 5}),
                         lambda c: c.call_tool("answer", {"query": "How many vacation days do new employees get?"}))
    assert not search.is_error
    assert any(r["source"].endswith("hr/salaries.md") for r in search.structured_content["results"])
    body = answer.structured_content
    assert body["grounded"] and "twenty vacation days" in body["answer"]
    citation = body["citations"][0]
    [chunk] = run(live, live.keys["reader_hr"], lambda c: c.call_tool("get_chunk", {"chunk_id": citation["chunk_id"]}))
    assert chunk.structured_content["text"][citation["start"]:citation["end"]] == citation["quote"]


def test_an_outsider_key_never_sees_a_restricted_document(live):
    hr_doc = live.doc_ids["hr/salaries.md"]
    hr_chunk = next(cid for cid, rec in live.groundwork.store.chunk_records(range(1, 50)).items() if rec.document_id == hr_doc)
    for key in ("reader", "reader_eng"):
        search, answer, chunk = run(
            live, live.keys[key],
            lambda c: c.call_tool("search", {"query": f"salary bands {CANARY}", "k": 20}),
            lambda c: c.call_tool("answer", {"query": f"What is the compensation review marker {CANARY}?"}),
            lambda c: c.call_tool("get_chunk", {"chunk_id": hr_chunk}),
        )
        assert all(r["document_id"] != hr_doc for r in search.structured_content["results"])
        assert CANARY not in str(search.structured_content) and CANARY not in str(answer.structured_content)
        assert chunk.is_error and "not_found" in chunk.content[0].text  # the same answer as a missing chunk
        [missing] = run(live, live.keys[key], lambda c: c.call_tool("get_chunk", {"chunk_id": 10**9}))
        assert missing.content[0].text == chunk.content[0].text


def test_bad_arguments_are_tool_errors_with_the_api_code(live):
    empty, too_many = run(live, live.keys["reader"], lambda c: c.call_tool("search", {"query": "  "}),
                          lambda c: c.call_tool("search", {"query": "vpn", "k": 10_000}))
    assert empty.is_error and "empty_query" in empty.content[0].text
    assert too_many.is_error and "invalid_k" in too_many.content[0].text


@pytest.mark.parametrize("key", [None, "gw_000000000000_nope"])
def test_no_valid_key_no_session(live, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx2.post(live.base_url + "/mcp", headers=headers | {"accept": "application/json, text/event-stream"},
                           json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")


def test_calls_are_audited_and_counted(live):
    run(live, live.keys["reader_eng"], lambda c: c.call_tool("search", {"query": "deploy runbook rollback", "k": 3}))
    rows = live.audit_rows(key="reader_eng", action="search")
    assert rows and rows[0].route == "mcp:search" and rows[0].query == "deploy runbook rollback"
    metrics = httpx2.get(live.base_url + "/metrics", headers={"Authorization": f"Bearer {live.keys['admin']}"}).text
    assert 'route="/mcp"' in metrics
