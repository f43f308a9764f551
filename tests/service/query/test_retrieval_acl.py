"""Access control inside retrieval: no result ever falls outside the caller's allowed set, and
filtering happens before the top-k cut (Hypothesis over principals, queries, modes, filters).
Searches run through the query pipeline, as every front door's do."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import index.keyword_tantivy as keyword_tantivy
from index.catalog import Catalog
from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.query.types import Principal, Query, SearchFilters

GROUPS = ["hr", "eng", "finance", "legal"]
WORDS = "leave policy salary vpn certificate database failover budget revenue contract audit travel laptop".split()


@pytest.fixture(scope="module", autouse=True)
def group_route_for_small_sets():
    """The keyword index takes its group-term route only past 64 allowed documents; here it
    takes it from 8, so every test below exercises it (the document-id route too, for the
    smaller sets and whenever filters apply)."""
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(keyword_tantivy, "_FILTER_DIRECT_MAX_IDS", 8)
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory, hash_embedder):
    data = tmp_path_factory.mktemp("acl")
    settings = Settings(data_dir=data, dense_candidates=20, keyword_candidates=20, dedup_similarity=1.0, reranker_enabled=False)
    store = Store(open_database(settings))
    rng = random.Random(7)
    visibility: dict[int, frozenset[str]] = {}
    for d in range(80):
        groups = rng.sample(GROUPS, rng.choice([0, 0, 1, 1, 2]))
        texts = [" ".join(rng.choices(WORDS, k=12)) + f" doc{d} part{c}" for c in range(rng.randint(1, 3))]
        vecs = hash_embedder.embed_documents(texts)
        chunks = [NewChunk(i, t, 14, 0, len(t), [], []) for i, t in enumerate(texts)]
        collection = "alpha" if d % 2 else "beta"
        doc_id, _ = store.put_document(DocumentWrite(collection, f"/docs/{collection}/{d}.txt", str(d), f"Doc {d}", "text/plain", " ".join(texts), 1,
                                                     groups, {"parity": d % 2}, chunks, vecs, hash_embedder.fingerprint))
        visibility[doc_id] = frozenset(groups)
    indexes = IndexSet(settings, store, EmbeddingIdentity(hash_embedder.model_name, hash_embedder.fingerprint, hash_embedder.dimension)).open()
    pipeline = QueryPipeline(settings, Retriever(settings, store, indexes, Catalog(store)), hash_embedder, None,
                             generator=_no_generator, extractive_generator=_no_generator)
    yield pipeline, visibility
    indexes.close()


def _no_generator():
    raise AssertionError("these tests only search")


def _visible(groups: frozenset[str], principal_groups: frozenset[str]) -> bool:
    return not groups or bool(groups & principal_groups)


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    principal_groups=st.frozensets(st.sampled_from(GROUPS + ["nobody"]), max_size=3),
    query=st.lists(st.sampled_from(WORDS + ["doc7", "part1", "zzz"]), min_size=1, max_size=4).map(" ".join),
    k=st.integers(1, 30),
    mode=st.sampled_from(["hybrid", "dense", "keyword"]),
    collection=st.sampled_from([None, "alpha", "beta"]),
)
def test_no_result_outside_allowed_set(world, principal_groups, query, k, mode, collection):
    pipeline, visibility = world
    principal = Principal("p", principal_groups)
    filters = SearchFilters(collections=(collection,)) if collection else None
    outcome = pipeline.search(Query(query, principal, k=k, mode=mode, filters=filters))
    for hit in outcome.hits:
        assert _visible(visibility[hit.document_id], principal_groups), (hit.document_id, visibility[hit.document_id])
        if collection:
            assert hit.collection == collection
    assert len(outcome.hits) <= k
    if mode == "dense":
        # Dense search always finds something; the filter is applied before truncation, so a
        # caller gets k results whenever k visible chunks exist.
        visible_docs = [d for d, g in visibility.items() if _visible(g, principal_groups)]
        if collection is None and len(visible_docs) >= k:
            assert len(outcome.hits) == k


def test_restricted_caller_still_gets_k_results(world):
    pipeline, visibility = world
    # 'legal'-only caller: most top candidates are invisible to them, yet they get k results.
    outcome = pipeline.search(Query("salary budget revenue", Principal("p", frozenset({"legal"})), k=5, mode="dense"))
    assert len(outcome.hits) == 5
    assert all(_visible(visibility[h.document_id], frozenset({"legal"})) for h in outcome.hits)


def test_metadata_and_source_filters(world):
    pipeline, _ = world
    outcome = pipeline.search(Query("vpn", Principal("admin", all_access=True), k=10, mode="hybrid",
                                    filters=SearchFilters(source_prefix="/docs/alpha/", metadata={"parity": 1})))
    assert outcome.hits and all(h.source.startswith("/docs/alpha/") for h in outcome.hits)


def test_keyword_search_is_told_the_groups_only_when_they_alone_decide(world):
    """The keyword index may filter by group terms only when the allowed documents are exactly
    what the caller's groups see: no other filter, and its group terms current."""
    pipeline, _ = world
    retriever = pipeline.retriever
    eng = Principal("p", frozenset({"eng"}))
    assert retriever.allowed(eng, None).groups == frozenset({"eng"})
    assert retriever.allowed(eng, SearchFilters(collections=("alpha",))).groups is None
    assert retriever.allowed(Principal("admin", all_access=True), None).documents is None
    keyword = retriever.indexes.keyword
    behind, keyword.inner._position = keyword.inner._position, -1
    try:
        assert retriever.allowed(eng, None).groups is None  # a keyword index behind the catalog
    finally:
        keyword.inner._position = behind


def test_keyword_results_for_a_restricted_caller_match_a_search_told_no_groups(world):
    pipeline, visibility = world
    retriever = pipeline.retriever
    for groups in (frozenset({"eng"}), frozenset({"hr", "legal"}), frozenset({"nobody"})):
        allowed = retriever.allowed(Principal("p", groups), None)
        assert len(allowed.documents) > 8  # the group route's size here
        hinted = retriever.keyword("budget revenue salary", 30, allowed)
        plain = retriever.keyword("budget revenue salary", 30, type(allowed)(allowed.documents, allowed.chunks))
        assert hinted == plain
        assert all(_visible(visibility[d], groups) for d in retriever.catalog.chunk_facts([c for c, _ in hinted])[0].tolist())
