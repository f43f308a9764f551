"""Deeply nested JSON, on every route and form field that takes JSON: 400 too_deeply_nested
before any decoder recurses (1,000 levels used to end in a RecursionError and a 500)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def nested_object(depth: int) -> str:
    """{"a": {"a": ... 1 ...}}, ``depth`` objects deep."""
    return '{"a":' * depth + "1" + "}" * depth


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_bodies(depth: int) -> list[tuple[str, str, str, str]]:
    """(method, path, key, raw JSON body nesting ``depth`` levels where the route allows JSON)."""
    metadata = nested_object(depth)
    return [
        ("POST", "/v1/search", "reader", f'{{"query": "vacation", "filters": {{"metadata": {metadata}}}}}'),
        ("POST", "/v1/search", "reader", nested_array(depth)),  # the whole body an array
        ("POST", "/v1/answer", "reader", f'{{"query": "vacation", "filters": {{"metadata": {metadata}}}}}'),
        ("POST", "/v1/chat/completions", "reader", '{"model": "groundwork", "messages": [{"role": "user", "content": '
                                                   f'[{{"type": "text", "text": "hi", "extra": {metadata}}}]}}]}}'),
        ("PATCH", "/v1/documents/{doc}", "writer", f'{{"metadata": {metadata}}}'),
        ("POST", "/v1/ingest-jobs", "admin", f'{{"paths": ["x"], "metadata": {metadata}}}'),
        ("POST", "/v1/keys", "admin", f'{{"role": "reader", "groups": {nested_array(depth)}}}'),
        ("POST", "/v1/reindex", "admin", nested_array(depth)),
    ]


def send(live, method: str, path: str, key: str, body: str):
    path = path.format(doc=live.doc_ids["public/handbook.md"])
    with live.client(live.keys[key]) as client:
        return client.request(method, path, content=body.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("depth", [1_000, 3_000])
def test_deep_json_bodies_are_refused_on_every_route(live, depth: int) -> None:
    for method, path, key, body in deep_bodies(depth):
        response = send(live, method, path, key, body)
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        assert response.json()["error"]["code"] == "too_deeply_nested", (path, response.text[:300])
    assert live.groundwork.reindexer.state().started_at is None  # the refused reindex never started


def test_ordinary_nesting_is_accepted(live) -> None:
    """The limit refuses nothing a client sends in earnest: metadata a few levels deep works."""
    with live.client(live.keys["reader"]) as client:
        response = client.post("/v1/search", json={"query": "vacation", "filters": {"metadata": {"owner": {"team": {"name": "hr"}}}}})
        assert response.status_code == 200, response.text
    doc = live.doc_ids["eng/runbook.md"]
    with live.client(live.keys["admin_all"]) as client:
        response = client.patch(f"/v1/documents/{doc}", json={"metadata": {"a": {"b": {"c": [1, [2, [3]]]}}}})
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == {"a": {"b": {"c": [1, [2, [3]]]}}}


@pytest.mark.parametrize(("depth", "shape", "status", "code"), [
    (100, nested_object, 400, "too_deeply_nested"),
    (40_000, nested_array, 400, "too_deeply_nested"),
    # 100,000 objects deep (600 KB) used to crash json.loads with a 500; a form field that size
    # is refused by the multipart parser first, which is as good: a 4xx with a stable code.
    (100_000, nested_object, 413, "request_too_large"),
])
def test_deep_upload_metadata_is_refused(live, depth: int, shape, status: int, code: str) -> None:
    with live.client(live.keys["writer"]) as client:
        response = client.post("/v1/documents", files={"file": ("note.txt", b"The kitchen closes at six.")},
                               data={"metadata": shape(depth)})
    assert response.status_code == status, response.text[:300]
    assert response.json()["error"]["code"] == code


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(depth=st.integers(min_value=0, max_value=4_000), shape=st.sampled_from(["object", "array", "mixed"]),
       route=st.sampled_from(["/v1/search", "/v1/answer", "/v1/chat/completions"]))
def test_no_nesting_depth_gives_a_server_error(live, depth: int, shape: str, route: str) -> None:
    if shape == "object":
        inner = nested_object(depth)
    elif shape == "array":
        inner = nested_array(depth)
    else:
        inner = '{"a":[' * (depth // 2) + "1" + "]}" * (depth // 2)
    if route == "/v1/chat/completions":
        body = '{"model": "groundwork", "messages": [{"role": "user", "content": "vacation", "name": ' + inner + "}]}"
    else:
        body = '{"query": "vacation", "filters": {"metadata": {"m": ' + inner + "}}}"
    with live.client(live.keys["reader"]) as client:
        response = client.post(route, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code < 500, (depth, shape, route, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code >= 400:
        assert json.loads(response.text)["error"]["code"]
