"""Document-aware ranking end to end: a question naming a document favours it, boilerplate
repeated across documents is demoted, and results can be spread over documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.engine import Groundwork
from service.query.types import Principal, Query, SearchFilters

EVERYONE = Principal(id="t", all_access=True)
FOOTER = "Follow us on social media for our latest results and news: LinkedIn, Instagram, YouTube."


def _search(app: Groundwork, text: str, k: int, **options):
    return app.pipeline.search(Query(text, EVERYONE, k=k, **options)).hits


def _app(settings, hash_embedder, **overrides) -> Groundwork:
    """Each knob measured alone: no section packing and no document boost unless asked for."""
    for key, value in {"chunk_min_tokens": 0, "document_boost_weight": 0.0, **overrides}.items():
        setattr(settings, key, value)
    return Groundwork(settings, embedder=hash_embedder)


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body, encoding="utf-8")
    return folder


def _companies(folder: Path) -> Path:
    """Three quarterly reports named only by file and cover line; the same table label in each."""
    files = {}
    for name, company, sales in (("orbital-2023-q2.md", "Orbital Machines", "1,111"), ("zenith-2023-q2.md", "Zenith Stores", "2,222"),
                                 ("acme-2023-q2.md", "Acme Widgets", "3,333")):
        files[name] = (f"# {company} quarterly report\n\nPrepared for the quarter ended June 30, 2023.\n\n"
                       f"## Results of operations\n\nRevenue grew on strong demand in every segment of the business.\n\n"
                       f"## Condensed statement of income\n\nTotal net sales were {sales} million for the quarter.\n")
    return _write(folder, files)


def test_naming_a_company_lifts_its_documents_chunks(settings, hash_embedder, tmp_path):
    app = _app(settings, hash_embedder, document_boost_weight=0.5)
    try:
        app.ingest([_companies(tmp_path / "docs")], progress=False)
        for question, figure in (("How much were Zenith's total net sales?", "2,222"), ("What were Acme's net sales", "3,333"),
                                 ("orbital total net sales for the quarter", "1,111")):
            hits = _search(app, question, 3)
            assert figure in hits[0].text, (question, [h.text for h in hits])
        # These reports are a few chunks each, every one starting with the report's title: the
        # chunks carry the name, and the boost (which would count it twice) leaves them alone.
        retriever = app.pipeline.retriever
        question = "How much were Zenith's total net sales?"
        assert retriever.named_documents(question, None) == {}
        app.settings.named_document_min_chunks = 0
        assert len(retriever.named_documents(question, None)) == 1
        assert "2,222" in _search(app, question, 3)[0].text
        # A question naming no document is ranked as before.
        plain = _search(app, "total net sales for the quarter", 3)
        app.settings.document_boost_weight = 0.0
        assert [h.chunk_id for h in _search(app, "total net sales for the quarter", 3)] == [h.chunk_id for h in plain]
    finally:
        app.close()


def test_document_scores_are_normalised_among_visible_documents_only(settings, hash_embedder, tmp_path):
    app = _app(settings, hash_embedder)
    try:
        app.ingest([_companies(tmp_path / "docs")], progress=False)
        app.catalog.refresh()
        ids = {Path(d.source).stem: d.id for d in app.store.list_documents()}
        index = app.catalog.document_index
        assert max(index.scores("zenith quarterly report"), key=index.scores("zenith quarterly report").get) == ids["zenith-2023-q2"]
        visible = np.asarray(sorted([ids["acme-2023-q2"], ids["orbital-2023-q2"]]))
        hidden_best = index.scores("zenith quarterly report", allowed=visible)
        assert ids["zenith-2023-q2"] not in hidden_best and all(v == 1.0 for v in hidden_best.values())
    finally:
        app.close()


def _with_footer(folder: Path, n: int) -> Path:
    files = {f"note-{i}.md": (f"# Field note {i}\n\n## Observation\n\nThe sensor {i} reported results within tolerance on site {i}.\n\n"
                              f"## Contact\n\n{FOOTER}\n") for i in range(n)}
    return _write(folder, files)


def test_boilerplate_repeated_across_documents_is_demoted(settings, hash_embedder, tmp_path):
    app = _app(settings, hash_embedder, boilerplate_min_documents=3, boilerplate_penalty=2.0, dedup_similarity=1.0)
    try:
        app.ingest([_with_footer(tmp_path / "docs", 4)], progress=False)
        app.catalog.refresh()
        documents, shared = app.catalog.chunk_facts(app.store.live_chunk_ids())
        assert sorted(shared.tolist()).count(4) == 4  # the footer, once in each of four documents
        question = "latest results on social media"
        demoted = _search(app, question, 5)
        assert FOOTER not in demoted[0].text and "within tolerance" in demoted[0].text
        app.settings.boilerplate_penalty = 0.0
        assert FOOTER in _search(app, question, 5)[0].text  # what it fixes
    finally:
        app.close()


def test_spread_gives_other_documents_a_place(settings, hash_embedder, tmp_path):
    long_doc = "# Leave policy\n\n" + "\n\n".join(f"## Leave rule {i}\n\nAnnual leave rule {i} applies to leave requests." for i in range(6))
    folder = _write(tmp_path / "docs", {"a-policy.md": long_doc, "b-faq.md": "# FAQ\n\n## Leave\n\nLeave requests go to your manager.\n"})
    app = _app(settings, hash_embedder)
    try:
        app.ingest([folder], progress=False)
        crowded = _search(app, "annual leave rule requests", 3)
        assert len({h.document_id for h in crowded}) == 1
        spread = _search(app, "annual leave rule requests", 3, max_per_document=2)
        assert len(spread) == 3 and len({h.document_id for h in spread}) == 2
        assert [h.chunk_id for h in spread[:2]] == [h.chunk_id for h in crowded[:2]]
    finally:
        app.close()


def test_a_named_documents_passage_below_the_corpus_wide_cut_still_competes(settings, hash_embedder, tmp_path):
    """The named report's revenue line shares no word with the question but the company's name,
    so with the corpus-wide candidate lists cut short it is beyond both cuts, behind the
    report's other sections; the search inside the named documents makes it a candidate."""
    files = {f"company-{n:02d}.md": f"# Company {n:02d} quarterly report\n\nTotal net sales were {n},000 million.\n"
             for n in range(6)}
    sections = "".join(f"## Region {n}\n\nZenith total store count in region {n} grew to {40 + n} stores.\n\n" for n in range(8))
    files["zenith-2023-q2.md"] = f"# Zenith Stores quarterly report\n\n{sections}## Revenue\n\nMerchandise revenue: 2,222 million.\n"
    # Synonyms off: "total net sales" and "revenue" are one group in the business list.
    app = _app(settings, hash_embedder, document_boost_weight=1.0, dense_candidates=4, keyword_candidates=4,
               named_document_min_chunks=0, query_synonyms="off")
    try:
        app.ingest([_write(tmp_path / "docs", files)], progress=False)
        question = "What were Zenith's total net sales?"
        retriever = app.pipeline.retriever
        revenue = next(h.chunk_id for h in _search(app, "merchandise revenue", 3) if "2,222" in h.text)
        allowed = retriever.allowed(EVERYONE, None)
        vector = app.embedder.embed_queries([question])[0]
        corpus_wide = retriever.dense(vector, 3, allowed) + retriever.keyword(question, 3, allowed)
        assert revenue not in {chunk for chunk, _ in corpus_wide}
        named = retriever.named_documents(question, allowed)
        assert len(named) == 1
        dense, keyword = retriever.within_named(vector, question, named)
        assert revenue in {chunk for chunk, _ in dense} and revenue in {chunk for chunk, _ in keyword}
        # A named document shorter than named_document_min_chunks is not searched on its own.
        app.settings.named_document_min_chunks = len(app.pipeline.retriever.catalog.doc_chunks[next(iter(named))]) + 1
        assert retriever.within_named(vector, question, named) == ([], [])
        app.settings.named_document_min_chunks = 0
        app.settings.named_document_candidates = 0
        assert retriever.within_named(vector, question, named) == ([], [])
        assert "named_documents" not in app.pipeline.search(Query(question, EVERYONE, k=3)).timings_ms
        app.settings.named_document_candidates = 50
        assert "named_documents" in app.pipeline.search(Query(question, EVERYONE, k=3)).timings_ms
        # Only documents the caller may see are named: a filter leaving the report out names none.
        others = SearchFilters(document_ids=tuple(sorted({h.document_id for h in _search(app, "quarterly report", 20)} - set(named))))
        assert retriever.named_documents(question, retriever.allowed(EVERYONE, others)) == {}
    finally:
        app.close()


