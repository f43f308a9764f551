"""Sweep fusion settings on a BEIR dataset already loaded by `groundwork eval` (SciFact train
by default) and print nDCG@10 / recall@100 per configuration. Query embeddings are computed
once; only fusion and candidate depth vary.

    python bench/tune_fusion.py [--data-dir groundwork-data/bench-scifact] [--variants 'default;{"document_boost_weight": 0.5}']

``--variants`` measures settings overrides (JSON objects; ``default`` is the settings as they
are) instead of the fusion grid, e.g. the document-aware ranking knobs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SCIFACT, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("groundwork-data/bench-scifact"))
    parser.add_argument("--beir", type=Path, default=SCIFACT)
    parser.add_argument("--split", default="train")
    parser.add_argument("--variants", default="", help="';'-separated: default, or a JSON object of settings overrides")
    args = parser.parse_args()

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from index.settings import Settings
    from service.beir import SOURCE_SCHEME, read_jsonl, read_qrels
    from service.engine import Groundwork
    from service.query.evaluation import evaluate
    from service.query.types import Principal, Query, SearchFilters

    gw = Groundwork(Settings(data_dir=args.data_dir, reranker_enabled=False))
    with gw.fixed_corpus():  # nothing changes while tuning: queries need not follow the change log
        collection = f"beir-{args.beir.name}"
        qrels = read_qrels(args.beir / "qrels" / f"{args.split}.tsv")
        queries = {q["_id"]: q["text"] for q in read_jsonl(args.beir / "queries.jsonl") if q["_id"] in qrels}
        qids = sorted(queries)
        vectors = gw.embedder.embed_queries([queries[q] for q in qids])
        prefix = f"{SOURCE_SCHEME}{collection}/"
        principal, filters = Principal("tune", all_access=True), SearchFilters(collections=(collection,))

        if args.variants:
            rows = []
            for variant in [v.strip() for v in args.variants.split(";") if v.strip()]:
                overrides = json.loads(variant) if variant != "default" else {}
                saved = {key: getattr(gw.settings, key) for key in overrides}
                for key, value in overrides.items():
                    setattr(gw.settings, key, value)
                started = time.perf_counter()
                runs = {}
                for i, qid in enumerate(qids):
                    out = gw.pipeline.search(Query(queries[qid], principal, k=100, mode="hybrid", filters=filters, collapse=True),
                                             vector=vectors[i])
                    runs[qid] = [h.source[len(prefix):] for h in out.hits]
                for key, value in saved.items():
                    setattr(gw.settings, key, value)
                m = evaluate(runs, {q: qrels[q] for q in qids})
                rows.append([variant, m["ndcg@10"], m["recall@100"], m["mrr@10"], f"{len(qids) / (time.perf_counter() - started):.1f}"])
                print(rows[-1], flush=True)
            print(table(rows, ["variant", "nDCG@10", "R@100", "MRR@10", "q/s"]))
            return

        configs = [
            ("rrf", 60, 1.0, 1.0, 100), ("rrf", 20, 1.0, 1.0, 100), ("rrf", 100, 1.0, 1.0, 100),
            ("rrf", 60, 1.0, 1.5, 100), ("rrf", 60, 1.5, 1.0, 100), ("rrf", 60, 1.0, 1.0, 200),
            ("weighted", 60, 0.5, 0.5, 100), ("weighted", 60, 0.6, 0.4, 100), ("weighted", 60, 0.4, 0.6, 100),
            ("weighted", 60, 0.5, 0.5, 200), ("weighted", 60, 0.3, 0.7, 100),
        ]
        rows = []
        for fusion, rrf_k, w_dense, w_kw, depth in configs:
            s = gw.settings
            s.fusion, s.rrf_k, s.fusion_dense_weight, s.fusion_keyword_weight = fusion, rrf_k, w_dense, w_kw
            s.dense_candidates = s.keyword_candidates = depth
            started = time.perf_counter()
            runs = {}
            for i, qid in enumerate(qids):
                out = gw.pipeline.search(Query(queries[qid], principal, k=100, mode="hybrid", filters=filters, collapse=True),
                                         vector=vectors[i])
                runs[qid] = [h.source[len(prefix):] for h in out.hits]
            m = evaluate(runs, {q: qrels[q] for q in qids})
            rows.append([fusion, rrf_k if fusion == "rrf" else "-", w_dense, w_kw, depth, m["ndcg@10"], m["recall@100"], m["mrr@10"],
                         f"{len(qids) / (time.perf_counter() - started):.1f}"])
            print(rows[-1], flush=True)
        print(table(rows, ["fusion", "rrf_k", "w_dense", "w_keyword", "depth", "nDCG@10", "R@100", "MRR@10", "q/s"]))


if __name__ == "__main__":
    main()
