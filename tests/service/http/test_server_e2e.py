"""`groundwork serve` as a real subprocess: real embedding model, real port, real signals."""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
import pytest

from tests.conftest import _free_port
from tests.service.http.serve_process import cli, serve, stop, wait_healthy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = {
    "handbook.md": "# Employee handbook\n\nNew employees receive twenty vacation days per year.\n\n## Travel\n\nBook travel through the portal.",
    "vpn.txt": "VPN access\n\nTo rotate the VPN certificate, open the self-service portal and choose Renew certificate.",
    "kitchen.md": "# Kitchen\n\nThe kitchen is cleaned every Friday afternoon.",
}


@pytest.fixture
def env(tmp_path) -> dict:
    return os.environ | {
        "GROUNDWORK_DATA_DIR": str(tmp_path / "data"), "GROUNDWORK_RERANKER_ENABLED": "false", "GROUNDWORK_PARSE_WORKERS": "1",
        "GROUNDWORK_INGEST_ROOTS": json.dumps([str(tmp_path)]),
    }


def test_serve_subprocess_end_to_end(tmp_path, env):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    created = cli("keys", "create", "--role", "admin", "--group", "*", "--name", "e2e", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    log_path = tmp_path / "server.log"
    proc, base = serve(env, log_path, "--ingest", str(docs))
    try:
        wait_healthy(proc, base, log_path)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            health = client.get("/v1/health").json()
            assert health["indexes"]["vectors"] >= 3 and health["database"] == "ok"
            hits = client.post("/v1/search", json={"query": "how do I renew the VPN certificate"}, headers={"X-Request-ID": "e2e-search-1"}).json()
            assert hits["results"][0]["source"].endswith("vpn.txt")
            answer = client.post("/v1/answer", json={"query": "How many vacation days do new employees receive?"}).json()
            assert answer["grounded"] and "twenty" in answer["answer"]
            with client.stream("POST", "/v1/answer", json={"query": "When is the kitchen cleaned?", "stream": True}) as streamed:
                body = streamed.read().decode()
            assert "event: done" in body
            # A file ingested by another process becomes searchable without a restart.
            (docs / "parking.txt").write_text("The parking garage opens at six in the morning.")
            assert cli("ingest", str(docs / "parking.txt"), "--no-progress", env=env).returncode == 0
            deadline = time.monotonic() + 30
            while not any(r["source"].endswith("parking.txt") for r in client.post("/v1/search", json={"query": "parking garage opens"}).json()["results"]):
                assert time.monotonic() < deadline, "the running server did not pick up the new document"
                time.sleep(0.5)
            assert client.post("/v1/search", headers={"Authorization": "Bearer gw_0123456789ab_nope"}, json={"query": "x"}).status_code == 401
            assert "groundwork_http_request_duration_seconds_bucket" in client.get("/metrics").text
    finally:
        stop(proc)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "groundwork.access"]
    search_line = next(line for line in access if line.get("request_id") == "e2e-search-1")
    assert search_line["route"] == "/v1/search" and search_line["status"] == 200 and search_line["key_prefix"]
    assert isinstance(search_line["duration_ms"], float)
    assert any(line.get("logger") == "uvicorn.error" for line in lines)  # the server's own lines are JSON too


def test_dev_mode_refuses_a_public_bind(env):
    refused = cli("serve", "--dev", "--host", "0.0.0.0", "--port", str(_free_port()), env=env, timeout=120)
    assert refused.returncode == 2
    assert "auth=off" in refused.stderr


def test_uvicorn_serves_with_the_compiled_parser_and_loop():
    """The figures in the README were measured with httptools and uvloop; a fresh install must
    have them, or uvicorn quietly falls back to its pure-Python parser and loop."""
    import uvicorn

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    config = uvicorn.Config(app, log_config=None)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    if sys.platform != "win32":
        import uvloop  # noqa: F401
