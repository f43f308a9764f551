"""Derived indexes follow the database: catch-up, crash recovery, rebuild, version switch."""

from __future__ import annotations

import numpy as np
import pytest

from index.db import open_database
from index.errors import IndexCorrupt
from index.indexset import EmbeddingIdentity, IndexSet, IndexWriteFailed, ModelMismatch
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


# --- failing closed: positions, lag, corruption -----------------------------------------------------

def _fail_once(monkeypatch, target, name: str, error: BaseException) -> list[int]:
    """Make ``target.name`` raise ``error`` until the returned list is cleared."""
    armed = [1]
    original = getattr(target, name)

    def maybe_fail(*args, **kwargs):
        if armed:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, maybe_fail)
    return armed


def test_a_failed_keyword_commit_leaves_its_position_and_the_next_catch_up_replays(env, monkeypatch):
    """The disk-full probe: the keyword commit failed, the follower gave up, and the keyword
    index stayed short for good while health said ok."""
    settings, store = env
    _write(store, "a", ["alpha one"])
    ix = _open(settings, store)
    keyword_before = ix.keyword.position
    armed = _fail_once(monkeypatch, ix.keyword.inner, "commit", OSError(28, "No space left on device"))
    _write(store, "b", ["beta two", "beta three"])
    with pytest.raises(IndexWriteFailed, match="No space left"):
        ix.catch_up()
    lag = ix.lag()
    assert ix.keyword.position == keyword_before and lag.keyword_behind > 0
    assert lag.vectors_behind == 0 and ix.vectors.live_count == 3  # the vectors went on
    assert any(p.startswith(f"keyword index behind by {lag.keyword_behind}") for p in lag.problems())
    assert ix.health()["status"] == "degraded"
    with pytest.raises(IndexWriteFailed):  # still failing: still behind, nothing skipped
        ix.catch_up()
    armed.clear()  # space freed
    ix.catch_up()
    assert ix.lag().problems() == [] and ix.health()["status"] == "ok"
    assert [c for c, _ in ix.keyword.search("beta", 5)]
    assert ix.verify()["consistent"]
    ix.close()


def test_a_failed_vector_save_is_retried_even_without_new_changes(env, monkeypatch):
    settings, store = env
    settings.vector_save_interval_s = 0  # every catch-up saves
    _write(store, "a", ["alpha one"])
    ix = _open(settings, store)
    armed = _fail_once(monkeypatch, ix.vectors, "save", RuntimeError("write error: No space left on device"))
    _write(store, "b", ["beta two"])
    with pytest.raises(IndexWriteFailed):
        ix.catch_up()
    lag = ix.lag()
    assert lag.vectors_position == lag.database_position and lag.vectors_saved_position < lag.vectors_position
    assert any("vector index saved only up to" in p for p in lag.problems())
    armed.clear()
    assert ix.catch_up() == 0  # nothing new to apply, but the save is done now
    assert ix.lag().vectors_saved_position == ix.lag().database_position
    ix.close()
    again = _open(settings, store)
    assert again.vectors.position == again.lag().database_position and again.verify()["consistent"]
    again.close()


def test_opening_while_writes_fail_serves_what_is_there(env, monkeypatch):
    """A restart on a still-full disk must not take the service down with it."""
    import index.keyword_tantivy as keyword_tantivy

    settings, store = env
    _write(store, "a", ["alpha one"])
    _open(settings, store).close()
    _write(store, "b", ["beta two"])
    armed = _fail_once(monkeypatch, keyword_tantivy.TantivyKeywordIndex, "commit", OSError(28, "No space left on device"))
    ix = _open(settings, store)
    assert ix.lag().keyword_behind > 0 and ix.health()["status"] == "degraded"
    armed.clear()
    ix.catch_up()
    assert ix.lag().keyword_behind == 0
    ix.close()


class EnginePanic(BaseException):
    """Stands for pyo3's PanicException."""


def test_a_panicking_keyword_engine_is_marked_corrupt_and_rebuilt_at_the_next_catch_up(env, monkeypatch):
    settings, store = env
    _write(store, "a", ["alpha words here", "beta words there"])
    ix = _open(settings, store)
    monkeypatch.setattr(ix.keyword.inner, "search", lambda *a, **k: (_ for _ in ()).throw(EnginePanic("index out of bounds")))
    with pytest.raises(IndexCorrupt):
        ix.keyword.search("alpha", 5)
    assert ix.lag().keyword_corrupt and ix.health()["status"] == "degraded"
    with pytest.raises(IndexCorrupt):  # fails fast until rebuilt
        ix.keyword.search("beta", 5)
    ix.catch_up()
    assert [c for c, _ in ix.keyword.search("alpha", 5)]
    assert ix.lag().keyword_corrupt is None and any("rebuilt from the database" in r for r in ix.repairs)
    report = ix.verify()
    assert report["consistent"] and report["repaired"]
    ix.close()


