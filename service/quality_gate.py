"""The quality gate of a reindex: the new version must not rank the admin's labelled queries
worse than the live one before it is switched to.

The labelled queries are a BEIR-format folder (queries.jsonl, qrels/<split>.tsv, and the
corpus.jsonl that ``groundwork eval --beir DIR`` loaded into the collection ``beir-<folder
name>``). Both versions answer every query the way the service does (the default ``hybrid``
mode, without reranking: a reranker reorders both alike, the gate measures what changed), and
their nDCG@10 are compared. Pure logic over a retriever's view of an index pair; the engine
stages the new version and decides what to commit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from index.catalog import Catalog
from index.errors import InputRejected
from index.settings import Settings
from index.store import Store
from ingest.embedder import Embedder
from service.beir import SOURCE_SCHEME, read_jsonl, read_qrels
from service.query.evaluation import evaluate
from service.query.pipeline import QueryPipeline
from service.query.retrieval import Retriever
from service.query.types import Principal, Query, SearchFilters

GATE_MODE = "hybrid"
NDCG = "ndcg@10"


class GateUnusable(InputRejected):
    """The labelled queries cannot be used (missing files, no judged query, corpus not loaded):
    nothing was built or changed."""

    code = "gate_unusable"


@dataclass(frozen=True)
class QualityGate:
    folder: Path
    split: str = "test"
    max_drop: float = 0.01


@dataclass(frozen=True)
class GateQueries:
    """The judged queries of a gate folder, and the collection their corpus was loaded into."""

    texts: dict[str, str]
    qrels: dict[str, dict[str, float]]
    collection: str


@dataclass(frozen=True)
class GateOutcome:
    live_ndcg: float | None  # None: no live version yet, nothing to protect
    new_ndcg: float
    max_drop: float
    queries: int
    live_model: str | None
    new_model: str
    mode: str = GATE_MODE

    @property
    def drop(self) -> float:
        return 0.0 if self.live_ndcg is None else self.live_ndcg - self.new_ndcg

    @property
    def passed(self) -> bool:
        # A float tolerance, so that an unchanged ranking never fails an allowance of 0.
        return self.live_ndcg is None or self.drop <= self.max_drop + 1e-9

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"drop": round(self.drop, 6), "passed": self.passed}

    def describe(self) -> str:
        live = "no live version" if self.live_ndcg is None else f"live {self.live_ndcg:.4f} ({self.live_model})"
        verdict = "switched" if self.passed else f"REFUSED: dropped more than the allowed {self.max_drop:.4f}"
        return (f"quality gate, nDCG@10 on {self.queries} labelled queries ({self.mode}): {live}, "
                f"new {self.new_ndcg:.4f} ({self.new_model}); change {-self.drop:+.4f}: {verdict}")


class GateRefused(Exception):
    """The new version ranks the labelled queries worse than allowed: the live version keeps
    serving and the database keeps its embeddings."""

    def __init__(self, outcome: GateOutcome):
        super().__init__(outcome.describe())
        self.gate = outcome.to_json()
        self.outcome = outcome


def load_gate_queries(gate: QualityGate, store: Store) -> GateQueries:
    """The judged queries, checked before any work: a gate that cannot measure refuses at once."""
    if not math.isfinite(gate.max_drop) or gate.max_drop < 0:
        raise GateUnusable(f"the allowed drop must be a number >= 0, not {gate.max_drop}")
    folder = Path(gate.folder)
    qrels_path = folder / "qrels" / f"{gate.split}.tsv"
    for path in (folder / "queries.jsonl", qrels_path):
        if not path.is_file():
            raise GateUnusable(f"the quality gate needs {path} (a BEIR-format folder: queries.jsonl, qrels/<split>.tsv)")
    try:
        qrels = read_qrels(qrels_path)
        texts = {str(q["_id"]): str(q["text"]) for q in read_jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels}
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GateUnusable(f"the labelled queries in {folder} are unreadable: {type(exc).__name__}: {exc}") from None
    judged = {q: qrels[q] for q in texts if any(g > 0 for g in qrels[q].values())}
    if not judged:
        raise GateUnusable(f"{qrels_path} judges no query of {folder / 'queries.jsonl'} relevant to anything")
    collection = f"beir-{folder.name}"
    if not store.documents_in(collection):
        raise GateUnusable(f"the corpus of {folder} is not in the database (collection {collection!r}); "
                           f"load it once with `groundwork eval --beir {folder}`")
    return GateQueries({q: texts[q] for q in judged}, judged, collection)


def measure(settings: Settings, store: Store, indexes: Any, embedder: Embedder, queries: GateQueries) -> float:
    """nDCG@10 of one index pair (anything with ``vectors``, ``keyword`` and ``position``, as a
    ``Retriever`` reads it) with the embedder its vectors came from."""
    pipeline = QueryPipeline(settings, Retriever(settings, store, indexes, Catalog(store)), embedder, None,
                             generator=_no_generator, extractive_generator=_no_generator)
    ids = sorted(queries.texts)
    vectors = embedder.embed_queries([queries.texts[q] for q in ids])
    principal = Principal(id="quality-gate", all_access=True)
    filters = SearchFilters(collections=(queries.collection,))
    prefix = f"{SOURCE_SCHEME}{queries.collection}/"
    runs: dict[str, list[str]] = {}
    for i, qid in enumerate(ids):
        outcome = pipeline.search(Query(queries.texts[qid], principal, k=10, mode=GATE_MODE, filters=filters, rerank=False,
                                        collapse=True), vector=vectors[i])
        runs[qid] = [hit.source[len(prefix):] for hit in outcome.hits if hit.source.startswith(prefix)]
    return float(evaluate(runs, queries.qrels, ndcg_k=10, recall_k=10, mrr_k=10)[NDCG])


def _no_generator():
    raise RuntimeError("the quality gate only searches")
