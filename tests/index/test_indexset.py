"""Derived indexes follow the database: catch-up, crash recovery, rebuild, version switch."""

from __future__ import annotations

import numpy as np
import pytest

from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet, ModelMismatch
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store

DIM = 16


def _write(store: Store, source: str, texts: list[str], groups=()) -> int:
    rng = np.random.default_rng(abs(hash(source)) % 2**32)
    vecs = rng.normal(size=(len(texts), DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [NewChunk(i, t, len(t.split()), 0, len(t), [], []) for i, t in enumerate(texts)]
    doc_id, _ = store.put_document(DocumentWrite("default", source, source, None, "text/plain", " ".join(texts), 1, list(groups), {}, chunks, vecs, "fp-A"))
    return doc_id


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    store = Store(open_database(settings))
    return settings, store


def _open(settings, store, fp="fp-A") -> IndexSet:
    return IndexSet(settings, store, EmbeddingIdentity("test-model", fp, DIM)).open()


def test_builds_then_catches_up_and_persists(env):
    settings, store = env
    _write(store, "a", ["alpha beta", "gamma delta"])
    ix = _open(settings, store)
    assert ix.vectors.live_count == 2 and ix.keyword.count() == 2
    doc_b = _write(store, "b", ["epsilon zeta"])
    assert ix.catch_up() > 0
    assert ix.vectors.live_count == 3
    assert [cid for cid, _ in ix.keyword.search("epsilon", 5)]
    store.delete_document(doc_b)
    ix.catch_up()
    assert ix.vectors.live_count == 2 and ix.keyword.search("epsilon", 5) == []
    position = ix.position
    ix.close()
    again = _open(settings, store)
    assert again.position == position and again.vectors.live_count == 2
    assert again.verify()["consistent"]
    again.close()


def test_database_ahead_of_index_after_crash_is_caught_up(env):
    settings, store = env
    _write(store, "a", ["one"])
    ix = _open(settings, store)
    ix.close()
    # Writes acknowledged by the database while no index process ran (or it crashed before saving).
    _write(store, "b", ["two"])
    _write(store, "c", ["three"])
    again = _open(settings, store)
    assert again.vectors.live_count == 3
    assert again.verify()["consistent"]
    again.close()


def test_corrupt_vector_file_is_rebuilt_from_stored_embeddings(env):
    settings, store = env
    _write(store, "a", ["one", "two", "three"])
    ix = _open(settings, store)
    version_dir = settings.data_dir / "indexes" / f"v{ix.version}" / "vectors"
    ix.close()
    index_files = [p for p in version_dir.iterdir() if p.name != "manifest.json" and not p.name.startswith(".")]
    assert index_files
    for path in index_files:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    again = _open(settings, store)
    assert again.vectors.live_count == 3
    assert any("rebuilding" in e for e in again.events)
    assert again.verify()["consistent"]
    again.close()


def test_missing_keyword_index_is_rebuilt(env):
    import shutil

    settings, store = env
    _write(store, "a", ["searchable words here"])
    ix = _open(settings, store)
    kw_dir = settings.data_dir / "indexes" / f"v{ix.version}" / "keyword"
    ix.close()
    shutil.rmtree(kw_dir)
    again = _open(settings, store)
    assert again.keyword.count() == 1
    again.close()


def test_reindex_switches_version_and_keeps_results(env):
    settings, store = env
    for i in range(5):
        _write(store, f"doc{i}", [f"text number {i} about topic{i}"])
    ix = _open(settings, store)
    before = ix.keyword.search("topic3", 3)
    v1 = ix.version
    v2 = ix.rebuild()
    assert v2 == v1 + 1
    assert (settings.data_dir / "indexes" / "CURRENT.json").read_text().count(str(v2))
    assert [c for c, _ in ix.keyword.search("topic3", 3)] == [c for c, _ in before]
    assert ix.verify()["consistent"]
    ix.close()


def test_index_from_another_model_is_refused(env):
    settings, store = env
    _write(store, "a", ["one"])
    _open(settings, store).close()
    with pytest.raises(ModelMismatch, match="reindex --reembed"):
        _open(settings, store, fp="fp-B")


def test_search_holding_the_old_pair_survives_a_switch(env):
    """Regression: a reindex closed the old keyword index under in-flight searches (HTTP 500s)."""
    settings, store = env
    _write(store, "a", ["alpha words", "beta words"])
    ix = _open(settings, store)
    old_vectors, old_keyword = ix.vectors, ix.keyword  # what a running search captured
    ix.rebuild()
    assert ix.keyword is not old_keyword
    assert old_keyword.search("alpha", 5)  # still usable
    query = np.ones((1, DIM), dtype=np.float32) / np.sqrt(DIM)
    assert (old_vectors.search(query, 2)[1] >= 0).all()
    ix.close()