def test_damaged_keyword_files_are_found_by_verify_and_repaired_by_the_writer(env):
    settings, store = env
    _write(store, "a", [f"word{i} text" for i in range(50)])
    ix = _open(settings, store)
    engine_dir = settings.data_dir / "indexes" / f"v{ix.version}" / "keyword" / "tantivy"
    target = max(engine_dir.glob("*.idx"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = ix.verify()
    assert report["consistent"] and any("files differ from their manifest" in r for r in report["repaired"])
    assert ix.keyword.verify_files() == [] and ix.keyword.count() == 50
    ix.close()


def test_indexes_ahead_of_a_restored_database_are_rebuilt(env, tmp_path):
    """A database restored from an older copy: the index positions point past its change log,
    whose numbers will be reused for other changes, so the indexes are built afresh."""
    import shutil

    settings, store = env
    _write(store, "a", ["kept words"])
    store.engine.dispose()
    database = settings.data_dir / "groundwork.db"
    shutil.copy(database, tmp_path / "snapshot.db")
    ix = _open(settings, store)
    _write(store, "b", ["lost words", "more lost words"])
    ix.catch_up()
    ix.close()
    store.engine.dispose()
    shutil.copy(tmp_path / "snapshot.db", database)  # the restore
    restored = Store(open_database(settings))
    again = _open(settings, restored)
    assert any("past the database" in r for r in again.repairs)
    assert again.vectors.live_count == 1 and again.keyword.search("lost", 5) == []
    _write(restored, "c", ["new words"])  # reuses change-log numbers the old index had applied
    again.catch_up()
    assert again.verify()["consistent"] and again.keyword.search("new", 5)
    again.close()


def _visible_to(store: Store, groups: frozenset[str]) -> set[int]:
    return {d.id for d in store.list_documents(limit=1000) if not d.groups or groups & set(d.groups)}


def test_the_keyword_index_follows_a_documents_new_groups(env):
    """Groups are written with every chunk (the group filter's terms): a change of a
    document's groups alone rewrites its chunks there at the next catch-up."""
    settings, store = env
    private = _write(store, "private", ["quarterly revenue table"], groups=("finance",))
    for n in range(80):  # enough documents for the group route (over 64 allowed)
        _write(store, f"public-{n}", [f"note {n}"])
    ix = _open(settings, store)
    sales = frozenset({"sales"})
    hidden = ix.keyword.search("revenue", 5, allowed_document_ids=_visible_to(store, sales), allowed_groups=sales)
    assert hidden == []
    store.update_document(private, groups=["sales"])
    ix.catch_up()
    visible = ix.keyword.search("revenue", 5, allowed_document_ids=_visible_to(store, sales), allowed_groups=sales)
    assert len(visible) == 1
    ix.close()


def test_a_new_title_reaches_the_keyword_text_at_the_next_catch_up(env):
    """Regression: the keyword text carries the document's title, but a title change alone
    (no chunk changed) left the old words searchable until a rebuild."""
    settings, store = env
    doc = _write(store, "a", ["body text"])
    ix = _open(settings, store)
    store.update_document(doc, title="Zanzibar handbook")
    ix.catch_up()
    assert len(ix.keyword.search("zanzibar", 5)) == 1
    ix.close()


def test_a_keyword_index_from_before_group_terms_is_rebuilt_at_open(env, monkeypatch, keyword_format_before_groups):
    import index.keyword_tantivy as keyword_tantivy

    settings, store = env
    for n in range(70):
        _write(store, f"a{n}", ["alpha"], groups=("eng",))
    original_schema = keyword_tantivy._schema
    with keyword_format_before_groups():
        _open(settings, store).close()
    assert keyword_tantivy._schema is original_schema
    ix = _open(settings, store)
    # Answered by the group terms alone: the rebuilt index has them.
    monkeypatch.setattr(keyword_tantivy.TantivyKeywordIndex, "_search_allowed", None)
    eng = frozenset({"eng"})
    assert len(ix.keyword.search("alpha", 5, allowed_document_ids=_visible_to(store, eng), allowed_groups=eng)) == 5
    ix.close()


def test_a_new_documents_chunks_are_read_once_per_catch_up(env, monkeypatch):
    """A new document logs a document change beside its chunks: the chunks it added are not
    read a second time as a document whose groups changed."""
    settings, store = env
    ix = _open(settings, store)
    _write(store, "a", ["one", "two", "three"])
    read: list[int] = []
    original = store.index_rows

    def counting(chunk_ids):
        read.extend(chunk_ids)
        return original(chunk_ids)

    monkeypatch.setattr(store, "index_rows", counting)
    ix.catch_up()
    assert len(read) == 3 and len(set(read)) == 3
    ix.close()


def test_vector_saves_are_spaced_out_and_a_clean_close_saves(env, monkeypatch):
    """A save rewrites the whole vector file, so catch-ups save at most every
    ``vector_save_interval_s``; what they applied meanwhile is searchable from memory, is not
    reported as a problem, and a crash replays it from the change log."""
    settings, store = env
    _write(store, "a", ["alpha one"])
    ix = _open(settings, store)
    saves: list[int] = []
    original = ix.vectors.save
    monkeypatch.setattr(ix.vectors, "save", lambda directory, position: (saves.append(position), original(directory, position=position)))
    _write(store, "b", ["beta two"])
    ix.catch_up()
    lag = ix.lag()
    assert saves == [] and lag.vectors_position == lag.database_position > lag.vectors_saved_position
    assert lag.problems() == [] and ix.vectors.live_count == 2
    # A crash now (no close): the next writer replays the unsaved change from the log.
    ix.lock.release()
    crashed = _open(settings, store)
    assert crashed.vectors.live_count == 2 and crashed.verify()["consistent"]
    crashed.close()
    # Past the interval the next catch-up saves; a clean close saves what is left.
    again = _open(settings, store)
    monkeypatch.setattr(again, "_vectors_saved_at", again._vectors_saved_at - settings.vector_save_interval_s)
    _write(store, "c", ["gamma three"])
    again.catch_up()
    assert again.lag().vectors_saved_position == again.lag().database_position
    _write(store, "d", ["delta four"])
    again.catch_up()
    assert again.lag().vectors_saved_position < again.lag().database_position
    again.close()
    reopened = _open(settings, store)
    assert reopened.lag().vectors_saved_position == reopened.lag().database_position == reopened.vectors.position
    reopened.close()
