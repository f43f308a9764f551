"""The database server stops while the service runs: every request that needs it answers 503
``storage_unavailable`` with Retry-After (it used to be a 500 ``internal_error``), health says
``failing``, and service resumes by itself once the database is back."""

from __future__ import annotations

import time

import pytest

from tests.service.conftest import launch

pytestmark = pytest.mark.integration


def test_requests_answer_503_while_postgres_is_down_then_recover(private_postgres, tmp_path):
    server = launch(tmp_path / "server", database_url=private_postgres.url, auth_cache_s=0)
    search = {"query": "How many vacation days do new employees receive?"}
    try:
        with server.client(server.keys["reader"]) as reader, server.client(server.keys["writer"]) as writer, \
                server.client() as anonymous:
            assert reader.post("/v1/search", json=search).status_code == 200
            assert anonymous.get("/v1/health").status_code == 200
            chunk = reader.post("/v1/search", json=search).json()["results"][0]["chunk_id"]

            private_postgres.stop()
            requests = [
                lambda: reader.post("/v1/search", json=search),
                lambda: reader.post("/v1/search", json=search | {"mode": "keyword"}),
                lambda: reader.post("/v1/answer", json=search),
                lambda: reader.post("/v1/chat/completions", json={"model": "groundwork", "messages": [{"role": "user", "content": search["query"]}]}),
                lambda: reader.get(f"/v1/chunks/{chunk}"),
                lambda: writer.get("/v1/documents"),
            ]
            for request in requests:
                response = request()
                assert response.status_code == 503, (response.request.url, response.status_code, response.text)
                assert response.headers["content-type"].startswith("application/json")
                assert response.json()["error"]["code"] == "storage_unavailable"
                assert int(response.headers["retry-after"]) >= 1
                assert "127.0.0.1" not in response.text  # driver detail stays in the log
            health = anonymous.get("/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "failing"
            assert "database unreachable" in health.json()["problems"]

            private_postgres.start()
            deadline = time.monotonic() + 30
            while (response := reader.post("/v1/search", json=search)).status_code != 200:
                assert response.status_code == 503 and time.monotonic() < deadline, response.text
                time.sleep(0.2)
            assert response.json()["results"]
            assert anonymous.get("/v1/health").status_code == 200
    finally:
        server.stop()
        server.groundwork.close()
