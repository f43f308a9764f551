"""Fixtures of the fault suite: one clean data folder built per session, copied per fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.harness import keyword_answers, open_groundwork, settings_for, snapshot, write_corpus


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> dict:
    """A corpus ingested cleanly, indexes saved and closed, with what a correct copy shows:
    its snapshot and its keyword answers."""
    root = tmp_path_factory.mktemp("clean")
    corpus = write_corpus(root / "corpus")
    data = root / "data"
    gw = open_groundwork(settings_for(data))
    try:
        gw.ingest([corpus], progress=False)
        gw.refresh_indexes()
        answers = keyword_answers(gw)
        assert gw.verify()["consistent"]
    finally:
        gw.close()
    return {"corpus": corpus, "data": data, "snapshot": snapshot(data / "groundwork.db"), "answers": answers}


@pytest.fixture
def damaged_copy(clean, tmp_path) -> Path:
    """A private copy of the clean data folder, to damage."""
    target = tmp_path / "data"
    shutil.copytree(clean["data"], target)
    return target


@pytest.fixture
def restartable_postgres(private_postgres):
    """(url, restart) of a private PostgreSQL cluster (tests/conftest.py)."""
    return private_postgres.url, private_postgres.restart
