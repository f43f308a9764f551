"""Search latency in-process on the SciFact corpus: query embedding + both retrievers +
fusion, p50/p95 per mode, next to the query embedding alone measured in the same run.

    python bench/search.py [--data-dir groundwork-data/bench-scifact] [--queries 300]

The corpus is loaded (once; later runs reuse it) through the shipped pipeline by the same
code as `groundwork eval --beir`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SCIFACT, machine, median, percentile, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("groundwork-data/bench-scifact"))
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").exists():
        print(f"SciFact not found at {SCIFACT}; nothing to measure")
        return

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from index.settings import Settings
    from service.beir import load_corpus, read_jsonl
    from service.engine import Groundwork
    from service.query.types import Principal, Query, SearchFilters

    settings = Settings(data_dir=args.data_dir, reranker_enabled=False)
    gw = Groundwork(settings)
    collection = "beir-scifact-train"
    t0 = time.perf_counter()
    size = load_corpus(gw, SCIFACT / "corpus.jsonl", collection)
    load_s = time.perf_counter() - t0
    with gw.fixed_corpus():  # nothing changes during the run: searches need not follow the change log
        queries = [q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl")][: args.queries]
        principal = Principal("bench", all_access=True)
        filters = SearchFilters(collections=(collection,))

        for q in queries[:10]:  # warm up
            gw.pipeline.search(Query(q, principal, k=10, filters=filters))

        embed_ms = []
        for q in queries:
            t = time.perf_counter()
            gw.embedder.embed_queries([q])
            embed_ms.append((time.perf_counter() - t) * 1000)

        rows = [["query embedding alone [baseline]", f"{median(embed_ms):.2f}", f"{percentile(embed_ms, 0.95):.2f}", "1.00"]]
        for mode in ("keyword", "dense", "hybrid"):
            lat = []
            for q in queries:
                t = time.perf_counter()
                gw.pipeline.search(Query(q, principal, k=10, mode=mode, filters=filters))
                lat.append((time.perf_counter() - t) * 1000)
            rows.append([f"search {mode} (k=10)", f"{median(lat):.2f}", f"{percentile(lat, 0.95):.2f}", f"{median(lat) / median(embed_ms):.2f}"])
        print(f"machine: {machine()}")
        print(f"corpus: SciFact train, {size} abstracts, {gw.indexes.vectors.live_count} chunks "
              f"(vector index: {gw.indexes.vectors.kind}; load {load_s:.0f}s); {len(queries)} queries, single-threaded, in-process")
        print(table(rows, ["what", "p50 ms", "p95 ms", "p50 / embedding"]))
        gw.close()


if __name__ == "__main__":
    main()
