"""The catalog follows the change log by re-reading only the documents a change touched; it
must end exactly where a full reload ends, whatever the changes were."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.boilerplate import shared_document_counts
from index.catalog import Catalog
from index.db import open_database
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store


def _write(name: str, texts: list[str], groups: list[str]) -> DocumentWrite:
    chunks = [NewChunk(i, t, 2, 0, len(t), [1], []) for i, t in enumerate(texts)]
    vectors = np.ones((len(texts), 4), dtype=np.float32)
    return DocumentWrite("default", f"{name}.txt", name, f"Title {name}", "text/plain", " ".join(texts), 1, groups, {}, chunks, vectors, "fp")


def _state(catalog: Catalog) -> tuple:
    ids, documents, shared = catalog._chunk_facts
    return (catalog.docs, {d: c.tolist() for d, c in catalog.doc_chunks.items()}, ids.tolist(), documents.tolist(), shared.tolist())


OPS = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "groups"]), st.sampled_from("abcde"), st.integers(0, 3),
              st.sampled_from([[], ["hr"], ["eng"]]), st.booleans()),
    min_size=1, max_size=12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS, st.integers(1, 4))
def test_incremental_refresh_ends_where_a_full_reload_ends(tmp_path_factory, ops, refresh_every):
    store = Store(open_database(Settings(data_dir=tmp_path_factory.mktemp("catalog"))))
    following = Catalog(store)
    following.refresh()
    for step, (op, name, size, groups, boilerplate) in enumerate(ops):
        existing = store.find_document("default", f"{name}.txt")
        if op == "put":
            texts = [("shared notice" if boilerplate and i == 0 else f"{name} {step} {i}") for i in range(size)]
            store.put_document(_write(name, texts, groups))
        elif op == "delete" and existing is not None:
            store.delete_document(existing.id)
        elif op == "groups" and existing is not None:
            store.update_document(existing.id, groups=groups)
        if step % refresh_every == 0:
            following.refresh()
    following.refresh()
    fresh = Catalog(store)
    fresh.refresh()
    assert _state(following) == _state(fresh)
    store.engine.dispose()


def test_many_changes_reload_everything(tmp_path, monkeypatch):
    store = Store(open_database(Settings(data_dir=tmp_path)))
    catalog = Catalog(store, incremental_max_changes=3)
    catalog.refresh()
    calls = []
    monkeypatch.setattr(catalog, "_load_all", lambda position: calls.append(position) or Catalog._load_all(catalog, position))
    store.put_document(_write("a", ["one"], []))  # 2 change-log rows
    catalog.refresh()
    assert calls == []
    store.put_document(_write("b", ["one", "two", "three"], []))  # 4 rows: past the limit
    catalog.refresh()
    assert calls == [store.max_seq()]
    assert sorted(catalog.docs) == sorted(d.id for d in store.list_documents())


def test_a_large_catalog_rebuilds_its_document_index_off_the_search_path(tmp_path):
    store = Store(open_database(Settings(data_dir=tmp_path)))
    store.put_document(_write("alpha", ["x"], []))
    catalog = Catalog(store, document_index_sync_max=0)
    catalog.refresh()
    assert catalog.document_index.scores("title alpha") == {}  # none until the first is built
    deadline = time.monotonic() + 10
    while not catalog.document_index.scores("title alpha") and time.monotonic() < deadline:
        time.sleep(0.01)
    first = catalog.document_index
    assert first.scores("title alpha")
    store.put_document(_write("omega", ["y"], []))
    catalog.refresh()
    assert catalog.document_index is first  # the previous one answers while the new one builds
    deadline = time.monotonic() + 10
    while catalog.document_index is first and time.monotonic() < deadline:
        time.sleep(0.01)
    omega = store.find_document("default", "omega.txt").id
    assert omega in catalog.document_index.scores("omega")


def test_a_small_catalog_builds_its_document_index_where_it_is_asked_for(tmp_path):
    store = Store(open_database(Settings(data_dir=tmp_path)))
    store.put_document(_write("alpha", ["x"], []))
    catalog = Catalog(store, document_index_sync_max=10)
    catalog.refresh()
    assert catalog.document_index.scores("alpha")
    store.put_document(_write("omega", ["y"], []))
    catalog.refresh()
    assert store.find_document("default", "omega.txt").id in catalog.document_index.scores("omega")


@pytest.mark.parametrize("seed", range(5))
def test_shared_document_counts_counts_distinct_documents(seed):
    rng = np.random.default_rng(seed)
    documents = rng.integers(0, 20, 300)
    prints = rng.integers(0, 6, 300)  # 0: no fingerprint
    expected = [1 if f == 0 else len({d for d, g in zip(documents, prints) if g == f}) for f in prints]
    assert shared_document_counts(documents, prints).tolist() == expected


def test_incremental_and_full_agree_on_both_databases(any_store):
    """The driver-level reads (chunk rows, SQLite's document attributes) on SQLite and PostgreSQL."""
    store = any_store
    following = Catalog(store)
    following.refresh()
    store.put_document(_write("a", ["shared notice", "a one"], ["hr"]))
    store.put_document(_write("b", ["shared notice"], []))
    following.refresh()
    store.update_document(store.find_document("default", "a.txt").id, groups=["eng"])
    store.delete_document(store.find_document("default", "b.txt").id)
    store.put_document(_write("c", ["c one", "c two", "c three"], []))
    following.refresh()
    fresh = Catalog(store)
    fresh.refresh()
    assert _state(following) == _state(fresh)
    assert following.docs[store.find_document("default", "a.txt").id].groups == frozenset({"eng"})
    assert len(following._chunk_facts[0]) == 5
