"""Document contexts through ingestion: stored, put in front of every chunk's indexed text,
rebuilt identically by ``reindex --reembed``, and derived for documents ingested before them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from index.models import Chunk
from index.store import keyword_text
from ingest.pipeline import embedding_text
from service.engine import Groundwork
from service.query.types import Principal, Query

FILLER = "\n\n".join(f"Paragraph {i} discusses general operating matters of the period at some length." for i in range(12))


def _report(company: str, form_period: str, sales: str) -> str:
    """A filing-like text file: the company is named only on its cover, the figures far below."""
    return (
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION\n\nFORM 10-Q\n\n"
        f"For the quarterly period ended {form_period}\n\nCommission file number 0-12345\n\n"
        f"{company}\n\n(Exact name of registrant as specified in its charter)\n\n"
        f"{FILLER}\n\nCondensed statement of income\n\nTotal net sales {sales} and cost of sales below.\n"
    )


@pytest.fixture
def gw(settings, hash_embedder):
    app = Groundwork(settings, embedder=hash_embedder)
    yield app
    app.close()


def _write_reports(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a-quarterly.txt").write_text(_report("ACME WIDGETS CORPORATION", "July 30, 2023", "5,000"), encoding="utf-8")
    (folder / "b-quarterly.txt").write_text(_report("ZENITH STORES, INC.", "July 29, 2023", "7,000"), encoding="utf-8")
    return folder


def test_context_is_stored_and_prefixes_every_chunk_for_both_indexes(gw, tmp_path):
    folder = _write_reports(tmp_path / "docs")
    gw.ingest([folder], progress=False)
    doc = gw.store.find_document("default", str((folder / "b-quarterly.txt").resolve()))
    assert doc.title == "ZENITH STORES, INC. · Form 10-Q"
    assert doc.context == "ZENITH STORES, INC. · Form 10-Q · quarterly period ended July 29, 2023 · b quarterly"
    rows = [r for batch in gw.store.iter_chunks_for_index() for r in batch if r[1] == doc.id]
    assert len(rows) > 1 and all(r[2].startswith(doc.context) for r in rows)
    # Citations stay on the chunk's own text: it never contains the prefix.
    records = gw.store.chunk_records([r[0] for r in rows])
    assert all(not rec.text.startswith(doc.context) and rec.document_context == doc.context for rec in records.values())


def test_question_naming_company_b_ranks_bs_table_first(gw, tmp_path):
    """Both reports carry the same table label; only the cover says whose it is."""
    gw.ingest([_write_reports(tmp_path / "docs")], progress=False)
    everyone = Principal(id="t", all_access=True)
    for question, company, figure in (("Zenith Stores total net sales", "ZENITH", "7,000"),
                                      ("ACME Widgets total net sales", "ACME", "5,000")):
        hits = gw.pipeline.search(Query(question, everyone, k=5)).hits
        # The first passage carrying the shared label must be the named company's.
        top = next(hit for hit in hits if "Total net sales" in hit.text)
        assert figure in top.text, (question, [hit.text for hit in hits])
        assert company in (gw.store.get_document(top.document_id).context or "")


def test_reembed_rebuilds_the_same_prefixed_texts(gw, tmp_path):
    gw.ingest([_write_reports(tmp_path / "docs")], progress=False)
    with Session(gw.engine) as session:
        before = dict(session.execute(select(Chunk.id, Chunk.embedding)).all())
    gw.reindex(reembed=True)
    with Session(gw.engine) as session:
        after = dict(session.execute(select(Chunk.id, Chunk.embedding)).all())
    assert before.keys() == after.keys() and all(before[i] == after[i] for i in before)


def test_embedding_and_keyword_prefix_agree_and_respect_the_budget(gw):
    tokens = gw.tokens
    context = "ZENITH STORES, INC. · Form 10-Q · quarterly period ended July 29, 2023"
    embedded = embedding_text("T", ["Results", "Sales"], "", "body", tokens, 64, context)
    assert embedded == keyword_text("T", ["Results", "Sales"], "", "body", context)
    assert embedded.startswith(context + " › Results › Sales\nbody"[: len(context)])
    short = embedding_text("T", ["Results"], "", "body", tokens, 4, context)
    assert short.endswith("\nbody") and len(tokens.token_spans(short[: -len("\nbody")])) <= 4


def test_documents_ingested_before_contexts_are_derived_on_the_next_ingest(gw, tmp_path):
    folder = _write_reports(tmp_path / "docs")
    gw.ingest([folder], progress=False)
    with gw.engine.begin() as conn:  # as migration 3 leaves an older database
        conn.execute(text("UPDATE document SET context = NULL"))
    again = gw.ingest([folder], progress=False).to_json()
    assert again["updated"] == 2 and again["unchanged"] == 0
    assert all(d.context for d in gw.store.list_documents())
    assert gw.ingest([folder], progress=False).to_json()["unchanged"] == 2


def test_documents_read_by_an_older_ingest_version_are_read_again(gw, tmp_path, monkeypatch):
    """After an upgrade that changes how files are read, unchanged files are read again (once),
    and a file that failed is tried again: its digest alone no longer says it is up to date."""
    import ingest.pipeline
    from ingest.version import INGEST_VERSION

    folder = _write_reports(tmp_path / "docs")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    first = gw.ingest([folder], progress=False).to_json()
    assert (first["added"], first["failed"]) == (2, 1)
    assert {d.ingest_version for d in gw.store.list_documents()} == {INGEST_VERSION}
    assert gw.ingest([folder], progress=False).to_json()["unchanged"] == 2

    monkeypatch.setattr(ingest.pipeline, "INGEST_VERSION", INGEST_VERSION + 1)
    monkeypatch.setattr(ingest.pipeline, "is_current", lambda version: (version or 0) >= INGEST_VERSION + 1)
    again = gw.ingest([folder], progress=False).to_json()
    assert (again["updated"], again["unchanged"], again["failed"]) == (2, 0, 1)
    assert {d.ingest_version for d in gw.store.list_documents()} == {INGEST_VERSION + 1}
    assert gw.ingest([folder], progress=False).to_json()["unchanged"] == 2


def test_documents_stored_before_ingest_versions_are_read_again(gw, tmp_path):
    folder = _write_reports(tmp_path / "docs")
    gw.ingest([folder], progress=False)
    with gw.engine.begin() as conn:  # as migration 6 leaves an older database
        conn.execute(text("UPDATE document SET ingest_version = NULL"))
    assert gw.ingest([folder], progress=False).to_json()["updated"] == 2
    assert gw.ingest([folder], progress=False).to_json()["unchanged"] == 2
