"""Results spread over pages: one page takes at most ``max_hits_per_page`` places before the
other pages' results are placed (the real query path: a SQLite store, its indexes, fusion)."""

from __future__ import annotations

import pytest

from index.catalog import Catalog
from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store
from ingest.embedder_hash import HashEmbedder
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.query.types import Principal, Query

ADMIN = Principal("admin", all_access=True)
# Four passages of one page of a report say much the same; the fifth, on the next page, is the
# statement itself.
PAGE_3 = [f"Cash provided by operating activities in region {n} was higher this year." for n in range(4)]
PAGE_4 = "Cash provided by operating activities | 2023: 4,321 | 2022: 3,210"
PLAIN = [f"Cash provided by operating activities note {n} for the year." for n in range(4)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    embedder = HashEmbedder(dimension=64)
    settings = Settings(data_dir=tmp_path_factory.mktemp("pages"), reranker_enabled=False, table_window_chars=0,
                        dedup_similarity=1.0, document_boost_weight=0.0, named_document_candidates=0)
    store = Store(open_database(settings))
    texts = [*PAGE_3, PAGE_4]
    chunks = [NewChunk(i, t, 12, 0, len(t), [3] if i < 4 else [4], []) for i, t in enumerate(texts)]
    store.put_document(DocumentWrite("default", "/docs/report.pdf", "r", "Annual report", "application/pdf", "\n".join(texts), 2,
                                     [], {}, chunks, embedder.embed_documents(texts), embedder.fingerprint))
    plain = [NewChunk(i, t, 10, 0, len(t), [], []) for i, t in enumerate(PLAIN)]
    store.put_document(DocumentWrite("default", "/docs/notes.txt", "n", "Notes", "text/plain", "\n".join(PLAIN), 1, [], {},
                                     plain, embedder.embed_documents(PLAIN), embedder.fingerprint))
    indexes = IndexSet(settings, store, EmbeddingIdentity(embedder.model_name, embedder.fingerprint, embedder.dimension)).open()
    yield settings, store, indexes, embedder
    indexes.close()


def _hits(world, per_page: int, text: str, k: int = 3):
    settings, store, indexes, embedder = world
    settings = settings.model_copy(update={"max_hits_per_page": per_page})
    pipeline = QueryPipeline(settings, Retriever(settings, store, indexes, Catalog(store)), embedder, None,
                             generator=lambda: None, extractive_generator=lambda: None)
    return pipeline.search(Query(text, ADMIN, k=k, mode="keyword")).hits


def test_one_page_takes_at_most_its_share_of_places(world):
    question = "cash provided by operating activities in region higher this year"
    crowded = _hits(world, 0, question + " report")
    assert [h.pages for h in crowded] == [[3], [3], [3]]  # what it fixes
    spread = _hits(world, 2, question + " report")
    assert [h.pages[0] for h in spread].count(3) <= 2 and [4] in [h.pages for h in spread]
    assert [h.chunk_id for h in spread[:2]] == [h.chunk_id for h in crowded[:2]]  # the head keeps its order


def test_results_without_pages_are_not_spread(world):
    question = "cash provided by operating activities note for the year"
    plain = [h for h in _hits(world, 2, question, k=4) if not h.pages]
    assert len(plain) == 4
