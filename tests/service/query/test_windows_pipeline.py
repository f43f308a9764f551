"""Table windows through the real query path: a SQLite store, its indexes, fusion and fetch."""

from __future__ import annotations

import pytest

from index.catalog import Catalog
from index.db import open_database
from index.indexset import EmbeddingIdentity, IndexSet
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store
from ingest.embedder_hash import HashEmbedder
from service.query.generation import ExtractiveGenerator
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.query.types import Principal, Query

ADMIN = Principal("admin", all_access=True)
HEAD = "CONSOLIDATED STATEMENTS OF CASH FLOWS (In millions) | 2023 | 2022"
TABLE = [
    HEAD + "\nNet income | 2023: 5,363 | 2022: 4,869",
    "Depreciation and amortization | 2023: 1,488 | 2022: 1,544",
    "Purchases of property, plant and equipment | 2023: (1,577) | 2022: (1,373)",
]
OTHERS = ["Capital expenditure plans for new plants are reviewed each year.", "Property taxes are paid twice a year.",
          "Equipment leases run for five years.", "Plant safety audits happen every quarter."]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    embedder = HashEmbedder(dimension=64)
    settings = Settings(data_dir=tmp_path_factory.mktemp("windows"), reranker_enabled=False, max_hits_per_document=0)
    store = Store(open_database(settings))
    texts = ["Cash flows are shown below.", *TABLE, "See the notes."]
    chunks = [NewChunk(i, t, 20, 0, len(t), [7], [], "table" if 1 <= i <= 3 else "text", HEAD if i in (2, 3) else "")
              for i, t in enumerate(texts)]
    store.put_document(DocumentWrite("default", "/docs/10k.pdf", "s", "Annual report", "application/pdf", "\n".join(texts), 1, [], {},
                                     chunks, embedder.embed_documents(texts), embedder.fingerprint))
    for n, text in enumerate(OTHERS):
        store.put_document(DocumentWrite("default", f"/docs/{n}.txt", str(n), f"Note {n}", "text/plain", text, 1, [], {},
                                         [NewChunk(0, text, 10, 0, len(text), [], [])], embedder.embed_documents([text]), embedder.fingerprint))
    indexes = IndexSet(settings, store, EmbeddingIdentity(embedder.model_name, embedder.fingerprint, embedder.dimension)).open()
    yield settings, Retriever(settings, store, indexes, Catalog(store)), embedder
    indexes.close()


def _search(world, window_chars: int, k: int = 4):
    settings, retriever, embedder = world
    settings = settings.model_copy(update={"table_window_chars": window_chars})
    retriever = Retriever(settings, retriever.store, retriever.indexes, retriever.catalog)
    extractive = ExtractiveGenerator.from_settings(settings)
    pipeline = QueryPipeline(settings, retriever, embedder, None, generator=lambda: extractive, extractive_generator=lambda: extractive)
    query = Query("purchases of property plant and equipment depreciation net income", ADMIN, k=k)
    outcome = pipeline.search(query)
    return outcome, pipeline.generate(query.text, outcome)


def test_a_table_piece_is_served_with_its_table_and_the_pieces_it_holds_give_way(world):
    outcome, _ = _search(world, 3000)
    table_hits = [h for h in outcome.hits if h.window]
    assert len(table_hits) == 1 and len(outcome.hits) == 4
    hit = table_hits[0]
    assert [p.text for p in hit.window] == TABLE and hit.passage_pages == [7]
    held = {p.chunk_id for p in hit.window}
    assert not any(h.chunk_id in held for h in outcome.hits if h is not hit)
    assert "windows" in outcome.timings_ms


def test_windows_off_serves_chunks_alone(world):
    outcome, _ = _search(world, 0)
    assert not any(h.window for h in outcome.hits)
    assert sum(h.text in TABLE for h in outcome.hits) >= 2  # the pieces compete for places again


def test_answer_citations_from_a_window_point_into_the_piece_quoted(world):
    outcome, answer = _search(world, 3000)
    _, retriever, _ = world
    assert answer.grounded
    records = retriever.store.chunk_records([c.chunk_id for c in answer.citations])
    for citation in answer.citations:
        assert records[citation.chunk_id].text[citation.start:citation.end] == citation.quote


def test_a_later_piece_carries_its_tables_head_and_answers_in_the_asked_scale(world):
    """The head a split table's later piece repeats reaches the hit (``table_head``), so a row
    quoted without its window still knows its table's scale."""
    outcome, _ = _search(world, 0, k=6)
    pieces = {h.text: h for h in outcome.hits if h.text in TABLE}
    assert pieces[TABLE[2]].table_head == HEAD and pieces[TABLE[0]].table_head == ""
    extractive = ExtractiveGenerator()
    answer = extractive.answer("What were purchases of property, plant and equipment in 2023 (in USD billions)?", [pieces[TABLE[2]]])
    assert answer.grounded and answer.text.endswith("(in billions: 2023: (1.58) | 2022: (1.37))")
