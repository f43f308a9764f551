"""The samples ingest into a real PostgreSQL 15 exactly as into SQLite, and rank the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.settings import Settings
from service.engine import Groundwork
from service.query.types import Principal, Query

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.mark.integration
def test_samples_into_postgres_match_sqlite(tmp_path, fresh_postgres_url, hash_embedder):
    results = {}
    for name, url in (("sqlite", None), ("postgres", fresh_postgres_url)):
        settings = Settings(data_dir=tmp_path / name, database_url=url, parse_workers=1, reranker_enabled=False)
        gw = Groundwork(settings, embedder=hash_embedder)
        try:
            summary = gw.ingest([SAMPLES], progress=False).to_json()
            assert summary["failed"] == 0 and summary["added"] >= 7
            again = gw.ingest([SAMPLES], progress=False).to_json()
            assert again["unchanged"] == summary["added"]
            gw.refresh_indexes()
            assert gw.verify()["consistent"]
            hits = gw.pipeline.search(Query("paid annual leave days", Principal("t", all_access=True), k=5)).hits
            results[name] = ([Path(h.source).name for h in hits], summary["chunks"])
        finally:
            gw.close()
    assert results["sqlite"] == results["postgres"]
