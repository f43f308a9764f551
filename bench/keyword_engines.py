"""Compare BM25 engines on SciFact (BEIR train split) to choose the keyword engine.

Candidates: tantivy through the shipped ``KeywordIndex`` implementation, bm25s (with its
own tokenizer and PyStemmer, as its authors benchmark it, and through the protocol
implementation that shares tantivy's analyzer), and SQLite FTS5 (porter tokenizer, bm25()
ranking). Each corpus entry is indexed as title + " " + text. Reported per engine: nDCG@10,
recall@100, MRR@10, index build time, single-query throughput (median of several passes over
all queries, top 100 each, query analysis included) and whether it updates in place and
persists. A second table shows throughput with an access-control filter allowing half the
documents, for the engines that filter inside the search.

    python bench/keyword_engines.py [--data ../shared/data/scifact-train] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from index.keyword import BM25S_ENGINE, TANTIVY_ENGINE, KeywordDoc  # noqa: E402
from index.keyword_factory import open_keyword_index  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "scifact-train"
TOP_K = 100


# --- data ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    doc_ids: list[str]                  # position = integer id used inside the engines
    texts: list[str]
    queries: dict[str, str]             # only queries that have judgements
    qrels: dict[str, dict[str, int]]    # query id -> {doc id: relevance}


def load_beir(folder: Path) -> Dataset:
    doc_ids, texts = [], []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            doc_ids.append(row["_id"])
            texts.append(f"{row.get('title', '')} {row['text']}".strip())
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "train.tsv", encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    return Dataset(doc_ids, texts, queries, qrels)


# --- metrics (binary or graded relevance, linear gain as in trec_eval) ----------------------
def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & relevant.keys()) / len(relevant) if relevant else 0.0


def mrr_at_k(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


# --- engines ---------------------------------------------------------------------------------
class Engine:
    label: str
    incremental: str
    persistent: str

    def build(self, texts: list[str], document_ids: list[int]) -> None:
        raise NotImplementedError

    def search(self, query: str, k: int) -> list[int]:
        raise NotImplementedError

    filters_in_search = False  # honours an access-control filter before the top k

    def search_filtered(self, query: str, k: int, allowed: Collection[int]) -> list[int]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ProtocolEngine(Engine):
    """The project's own KeywordIndex implementations, measured as the service uses them."""

    filters_in_search = True

    def __init__(self, engine: str, analyzer: str, label: str, incremental: str, persistent: str):
        self.engine, self.analyzer, self.label = engine, analyzer, label
        self.incremental, self.persistent = incremental, persistent
        self._dir = tempfile.TemporaryDirectory(prefix="kw-bench-")

    def build(self, texts, document_ids):
        self.index = open_keyword_index(Path(self._dir.name) / "kw", self.analyzer, engine=self.engine)
        self.index.upsert([KeywordDoc(i, document_ids[i], text) for i, text in enumerate(texts)])
        self.index.commit(1)

    def search(self, query, k):
        return [chunk_id for chunk_id, _ in self.index.search(query, k)]

    def search_filtered(self, query, k, allowed):
        return [chunk_id for chunk_id, _ in self.index.search(query, k, allowed_document_ids=allowed)]

    def close(self):
        self.index.close()
        self._dir.cleanup()


