"""The source-of-truth store, on SQLite and on a real PostgreSQL 15."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from index.db import SCHEMA_VERSION, make_engine, migrate, open_database
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store


@pytest.fixture
def store(any_store):
    """The store on SQLite and on Postgres (tests/index/conftest.py)."""
    return any_store


def _write(source: str, texts: list[str], groups=(), collection="default", sha="s") -> DocumentWrite:
    chunks = [NewChunk(i, t, len(t.split()), 0, len(t), [1], ["Intro"]) for i, t in enumerate(texts)]
    vectors = np.random.default_rng(len(source)).normal(size=(len(texts), 8)).astype(np.float32)
    return DocumentWrite(collection, source, sha, "Title", "text/plain", " ".join(texts), 10, list(groups), {"k": "v"}, chunks, vectors, "fp")


def test_put_replace_delete_logs_every_change(store):
    doc_id, outcome = store.put_document(_write("a.txt", ["one", "two"]))
    assert outcome == "added"
    first_ids = sorted(store.chunk_records(store.live_chunk_ids()).keys())
    assert len(first_ids) == 2
    _, outcome = store.put_document(_write("a.txt", ["three"], sha="t"))
    assert outcome == "updated"
    second_ids = store.live_chunk_ids().tolist()
    assert len(second_ids) == 1 and second_ids[0] not in first_ids  # ids are never reused
    log = store.changes_since(0)
    ops = [(op, cid) for _, op, cid, _ in log if cid is not None]
    assert ops == [("add", first_ids[0]), ("add", first_ids[1]), ("delete", first_ids[0]), ("delete", first_ids[1]), ("add", second_ids[0])]
    assert store.delete_document(doc_id)
    assert store.live_chunk_ids().size == 0
    assert store.changes_since(0)[-2][1] == "delete"
    assert store.stats()["documents"] == 0


def test_embeddings_round_trip_without_reembedding(store):
    write = _write("b.txt", ["alpha", "beta", "gamma"], groups=["hr", "eng"])
    store.put_document(write)
    records = store.chunk_records(store.live_chunk_ids(), with_embeddings=True)
    vectors = np.stack([records[i].embedding for i in sorted(records)])
    np.testing.assert_array_equal(vectors, write.embeddings)
    assert all(r.embedding is None for r in store.chunk_records(list(records)).values())
    # JSON columns come back as lists on both databases (text on SQLite, decoded by psycopg).
    first = records[min(records)]
    assert (first.pages, first.heading_path, sorted(first.groups), first.collection) == ([1], ["Intro"], ["eng", "hr"], "default")
    rows = [r for batch in store.iter_chunks_for_index(batch=2) for r in batch]
    assert [r[2].split("\n")[-1] for r in rows] == ["alpha", "beta", "gamma"]
    assert rows[0][2].startswith("Title › Intro\n")


def test_chunk_records_sqlite_fast_path_matches_the_core_statement(tmp_path):
    """SQLite reads chunk records with pre-rendered SQL: every column, more than 900 ids, and
    unknown ids must come back exactly as the Core statement returns them."""
    from index.store import _CHUNK_RECORDS, _CHUNK_RECORDS_WITH_EMBEDDINGS

    engine = open_database(Settings(data_dir=tmp_path / "d"))
    store = Store(engine)
    store.put_document(_write("a.txt", [f"text {i}" for i in range(950)], groups=["hr"]))
    store.put_document(_write("b.txt", ["other"], collection="second"))
    ids = store.live_chunk_ids().tolist() + [10**9]
    for with_embeddings in (False, True):
        with engine.connect() as connection:
            core = {r[0]: tuple(r) for r in connection.execute(_CHUNK_RECORDS_WITH_EMBEDDINGS if with_embeddings else _CHUNK_RECORDS,
                                                              {"ids": ids})}
        fast = {r[0]: tuple(r) for start in range(0, len(ids), 900) for r in store._chunk_rows(ids[start : start + 900], with_embeddings)}
        assert fast == core and len(fast) == 951
        records = store.chunk_records(ids, with_embeddings=with_embeddings)
        assert sorted(records) == sorted(core)
        assert (records[ids[-2]].collection, records[ids[0]].groups) == ("second", ["hr"])
    engine.dispose()


def test_failed_document_withdraws_old_chunks(store):
    store.put_document(_write("c.txt", ["x"]))
    doc_id, outcome = store.put_failed_document("default", "c.txt", sha256="z", size_bytes=1, reason="corrupt", detail="bad xref")
    doc = store.get_document(doc_id)
    assert (outcome, doc.status, doc.failure_reason, doc.chunk_count) == ("failed", "failed", "corrupt", 0)
    assert store.live_chunk_ids().size == 0


def test_groups_and_metadata_update_without_touching_chunks(store):
    doc_id, _ = store.put_document(_write("d.txt", ["x", "y"], groups=["hr"]))
    before = store.live_chunk_ids().tolist()
    assert store.list_documents(visible_groups={"eng"}) == []
    store.update_document(doc_id, groups=["eng"], metadata={"team": "core"})
    assert store.live_chunk_ids().tolist() == before
    docs = store.list_documents(visible_groups={"eng"})
    assert [d.id for d in docs] == [doc_id] and docs[0].doc_metadata == {"team": "core"}


def test_same_source_in_two_collections_are_two_documents(store):
    a, _ = store.put_document(_write("e.txt", ["x"], collection="one"))
    b, _ = store.put_document(_write("e.txt", ["x"], collection="two"))
    assert a != b
    assert len(store.documents_in("one")) == 1


def test_migrations_are_versioned_and_idempotent(store):
    assert migrate(store.engine) == SCHEMA_VERSION
    with store.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(text("SELECT version FROM schema_version ORDER BY version"))]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_document_context_and_chunk_fingerprints_round_trip(store):
    write = _write("ctx.txt", ["Follow us on Twitter", "Revenue 1,234"])
    write.context = "ACME CORP · Form 10-Q · quarterly period ended July 30, 2023"
    doc_id, _ = store.put_document(write)
    assert store.get_document(doc_id).context == write.context
    records = store.chunk_records(store.live_chunk_ids())
    assert {r.document_context for r in records.values()} == {write.context}
    rows = [r for batch in store.iter_chunks_for_index() for r in batch]
    assert rows[0][2].startswith("ACME CORP · Form 10-Q · quarterly period ended July 30, 2023 › Intro\n")
    assert store.index_rows([rows[1][0]])[0][2] == rows[1][2]
    with store.engine.connect() as conn:
        prints = [r[0] for r in conn.execute(text("SELECT fingerprint FROM chunk ORDER BY id"))]
    assert all(isinstance(p, int) for p in prints) and prints[0] != prints[1]
    failed_id, _ = store.put_failed_document("default", "ctx.txt", sha256="z", size_bytes=1, reason="corrupt", detail="x")
    assert failed_id == doc_id and store.get_document(doc_id).context is None  # derived again on the next parse


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def schema_2_engine(request, tmp_path):
    """An empty database as schema version 2 left it."""
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgres" else None
    engine = make_engine(Settings(data_dir=tmp_path / "d", database_url=url))
    assert migrate(engine, target=2) == 2
    yield engine
    engine.dispose()


def test_migration_3_keeps_earlier_documents_with_a_null_context(schema_2_engine):
    """Rows written before migration 3 stay, read with a NULL context (ingest derives it on the
    next run) and no fingerprint (never counted as boilerplate)."""
    engine = schema_2_engine
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO collection (name, created_at) VALUES ('default', CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO document (collection_id, source, title, metadata, groups, status, size_bytes, chunk_count, text,"
            " created_at, updated_at) VALUES (1, 'old.txt', 'Old', '{}', '[]', 'indexed', 1, 1, 'kept', CURRENT_TIMESTAMP,"
            " CURRENT_TIMESTAMP)"))
        conn.execute(text('INSERT INTO chunk (document_id, ordinal, text, context, token_count, start, "end", pages,'
                          " heading_path, kind) VALUES (1, 0, 'kept', '', 1, 0, 4, '[]', '[]', 'text')"))
    assert migrate(engine) == SCHEMA_VERSION >= 3
    store = Store(engine)
    assert store.get_document(1).context is None
    record = store.chunk_records([1])[1]
    assert (record.text, record.document_context) == ("kept", None)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT fingerprint FROM chunk")).scalar() is None


def test_chunk_neighbours_and_kind_read_a_documents_chunks_in_order(store):
    """What a table window reads around a hit (service/query/windows.py), on both databases."""
    texts = ["intro", "head | 2023", "row a | 2023: 1", "row b | 2023: 2", "outro"]
    kinds = ["text", "table", "table", "table", "text"]
    write = _write("t.txt", texts)
    write.chunks = [NewChunk(i, t, 2, 0, len(t), [i + 1], [], kinds[i], "head" if i in (2, 3) else "")
                    for i, t in enumerate(texts)]
    document_id, _ = store.put_document(write)
    rows = store.chunk_neighbours(document_id, 1, 3)
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (1, "table", "", "head | 2023", [2]), (2, "table", "head", "row a | 2023: 1", [3]), (3, "table", "head", "row b | 2023: 2", [4])]
    assert store.chunk_neighbours(document_id, -5, 0)[0][1] == 0 and store.chunk_neighbours(document_id + 99, 0, 9) == []
    records = store.chunk_records([r[0] for r in rows])
    assert [records[r[0]].kind for r in rows] == ["table"] * 3


def test_chunk_labels_read_headings_context_kind_and_the_head_of_the_text(store):
    """What the section boost reads for its candidates (service/query/sections.py), on both
    databases: the text cut to the head it asks for."""
    write = _write("s.txt", ["CONSOLIDATED BALANCE SHEETS\n| 2023\nCash | 2023: 5", "Liabilities | 2023: 7"])
    write.chunks = [NewChunk(0, write.chunks[0].text, 5, 0, 10, [1], ["Item 8"], "table", ""),
                    NewChunk(1, write.chunks[1].text, 3, 10, 20, [1], ["Item 8"], "table", "CONSOLIDATED BALANCE SHEETS\n| 2023")]
    document_id, _ = store.put_document(write)
    first, second = sorted(store.chunk_ids_of_documents([document_id]))
    labels = store.chunk_labels([second, first, second, 10**9], 12)
    assert labels == {first: (["Item 8"], "", "table", "CONSOLIDATED"),
                      second: (["Item 8"], "CONSOLIDATED BALANCE SHEETS\n| 2023", "table", "Liabilities ")}
    assert store.chunk_labels([], 12) == {}
