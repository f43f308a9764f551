"""A fresh store on SQLite and on a real PostgreSQL, for the data-access tests."""

from __future__ import annotations

from contextlib import contextmanager

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


@pytest.fixture
def keyword_format_before_groups(monkeypatch):
    """A context in which tantivy keyword indexes are written as before access groups were
    indexed (no groups field), to test what opening such an index does afterwards."""
    import tantivy

    import index.keyword_tantivy as keyword_tantivy

    def schema_without_groups(analyzer):
        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field(keyword_tantivy.CHUNK_ID, indexed=True, fast=True)
        builder.add_unsigned_field(keyword_tantivy.DOCUMENT_ID, indexed=True, fast=True)
        builder.add_text_field(keyword_tantivy.TEXT, stored=False, tokenizer_name=keyword_tantivy._tokenizer_name(analyzer), index_option="freq")
        return builder.build()

    @contextmanager
    def before_groups():
        with monkeypatch.context() as patched:
            patched.setattr(keyword_tantivy, "_schema", schema_without_groups)
            patched.setattr(keyword_tantivy, "_has_group_terms", lambda _schema: True)
            patched.setattr(keyword_tantivy, "group_terms", lambda _groups: [])
            yield

    return before_groups
