"""Two `groundwork serve` replicas, each with its own data directory, over one PostgreSQL.

Each replica follows the change log, so what one is told (an upload, a re-grouping, a delete)
reaches the other's results within the follow interval; stopped, both verify consistent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.service.http.serve_process import cli, serve, stop, wait_healthy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOLLOW_WAIT_S = 30.0  # the follow interval is 1 s; this allows for a loaded machine


def _sources(client: httpx.Client, query: str) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "k": 10})
    assert response.status_code == 200, response.text
    return [Path(hit["source"]).name for hit in response.json()["results"]]


def _eventually(condition, what: str) -> None:
    deadline = time.monotonic() + FOLLOW_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def test_two_replicas_over_one_postgres_follow_each_other(fresh_postgres_url, tmp_path):
    base_env = os.environ | {"GROUNDWORK_DATABASE_URL": fresh_postgres_url, "GROUNDWORK_RERANKER_ENABLED": "false",
                             "GROUNDWORK_PARSE_WORKERS": "1"}
    envs = [base_env | {"GROUNDWORK_DATA_DIR": str(tmp_path / f"replica-{name}")} for name in ("a", "b")]
    admin = cli("keys", "create", "--role", "admin", "--group", "*", "--name", "admin", env=envs[0])
    assert admin.returncode == 0, admin.stderr
    reader = cli("keys", "create", "--role", "reader", "--group", "team", "--name", "reader", env=envs[0])
    assert reader.returncode == 0, reader.stderr
    admin_key, reader_key = admin.stdout.strip().splitlines()[-1], reader.stdout.strip().splitlines()[-1]

    replicas = [serve(env, tmp_path / f"replica-{i}.log") for i, env in enumerate(envs)]
    try:
        for i, (proc, base) in enumerate(replicas):
            wait_healthy(proc, base, tmp_path / f"replica-{i}.log", what="replica")
        (a_base, b_base) = (base for _proc, base in replicas)
        a = httpx.Client(base_url=a_base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120)
        b_admin = httpx.Client(base_url=b_base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120)
        b_reader = httpx.Client(base_url=b_base, headers={"Authorization": f"Bearer {reader_key}"}, timeout=120)
        with a, b_admin, b_reader:
            uploaded = a.post("/v1/documents", data={"groups": "team"},
                              files={"file": ("parking.txt", b"The parking garage opens at six in the morning.", "text/plain")})
            assert uploaded.status_code == 201, uploaded.text
            document_id = uploaded.json()["document_id"]
            _eventually(lambda: "parking.txt" in _sources(b_reader, "when does the parking garage open"),
                        "a document uploaded through replica a never became searchable through replica b")

            regrouped = a.patch(f"/v1/documents/{document_id}", json={"groups": ["finance"]})
            assert regrouped.status_code == 200, regrouped.text
            _eventually(lambda: "parking.txt" not in _sources(b_reader, "when does the parking garage open"),
                        "a document re-grouped through replica a stayed visible to the old group through replica b")
            assert "parking.txt" in _sources(b_admin, "when does the parking garage open")

            assert a.delete(f"/v1/documents/{document_id}").status_code in (200, 204)
            _eventually(lambda: "parking.txt" not in _sources(b_admin, "when does the parking garage open"),
                        "a document deleted through replica a stayed in replica b's results")
    finally:
        for proc, _base in replicas:
            stop(proc)
    for env in envs:
        verified = cli("verify", "--json", env=env)
        assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
        assert json.loads(verified.stdout)["consistent"] is True
