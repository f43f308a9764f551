"""`groundwork eval --beir`: load a BEIR-format dataset into a collection and measure retrieval.

The corpus goes through the same chunker, embedder, store and indexes as real documents
(only file parsing is skipped: BEIR entries are already text), so the figures describe the
shipped pipeline, not a side path.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from index.store import DocumentWrite, NewChunk
from ingest.chunking import chunk_document
from ingest.documents import Element, ElementKind, ParsedDocument
from ingest.pipeline import chunk_budget, describe, embedding_text
from service.query.evaluation import evaluate
from service.query.types import Principal, Query, SearchFilters

SOURCE_SCHEME = "beir://"


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield json.loads(line)


def read_qrels(path: Path) -> dict[str, dict[str, float]]:
    qrels: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if not row or row[0] in ("query-id", "query_id"):
                continue
            qrels.setdefault(row[0], {})[row[1]] = float(row[2])
    return qrels


def parsed_entry(title: str, text: str) -> ParsedDocument:
    """A BEIR entry as a parsed document: the title as a title element, the abstract as text."""
    parts, elements, offset = [], [], 0
    if title:
        parts.append(title)
        elements.append(Element(ElementKind.title, 0, len(title)))
        offset = len(title) + 2
    if text:
        parts.append(text)
        elements.append(Element(ElementKind.text, offset, offset + len(text)))
    return ParsedDocument(text="\n\n".join(parts), elements=elements, mime_type="text/plain", title=title or None)


def load_corpus(gw, corpus_path: Path, collection: str, *, batch_docs: int = 256) -> int:
    """Ingest entries not yet stored (resumable); returns the corpus size."""
    store = gw.store
    existing = {source for _, source in store.documents_in(collection)}
    embedder, tokens = gw.embedder, gw.tokens
    budget = chunk_budget(gw.settings, embedder)
    prefix_budget = gw.settings.chunk_prefix_tokens
    total = 0
    pending: list[tuple[str, ParsedDocument, list]] = []

    def flush() -> None:
        described = [describe(doc, source, gw.settings) for source, doc, _ in pending]
        texts = [embedding_text(about.title, s.heading_path, s.context, doc.text[s.start : s.end], tokens, prefix_budget, about.context)
                 for (_, doc, spans), about in zip(pending, described) for s in spans]
        vectors = embedder.embed_documents(texts) if texts else np.zeros((0, embedder.dimension), np.float32)
        offset = 0
        for (source, doc, spans), about in zip(pending, described):
            n = len(spans)
            chunks = [NewChunk(s.ordinal, doc.text[s.start : s.end], s.token_count, s.start, s.end, list(s.pages), list(s.heading_path), s.kind, s.context)
                      for s in spans]
            store.put_document(DocumentWrite(collection, source, None, about.title, doc.mime_type, doc.text, len(doc.text), [], {},
                                             chunks, vectors[offset : offset + n], embedder.fingerprint, about.context))
            offset += n
        pending.clear()

    for entry in read_jsonl(corpus_path):
        total += 1
        source = f"{SOURCE_SCHEME}{collection}/{entry['_id']}"
        if source in existing:
            continue
        doc = parsed_entry(entry.get("title") or "", entry.get("text") or "")
        spans = chunk_document(doc, tokens, max_tokens=budget, overlap_tokens=gw.settings.chunk_overlap_tokens)
        if spans:
            pending.append((source, doc, spans))
        if len(pending) >= batch_docs:
            flush()
    if pending:
        flush()
    return total


def run_beir_eval(gw, folder: Path, *, split: str = "test", k: int = 100, max_queries: int = 0, modes: list[str] | None = None,
                  collection: str | None = None) -> dict:
    folder = Path(folder)
    name = folder.name
    collection = collection or f"beir-{name}"
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl") if q["_id"] in qrels}
    query_ids = sorted(queries, key=lambda q: (len(q), q))
    if max_queries:
        query_ids = query_ids[:max_queries]
    t0 = time.perf_counter()
    corpus_size = load_corpus(gw, folder / "corpus.jsonl", collection)
    load_s = time.perf_counter() - t0
    gw.refresh_indexes()
    principal = Principal(id="eval", all_access=True)
    filters = SearchFilters(collections=(collection,))
    prefix = f"{SOURCE_SCHEME}{collection}/"
    report = {"dataset": name, "split": split, "queries": len(query_ids), "corpus": corpus_size, "load_seconds": round(load_s, 1), "modes": {}}
    reranker, status = gw.reranker_state
    pipeline = gw.pipeline
    # Embed every query once; all dense/hybrid modes reuse the vectors.
    vectors = gw.embedder.embed_queries([queries[q] for q in query_ids]) if query_ids else None
    following, gw.auto_refresh = gw.auto_refresh, False  # the corpus is indexed: queries need not follow the change log
    try:
        for mode in modes or ["dense", "keyword", "hybrid", "hybrid+rerank"]:
            base, _, extra = mode.partition("+")
            rerank = extra == "rerank"
            if rerank and reranker is None:
                report["modes"][mode] = {"error": f"reranker {status}"}
                continue
            runs: dict[str, list[str]] = {}
            fallbacks: list[str] = []  # a reranker that failed or missed its deadline on a query
            started = time.perf_counter()
            for i, qid in enumerate(query_ids):
                query = Query(queries[qid], principal, k=k, mode=base, filters=filters, rerank=rerank, collapse=True)
                outcome = pipeline.search(query, vector=vectors[i] if base != "keyword" else None, on_fallback=fallbacks.append)
                runs[qid] = [h.source[len(prefix):] for h in outcome.hits if h.source.startswith(prefix)]
            elapsed = time.perf_counter() - started
            metrics = evaluate(runs, {q: qrels[q] for q in query_ids}, ndcg_k=10, recall_k=k, mrr_k=10)
            metrics["qps"] = len(query_ids) / elapsed if elapsed > 0 else 0.0
            if fallbacks:  # those queries kept the fused order: the figures are not all reranked
                metrics["fallbacks"] = len(fallbacks)
            report["modes"][mode] = metrics
    finally:
        gw.auto_refresh = following
    return report
