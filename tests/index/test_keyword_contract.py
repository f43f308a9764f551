"""The contract every keyword engine must honour; each test runs once per engine."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.keyword import (
    BM25S_ENGINE,
    ENGINES,
    KeywordDoc,
    KeywordIndex,
    KeywordIndexMismatch,
    read_manifest,
)
from index.keyword_factory import open_keyword_index


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    if request.param == BM25S_ENGINE:
        pytest.importorskip("bm25s")
    return request.param


@pytest.fixture
def opened(engine, tmp_path):
    """Opens indexes under tmp_path and closes whatever a test leaves open."""
    indexes: list[KeywordIndex] = []

    def _open(name: str = "kw", analyzer: str = "en_stem") -> KeywordIndex:
        index = open_keyword_index(tmp_path / name, analyzer, engine=engine)
        indexes.append(index)
        return index

    yield _open
    for index in indexes:
        index.close()


def doc(chunk_id: int, text: str, document_id: int | None = None) -> KeywordDoc:
    return KeywordDoc(chunk_id, chunk_id if document_id is None else document_id, text)


def ids(results: list[tuple[int, float]]) -> list[int]:
    return [chunk_id for chunk_id, _ in results]


ANIMALS = [
    doc(1, "The quick brown fox jumps over the lazy dog"),
    doc(2, "A dog runs in the park every morning"),
    doc(3, "Cats sleep most of the day"),
    doc(4, "Foxes and wolves are wild relatives of the dog"),
    doc(5, "Stock markets fell sharply on Monday"),
]


# --- lifecycle ---------------------------------------------------------------------------
def test_new_index_is_empty_and_has_a_manifest(opened, engine, tmp_path):
    index = opened()
    assert isinstance(index, KeywordIndex)
    assert index.name == engine
    assert index.position == 0
    assert index.count() == 0
    assert index.search("dog", 10) == []
    manifest = read_manifest(tmp_path / "kw")
    assert (manifest.engine, manifest.analyzer, manifest.position, manifest.doc_count) == (engine, "en_stem", 0, 0)


def test_changes_become_visible_at_commit(opened):
    index = opened()
    index.upsert(ANIMALS)
    assert index.search("dog", 10) == []
    assert index.count() == 0
    index.commit(1)
    assert set(ids(index.search("dog", 10))) == {1, 2, 4}
    assert index.count() == len(ANIMALS)


def test_results_are_positive_best_first_and_within_k(opened):
    index = opened()
    index.upsert(ANIMALS + [doc(6, "dog dog dog"), doc(7, "dog"), doc(8, "dog")])
    index.commit(1)
    results = index.search("dog", 4)
    assert len(results) == 4
    assert ids(results)[0] == 6
    scores = [score for _, score in results]
    assert all(score > 0 for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert ids(index.search("dog", 10))[:3] == [6, 7, 8]  # equal scores: lower chunk id first


def test_upsert_replaces_an_existing_chunk(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    index.upsert([doc(3, "Parrots talk"), doc(3, "Parrots can talk and sing")])
    index.commit(2)
    index.upsert([doc(3, "Parrots sing loudly")])
    index.upsert([doc(3, "Parrots sing loudly")])
    index.commit(3)
    assert index.count() == len(ANIMALS)
    assert index.search("cats", 10) == []
    assert index.search("talk", 10) == []
    assert ids(index.search("sing", 10)) == [3]


def test_upsert_can_move_a_chunk_to_another_document(opened):
    index = opened()
    index.upsert([doc(1, "shared words", document_id=10)])
    index.commit(1)
    index.upsert([doc(1, "shared words", document_id=20)])
    index.commit(2)
    assert index.search("shared", 10, allowed_document_ids={10}) == []
    assert ids(index.search("shared", 10, allowed_document_ids={20})) == [1]


def test_delete_removes_chunks_and_ignores_unknown_ids(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    index.delete([2, 4, 999, 2])
    index.delete([])
    index.commit(2)
    assert ids(index.search("dog", 10)) == [1]
    assert index.count() == len(ANIMALS) - 2


def test_delete_then_upsert_in_one_batch_keeps_the_upsert(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    index.delete([3])
    index.upsert([doc(3, "Cats purr")])
    index.upsert([doc(5, "Markets rallied")])
    index.delete([5])
    index.commit(2)
    assert ids(index.search("cats", 10)) == [3]
    assert index.search("markets", 10) == []


def test_commit_persists_position_and_reopen_gives_same_results(opened, engine, tmp_path):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(7)
    index.delete([5])
    index.commit(9)
    before = {q: index.search(q, 10) for q in ["dog", "fox jumps", "markets", "sleeping cats"]}
    index.close()
    reopened = opened()
    assert reopened.position == 9
    assert reopened.count() == len(ANIMALS) - 1
    for query, results in before.items():
        assert ids(reopened.search(query, 10)) == ids(results)
        assert [s for _, s in reopened.search(query, 10)] == pytest.approx([s for _, s in results])
    manifest = read_manifest(tmp_path / "kw")
    assert (manifest.position, manifest.doc_count) == (9, len(ANIMALS) - 1)
    # Without naming the engine, the factory reopens whatever is on disk.
    reopened.close()
    again = open_keyword_index(tmp_path / "kw")
    try:
        assert again.name == engine and again.position == 9
    finally:
        again.close()


def test_uncommitted_changes_are_discarded_on_close(opened):
    index = opened()
    index.upsert(ANIMALS[:2])
    index.commit(1)
    index.upsert(ANIMALS[2:])
    index.delete([1])
    index.close()
    reopened = opened()
    assert reopened.position == 1
    assert reopened.count() == 2
    assert set(ids(reopened.search("dog", 10))) == {1, 2}


def test_commit_without_changes_advances_position(opened):
    index = opened()
    index.commit(3)
    index.commit(3)
    index.commit(4)
    assert index.position == 4


def test_position_never_moves_backwards(opened):
    index = opened()
    index.commit(5)
    with pytest.raises(ValueError):
        index.commit(4)
    assert index.position == 5


def test_invalid_ids_are_rejected(opened):
    index = opened()
    with pytest.raises(ValueError):
        index.upsert([KeywordDoc(-1, 1, "x")])
    with pytest.raises(ValueError):
        index.upsert([KeywordDoc(1, -1, "x")])
    with pytest.raises(ValueError):
        index.delete([-3])


def test_numpy_integer_ids_are_accepted(opened):
    index = opened()
    index.upsert([KeywordDoc(np.int64(1), np.int64(7), "numpy ids")])
    index.commit(1)
    assert ids(index.search("numpy", 5, allowed_document_ids=np.array([7]))) == [1]


def test_closed_index_refuses_calls(opened):
    index = opened()
    index.close()
    index.close()
    with pytest.raises(RuntimeError):
        index.search("dog", 10)


# --- analysis ----------------------------------------------------------------------------
def test_en_stem_matches_inflections(opened):
    index = opened()
    index.upsert([doc(1, "She runs every day"), doc(2, "Connected devices"), doc(3, "Unrelated text")])
    index.commit(1)
    assert ids(index.search("running", 10)) == [1]
    assert ids(index.search("RUN", 10)) == [1]
    assert ids(index.search("connection", 10)) == [2]


def test_default_analyzer_lowercases_without_stemming(opened):
    index = opened(analyzer="default")
    index.upsert([doc(1, "She runs every day"), doc(2, "The running man")])
    index.commit(1)
    assert ids(index.search("RUNS", 10)) == [1]
    assert ids(index.search("running", 10)) == [2]
    assert ids(index.search("the", 10)) == [2]  # no stop words either


def test_whitespace_analyzer_keeps_tokens_exact(opened):
    index = opened(analyzer="whitespace")
    index.upsert([doc(1, "call parse_config(path) now"), doc(2, "Parse the config")])
    index.commit(1)
    assert ids(index.search("parse_config(path)", 10)) == [1]
    assert ids(index.search("Parse", 10)) == [2]
    assert index.search("parse", 10) == []


def test_stop_words_are_ignored(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    assert index.search("the of and a", 10) == []
    assert index.search("the dog", 10) == index.search("dog", 10)


def test_repeated_query_terms_weigh_more(opened):
    index = opened()
    index.upsert([doc(1, "apple"), doc(2, "cherry")])
    index.commit(1)
    assert ids(index.search("apple cherry", 2)) == [1, 2]  # a tie, broken by chunk id
    assert ids(index.search("apple cherry cherry", 2)) == [2, 1]


def test_expansion_terms_count_at_their_weight(opened):
    index = opened()
    index.upsert([doc(1, "apple"), doc(2, "cherry"), doc(3, "plum")])
    index.commit(1)
    alone = dict(index.search("cherry", 3))
    got = dict(index.search("apple", 3, expansion="cherry plum", expansion_weight=0.25))
    assert list(got)[0] == 1 and set(got) == {1, 2, 3}
    assert got[2] == pytest.approx(0.25 * alone[2], rel=1e-4)
    assert dict(index.search("apple", 3, expansion="cherry", expansion_weight=0.0)) == dict(index.search("apple", 3))
    assert ids(index.search("the of", 3, expansion="plum", expansion_weight=0.5)) == [3]  # expansion alone still searches


def test_unicode_text_is_searchable(opened):
    index = opened()
    index.upsert([doc(1, "Crème brûlée at the café"), doc(2, "Ελληνικά κείμενα"), doc(3, "Übergrößenträger")])
    index.commit(1)
    assert ids(index.search("CAFÉ", 10)) == [1]
    assert ids(index.search("κείμενα", 10)) == [2]
    assert ids(index.search("übergrößenträger", 10)) == [3]


HOSTILE_QUERIES = [
    "", " ", "\n\t", '"', '"unbalanced quote', "title:dog", "text:dog", "a:b:c", ":", "(", ")",
    "((dog", "dog))", "AND", "OR", "NOT", "dog AND OR NOT cat", "NOT dog", "-dog", "+dog",
    "*", "do*", "?", "d?g", "dog~", "dog~2", "dog^3", "^", "[a TO z]", "{a TO z}", "\\",
    "/d.g/", "&&||!", "dog" * 10_000, "x" * 100_000, " ".join(f"w{i}" for i in range(20_000)),
    "東京タワー", "🐶🦊", "\x00\x01", "مرحبا بالعالم", "e\u0301", "\ud7ff\ue000", "lone \ud800 surrogate", "IN [1, 2]",
]


@pytest.fixture(scope="module")
def read_only_index(tmp_path_factory):
    """One committed index per engine, shared by the many-example query tests."""
    indexes: dict[str, KeywordIndex] = {}

    def get(engine: str) -> KeywordIndex:
        if engine not in indexes:
            index = open_keyword_index(tmp_path_factory.mktemp(engine) / "kw", engine=engine)
            index.upsert(ANIMALS)
            index.commit(1)
            indexes[engine] = index
        return indexes[engine]

    yield get
    for index in indexes.values():
        index.close()


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
def test_hostile_queries_never_raise(engine, read_only_index, query):
    index = read_only_index(engine)
    results = index.search(query, 5)
    assert isinstance(results, list) and len(results) <= 5
    assert isinstance(index.search(query, 5, allowed_document_ids={1, 2}), list)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=200))
def test_arbitrary_text_queries_never_raise(engine, read_only_index, query):
    assert len(read_only_index(engine).search(query, 3, allowed_document_ids={1, 4})) <= 3


def test_dog_is_found_through_query_syntax(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    for query in ["title:dog", "dog^3", "(dog)", '"dog"', "NOT dog", "dog*"]:
        assert set(ids(index.search(query, 10))) == {1, 2, 4}, query


# --- access control ----------------------------------------------------------------------
def test_filter_applies_before_top_k(opened):
    index = opened()
    # More strong matches than any engine would plausibly over-fetch before filtering.
    strong = [doc(i, "alpha alpha alpha alpha", document_id=1) for i in range(1, 1001)]
    weak = [doc(100, "alpha and many other words that dilute the match", document_id=2)]
    index.upsert(strong + weak)
    index.commit(1)
    assert 100 not in ids(index.search("alpha", 10))
    assert ids(index.search("alpha", 1, allowed_document_ids={2})) == [100]
    assert index.search("alpha", 10, allowed_document_ids=set()) == []
    assert index.search("alpha", 10, allowed_document_ids={3, 4}) == []


def test_large_allowed_sets_work(opened):
    index = opened()
    index.upsert([doc(i, f"common term{i % 7}", document_id=i) for i in range(1, 301)])
    index.commit(1)
    allowed = set(range(100_000, 150_000)) | {5, 77}
    assert set(ids(index.search("common", 300, allowed_document_ids=allowed))) == {5, 77}
    assert set(ids(index.search("common", 300, allowed_document_ids=list(allowed)))) == {5, 77}


def test_k_zero_returns_nothing(opened):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    assert index.search("dog", 0) == []


WORDS = ["alpha", "beta", "gamma", "delta", "omega", "the", "of", "sigma", "kappa", "zeta"]


@st.composite
def corpora(draw):
    n_docs = draw(st.integers(1, 25))
    texts = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=0, max_size=8), min_size=n_docs, max_size=n_docs))
    document_ids = draw(st.lists(st.integers(0, 5), min_size=n_docs, max_size=n_docs))
    return [KeywordDoc(i + 1, d, " ".join(t)) for i, (t, d) in enumerate(zip(texts, document_ids))]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=corpora(),
    queries=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join), min_size=1, max_size=4),
    allowed_sets=st.lists(st.sets(st.integers(0, 7)), min_size=1, max_size=4),
    k=st.integers(1, 6),
)
def test_filtered_search_is_unfiltered_ranking_restricted(engine, docs, queries, allowed_sets, k):
    document_of = {d.chunk_id: d.document_id for d in docs}
    everything = len(docs) + 1
    directory = Path(tempfile.mkdtemp())
    index = open_keyword_index(directory / "kw", engine=engine)
    try:
        index.upsert(docs)
        index.commit(1)
        for query in queries:
            unfiltered = index.search(query, everything)
            for allowed in allowed_sets:
                expected = [(c, s) for c, s in unfiltered if document_of[c] in allowed]
                full = index.search(query, everything, allowed_document_ids=allowed)
                assert ids(full) == ids(expected)
                assert [s for _, s in full] == pytest.approx([s for _, s in expected])
                top = index.search(query, k, allowed_document_ids=allowed)
                assert all(document_of[c] in allowed for c, _ in top)
                assert [s for _, s in top] == pytest.approx([s for _, s in full[:k]])
                assert set(ids(top)) <= set(ids(full))
    finally:
        index.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_replaying_changes_after_a_lost_manifest_write_is_harmless(opened, engine, monkeypatch):
    """A crash between the engine's commit and the manifest write leaves the manifest behind;
    the caller replays the change log from there and must end where it would have."""
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    batch = ([doc(6, "A fox in the snow"), doc(2, "Dogs bark")], [5, 3])

    def apply(target: KeywordIndex) -> None:
        target.upsert(batch[0])
        target.delete(batch[1])

    apply(index)
    module = sys.modules[type(index).__module__]

    def crash(*args, **kwargs):
        raise OSError("power cut")

    monkeypatch.setattr(module, "write_manifest", crash)
    with pytest.raises(OSError):
        index.commit(2)
    monkeypatch.undo()
    index.close()

    reopened = opened()
    assert reopened.position == 1
    apply(reopened)
    reopened.commit(2)
    assert reopened.position == 2
    assert reopened.count() == len(ANIMALS) + 1 - 2
    assert set(ids(reopened.search("fox", 10))) == {1, 4, 6}
    assert ids(reopened.search("markets", 10)) == []
    assert ids(reopened.search("dogs", 10, allowed_document_ids={2})) == [2]


# --- mismatches --------------------------------------------------------------------------
def test_reopening_with_another_analyzer_raises(opened, engine, tmp_path):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    index.close()
    with pytest.raises(KeywordIndexMismatch, match="analyzer"):
        open_keyword_index(tmp_path / "kw", "default", engine=engine)


def test_reopening_with_another_engine_raises(opened, engine, tmp_path):
    index = opened()
    index.commit(1)
    index.close()
    other = next(e for e in ENGINES if e != engine)
    with pytest.raises(KeywordIndexMismatch, match="engine"):
        open_keyword_index(tmp_path / "kw", engine=other)


def test_missing_engine_files_raise_instead_of_starting_empty(opened, engine, tmp_path):
    index = opened()
    index.upsert(ANIMALS)
    index.commit(1)
    index.close()
    for child in (tmp_path / "kw").iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    with pytest.raises(KeywordIndexMismatch, match="missing"):
        open_keyword_index(tmp_path / "kw", engine=engine)


def test_unknown_analyzer_and_engine_are_refused(tmp_path):
    with pytest.raises(ValueError):
        open_keyword_index(tmp_path / "a", "klingon")
    with pytest.raises(KeywordIndexMismatch):
        open_keyword_index(tmp_path / "b", engine="lucene")


# --- concurrency -------------------------------------------------------------------------
def test_searches_run_while_the_writer_commits(opened):
    index = opened()
    index.upsert([doc(i, f"shared topic number{i}", document_id=i % 3) for i in range(1, 101)])
    index.commit(1)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_forever() -> None:
        try:
            while not stop.is_set():
                results = index.search("shared topic", 20, allowed_document_ids={0, 1})
                assert len(results) == 20
                index.count()
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=search_forever) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(2, 12):
            index.upsert([doc(1000 + round_, "shared topic again", document_id=1)])
            index.delete([round_])
            index.commit(round_)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert index.count() == 100


@st.composite
def grouped_corpora(draw):
    """Enough documents (over 64) that an engine may take its group-term route."""
    n_docs = draw(st.integers(65, 140))
    texts = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=0, max_size=6), min_size=n_docs, max_size=n_docs))
    groups = draw(st.lists(st.sets(st.sampled_from("abc")), min_size=n_docs, max_size=n_docs))
    return [KeywordDoc(i + 1, i + 1, " ".join(t), tuple(sorted(g))) for i, (t, g) in enumerate(zip(texts, groups))]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=grouped_corpora(),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    caller=st.sets(st.sampled_from("abcd")),
    hidden=st.sets(st.integers(1, 140), max_size=30),
    k=st.integers(1, 40),
)
def test_the_group_hint_never_changes_a_filtered_search(engine, docs, query, caller, hidden, k):
    """``allowed_groups`` only says how the allowed documents were chosen: the results are
    those of the document-id filter alone, also when some visible documents are not allowed
    (not indexed yet) and so must stay out."""
    caller = frozenset(caller)
    allowed = {d.document_id for d in docs if (not d.groups or caller & set(d.groups)) and d.document_id not in hidden}
    directory = Path(tempfile.mkdtemp())
    index = open_keyword_index(directory / "kw", engine=engine)
    try:
        index.upsert(docs)
        index.commit(1)
        plain = index.search(query, k, allowed_document_ids=allowed)
        hinted = index.search(query, k, allowed_document_ids=allowed, allowed_groups=caller)
        assert ids(hinted) == ids(plain)
        assert [s for _, s in hinted] == pytest.approx([s for _, s in plain])
    finally:
        index.close()
        shutil.rmtree(directory, ignore_errors=True)