class Bm25sNative(Engine):
    """bm25s as published: its regex tokenizer, English stop words, PyStemmer."""

    incremental = "no (full re-index)"
    persistent = "save/load files"

    def __init__(self, k1: float, b: float):
        self.k1, self.b = k1, b
        self.label = f"bm25s native k1={k1} b={b}"

    def build(self, texts, document_ids):
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        self.retriever = bm25s.BM25(method="lucene", k1=self.k1, b=self.b)
        self.retriever.index(tokens, show_progress=False)

    def search(self, query, k):
        tokens = self._bm25s.tokenize(
            [query], stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        ids, _ = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [int(i) for i in ids[0]]


class Fts5(Engine):
    """SQLite FTS5 with the porter stemmer; terms OR-ed, ranked by its built-in bm25()."""

    label = "sqlite fts5 porter"
    incremental = "yes"
    persistent = "yes"
    _WORD = re.compile(r"\w+")

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="kw-bench-")

    def build(self, texts, document_ids):
        self.db = sqlite3.connect(Path(self._dir.name) / "fts.db", check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE chunks USING fts5(body, tokenize='porter unicode61')")
        with self.db:
            self.db.executemany("INSERT INTO chunks(rowid, body) VALUES (?, ?)", enumerate(texts))

    def search(self, query, k):
        terms = sorted(set(self._WORD.findall(query.lower())))
        if not terms:
            return []
        match = " OR ".join(f'"{term}"' for term in terms)
        rows = self.db.execute("SELECT rowid FROM chunks WHERE chunks MATCH ? ORDER BY rank LIMIT ?", (match, k))
        return [rowid for (rowid,) in rows]

    def close(self):
        self.db.close()
        self._dir.cleanup()


def candidate_engines() -> list[Engine]:
    return [
        ProtocolEngine(TANTIVY_ENGINE, "en_stem", "tantivy en_stem (shipped)", "yes", "yes"),
        ProtocolEngine(TANTIVY_ENGINE, "default", "tantivy default (no stemming)", "yes", "yes"),
        Bm25sNative(k1=1.5, b=0.75),
        Bm25sNative(k1=1.2, b=0.75),
        ProtocolEngine(BM25S_ENGINE, "en_stem", "bm25s protocol impl en_stem", "rebuild at commit", "yes"),
        Fts5(),
    ]


# --- measurement -------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    ndcg10: float
    recall100: float
    mrr10: float
    build_s: float
    qps: float
    filtered_qps: float | None
    incremental: str
    persistent: str


def timed_pass(run_query: Callable[[str], list[int]], queries: list[str]) -> tuple[float, list[list[int]]]:
    start = time.perf_counter()
    results = [run_query(query) for query in queries]
    return time.perf_counter() - start, results


def measure(engine: Engine, data: Dataset, runs: int, allowed: set[int]) -> Row:
    document_ids = list(range(len(data.texts)))  # one chunk per corpus entry
    start = time.perf_counter()
    engine.build(data.texts, document_ids)
    build_s = time.perf_counter() - start

    query_ids = list(data.queries)
    texts = [data.queries[q] for q in query_ids]
    passes = [timed_pass(lambda q: engine.search(q, TOP_K), texts) for _ in range(runs)]
    qps = len(texts) / statistics.median(elapsed for elapsed, _ in passes)
    ranked_lists = passes[0][1]

    filtered_qps = None
    if engine.filters_in_search:
        filtered = [timed_pass(lambda q: engine.search_filtered(q, TOP_K, allowed), texts) for _ in range(runs)]
        filtered_qps = len(texts) / statistics.median(elapsed for elapsed, _ in filtered)
        leaked = {i for _, results in filtered for ranked in results for i in ranked} - allowed
        assert not leaked, f"{engine.label} returned disallowed documents"
    engine.close()

    ndcg, recall, mrr = [], [], []
    for query_id, ranked in zip(query_ids, ranked_lists):
        names = [data.doc_ids[i] for i in ranked]
        relevant = data.qrels[query_id]
        ndcg.append(ndcg_at_k(names, relevant, 10))
        recall.append(recall_at_k(names, relevant, 100))
        mrr.append(mrr_at_k(names, relevant, 10))
    return Row(
        engine.label, statistics.fmean(ndcg), statistics.fmean(recall), statistics.fmean(mrr),
        build_s, qps, filtered_qps, engine.incremental, engine.persistent,
    )


def format_table(rows: list[Row]) -> str:
    header = ("engine", "nDCG@10", "R@100", "MRR@10", "build s", "q/s", "q/s ACL½", "incremental", "persistent")
    lines = [
        (r.label, f"{r.ndcg10:.4f}", f"{r.recall100:.4f}", f"{r.mrr10:.4f}", f"{r.build_s:.2f}",
         f"{r.qps:.0f}", "-" if r.filtered_qps is None else f"{r.filtered_qps:.0f}", r.incremental, r.persistent)
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    fmt = lambda row: "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes over all queries; the median is reported")
    args = parser.parse_args(argv)
    if not (args.data / "corpus.jsonl").exists():
        print(f"SciFact not found at {args.data}; nothing to measure.", file=sys.stderr)
        return 2
    data = load_beir(args.data)
    allowed = set(random.Random(0).sample(range(len(data.texts)), len(data.texts) // 2))
    print(f"SciFact train: {len(data.texts)} documents, {len(data.queries)} judged queries, top {TOP_K}")
    rows = []
    for engine in candidate_engines():
        rows.append(measure(engine, data, args.runs, allowed))
        print(f"  measured {rows[-1].label}", file=sys.stderr, flush=True)
    print(format_table(rows))
    print("q/s: single-query loop, query analysis included, median of passes; "
          "q/s ACL½: the same with an access-control filter allowing a random half of the documents.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
