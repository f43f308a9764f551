"""A fresh store on SQLite and on a real PostgreSQL, for the data-access tests."""

from __future__ import annotations

import pytest

from index.db import open_database
from index.settings import Settings
from index.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path / "d")
    else:
        settings = Settings(data_dir=tmp_path / "d", database_url=request.getfixturevalue("fresh_postgres_url"))
    engine = open_database(settings)
    yield Store(engine)
    engine.dispose()
