"""The bulk write path (``Store.put_documents``) against the per-document one, on SQLite and
PostgreSQL: the same rows, the same change log, the same all-or-nothing transaction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

from index.db import open_database
from index.models import Chunk, Document
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store


@pytest.fixture
def store(any_store):
    return any_store


def _write(source: str, texts: list[str], groups=("hr",), collection="default", sha="s") -> DocumentWrite:
    chunks = [NewChunk(i, t, len(t.split()), 0, len(t), [1], ["Intro"]) for i, t in enumerate(texts)]
    vectors = np.random.default_rng(len(source) + len(texts)).normal(size=(len(texts), 8)).astype(np.float32)
    return DocumentWrite(collection, source, sha, "Title", "text/plain", " ".join(texts), 10, list(groups), {"k": "v"}, chunks, vectors, "fp")


def _snapshot(store: Store) -> list[tuple]:
    """What a write leaves, without ids and times: documents with their chunks, in id order."""
    names = store.collections()
    with Session(store.engine) as session:
        docs = session.execute(select(Document).order_by(Document.id)).scalars().all()
        out = []
        for d in docs:
            chunks = session.execute(select(Chunk).where(Chunk.document_id == d.id).order_by(Chunk.id)).scalars().all()
            out.append((names[d.collection_id], d.source, d.sha256, d.title, d.groups, d.doc_metadata, d.status, d.chunk_count, d.text,
                        d.embedding_fingerprint,
                        [(c.ordinal, c.text, c.pages, c.heading_path, c.fingerprint, c.embedding) for c in chunks]))
        return out


def _log_shape(store: Store) -> list[tuple]:
    """The change log as (op, ordinal of the chunk within its document or None, document source)."""
    with Session(store.engine) as session:
        sources = dict(session.execute(select(Document.id, Document.source)).all())
    return sorted((op, sources.get(doc, doc), chunk is None) for _, op, chunk, doc in store.changes_since(0))


def test_bulk_writes_what_the_per_document_path_writes(tmp_path, store):
    writes = [_write("a.txt", ["one", "two"]), _write("b.txt", ["three"], collection="other"), _write("c.txt", [])]
    other = Store(open_database(Settings(data_dir=tmp_path / "single")))
    for write in writes:
        other.put_document(write)
    outcomes = store.put_documents(writes)
    assert [o for _, o in outcomes] == ["added", "added", "added"]
    assert _snapshot(store) == _snapshot(other)
    assert _log_shape(store) == _log_shape(other)
    # ids returned are the documents' ids, in the order given
    assert [store.get_document(i).source for i, _ in outcomes] == ["a.txt", "b.txt", "c.txt"]
    other.engine.dispose()


def test_bulk_replaces_existing_documents_and_logs_their_deletes(store):
    store.put_document(_write("a.txt", ["old one", "old two"]))
    old_ids = store.live_chunk_ids().tolist()
    outcomes = store.put_documents([_write("a.txt", ["new"], sha="t"), _write("b.txt", ["fresh"])])
    assert [o for _, o in outcomes] == ["updated", "added"]
    records = store.chunk_records(store.live_chunk_ids())
    assert sorted(r.text for r in records.values()) == ["fresh", "new"]
    assert not set(old_ids) & set(records)  # chunk ids are never reused
    deleted = [chunk for _, op, chunk, _ in store.changes_since(0) if op == "delete"]
    assert sorted(deleted) == sorted(old_ids)
    assert store.get_document(outcomes[0][0]).sha256 == "t"


def test_a_failing_batch_leaves_nothing(store):
    store.put_document(_write("keep.txt", ["kept"]))
    before = (_snapshot(store), store.max_seq())
    bad = _write("bad.txt", ["x", "y"])
    bad.embeddings = bad.embeddings[:1]
    with pytest.raises(ValueError):
        store.put_documents([_write("a.txt", ["one"]), bad])
    with pytest.raises(ValueError, match="twice"):
        store.put_documents([_write("a.txt", ["one"]), _write("a.txt", ["two"])])
    assert (_snapshot(store), store.max_seq()) == before


def test_a_batch_the_database_refuses_is_rolled_back_whole(store):
    before = store.max_seq()
    poisoned = _write("b.txt", ["two"])
    poisoned.chunks.append(NewChunk(0, "same ordinal twice", 3, 0, 5, [1], []))  # violates uq_chunk_ordinal
    poisoned.embeddings = np.vstack([poisoned.embeddings, poisoned.embeddings])
    with pytest.raises(Exception):
        store.put_documents([_write("a.txt", ["one"]), poisoned])
    assert store.max_seq() == before and store.live_chunk_ids().size == 0 and store.stats()["documents"] == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3)), min_size=1, max_size=12))
def test_bulk_batches_end_where_single_writes_end(tmp_path_factory, batches):
    """Any sequence of (re)writes, applied in bulk batches or one by one, leaves the same rows."""
    root = tmp_path_factory.mktemp("bulk")
    bulk = Store(open_database(Settings(data_dir=root / "bulk")))
    single = Store(open_database(Settings(data_dir=root / "single")))
    pending: dict[str, DocumentWrite] = {}
    for step, (name, size) in enumerate(batches):
        write = _write(f"{name}.txt", [f"{name} {step} {i}" for i in range(size)], sha=str(step))
        single.put_document(write)
        if write.source in pending:  # a batch holds each document once
            bulk.put_documents(list(pending.values()))
            pending = {}
        pending[write.source] = write
    bulk.put_documents(list(pending.values()))
    assert sorted(_snapshot(bulk), key=lambda d: d[1]) == sorted(_snapshot(single), key=lambda d: d[1])
    assert sorted(bulk.live_chunk_ids().tolist()) == bulk.live_chunk_ids().tolist()
    bulk.engine.dispose()
    single.engine.dispose()
