"""The database server restarts in the middle of an ingest.

Fail closed means: the job fails (or finishes) with every document either committed whole or
not at all; the next run reconnects by itself and ends where a clean run ends; `verify` is
consistent.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from index.models import Document
from tests.faults.harness import keyword_answers, open_groundwork, settings_for

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_a_postgres_restart_mid_ingest_loses_nothing(clean, restartable_postgres, tmp_path):
    url, restart = restartable_postgres
    gw = open_groundwork(settings_for(tmp_path / "data", database_url=url))
    try:
        outcome: dict = {}

        def ingest() -> None:
            try:
                outcome["summary"] = gw.ingest([clean["corpus"]], progress=False)
            except Exception as exc:  # the connection went away mid-transaction
                outcome["error"] = exc

        worker = threading.Thread(target=ingest)
        worker.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.is_alive():
            with Session(gw.engine) as session:
                if (session.execute(select(func.count()).select_from(Document)).scalar() or 0) >= 5:
                    break
            time.sleep(0.02)
        mid_ingest = worker.is_alive()
        restart()
        worker.join(timeout=120)
        assert mid_ingest and not worker.is_alive(), "the ingest ended before the restart: make the corpus larger"

        rerun = gw.ingest([clean["corpus"]], progress=False).to_json()
        assert rerun["failed"] == 0
        gw.refresh_indexes()
        with Session(gw.engine) as session:
            docs = dict(session.execute(select(Document.source, Document.chunk_count).where(Document.status == "indexed")).all())
        assert docs == clean["snapshot"]["docs"]
        report = gw.verify()
        assert report["consistent"], report["problems"]
        assert keyword_answers(gw) == clean["answers"]
    finally:
        gw.close()