def test_a_keyword_index_that_cannot_serve_leaves_named_documents_their_dense_half(settings, hash_embedder, tmp_path, monkeypatch):
    """Regression: the search inside named documents asked a fenced keyword index again and
    failed the request; it must degrade like the corpus-wide search (dense only, one note)."""
    from index.errors import IndexCorrupt

    app = _app(settings, hash_embedder, document_boost_weight=1.0, named_document_min_chunks=0)
    try:
        app.ingest([_companies(tmp_path / "docs")], progress=False)
        calls = []

        def broken(*args, **kwargs):
            calls.append(args)
            raise IndexCorrupt("keyword engine failed")

        monkeypatch.setattr(app.pipeline.retriever.indexes.keyword, "search", broken)
        outcome = app.pipeline.search(Query("How much were Zenith's total net sales?", EVERYONE, k=3))
        assert "2,222" in outcome.hits[0].text and len(calls) == 1
        assert any("keyword index is unavailable" in note for note in outcome.notes)
    finally:
        app.close()


def test_merged_candidate_lists_keep_each_chunk_once_with_its_better_score():
    from service.query.retrieval import merge_candidates

    assert merge_candidates([(1, 0.9), (2, 0.5)], [(2, 0.7), (3, 0.4)]) == [(1, 0.9), (2, 0.7), (3, 0.4)]
    assert merge_candidates([(1, 0.9)], []) == [(1, 0.9)]
    assert merge_candidates([], [(4, 0.1), (5, 0.3)]) == [(5, 0.3), (4, 0.1)]
