"""Embedding throughput and retrieval quality per backend, against plain ``SentenceTransformer.encode``.

    python bench/embed.py [--docs 2000] [--queries 300] [--rounds 3] [--round-docs 256]

Every variant embeds the same SciFact subset (the documents judged relevant for ``--queries``
training queries, topped up with distractors to ``--docs``), so throughput and nDCG@10 are
measured on identical inputs. Variants:

    baseline        SentenceTransformer.encode, fp32, batch 64 (what a naive caller does)
    torch           our embedder: tokenize once, length-sorted token-budget batches
    onnx            exported graph on ONNX Runtime, fp32
    onnx-int8       the same, int8 weights per channel, dynamic activation quantization,
                    one text per call (batched calls would make vectors depend on batch-mates)
    openvino        exported graph on OpenVINO (its default CPU precision: bf16 where the CPU has it)
    openvino-int8   OpenVINO with static int8 (nncf, built-in calibration sentences)

With ``--device cuda`` only the torch variants run: the baseline in fp32 on the GPU, ours in fp16
(raise ``--batch-size``/``--batch-tokens`` to see what larger batches buy on a GPU):

    python bench/embed.py --device cuda --docs 5000 --round-docs 5000 --variants baseline,torch

Variants whose packages are missing are skipped with a note. Throughput is reported twice:
from the single full quality pass, and as the median of ``--rounds`` interleaved rounds over
the first ``--round-docs`` documents (interleaving spreads background load over all variants).
Without the SciFact folder, synthetic sentences are embedded and quality is not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import SCIFACT, machine, median, table  # noqa: E402

VARIANTS = ("baseline", "torch", "onnx", "onnx-int8", "openvino", "openvino-int8")


@dataclass
class Workload:
    docs: list[str]
    queries: list[str]
    relevant: list[set[int]]  # per query: indices into docs
    source: str


@dataclass
class Result:
    name: str
    startup_s: float
    full_docs_per_s: float
    round_docs_per_s: list[float] = field(default_factory=list)
    doc_vectors: np.ndarray | None = None
    query_vectors: np.ndarray | None = None


def scifact_workload(n_docs: int, n_queries: int, seed: int = 13) -> Workload | None:
    corpus_path = SCIFACT / "corpus.jsonl"
    if not corpus_path.exists():
        return None
    corpus: dict[str, str] = {}
    with open(corpus_path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[row["_id"]] = f"{row.get('title', '')}. {row.get('text', '')}".strip()
    queries: dict[str, str] = {}
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    qrels: dict[str, set[str]] = {}
    with open(SCIFACT / "qrels" / "train.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and did in corpus and qid in queries:
                qrels.setdefault(qid, set()).add(did)

    rng = random.Random(seed)
    qids = sorted(qrels)
    rng.shuffle(qids)
    qids = qids[:n_queries]
    judged = sorted(set().union(*(qrels[q] for q in qids)))
    distractors = sorted(set(corpus) - set(judged))
    rng.shuffle(distractors)
    doc_ids = judged + distractors[: max(0, n_docs - len(judged))]
    rng.shuffle(doc_ids)  # judged documents must not all sit in the timed rounds' prefix
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    return Workload(
        docs=[corpus[d] for d in doc_ids],
        queries=[queries[q] for q in qids],
        relevant=[{position[d] for d in qrels[q]} for q in qids],
        source=f"SciFact train: {len(qids)} queries, {len(doc_ids)} docs ({len(judged)} judged relevant)",
    )


def synthetic_workload(n_docs: int) -> Workload:
    rng = random.Random(7)
    words = ("system data model index query result service network storage latency policy "
             "report team budget device update network user access review error cache").split()
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 180))) + "." for _ in range(n_docs)]
    return Workload(docs=docs, queries=[], relevant=[], source=f"synthetic: {n_docs} docs (SciFact not found at {SCIFACT})")


def ndcg_at_10(doc_vectors: np.ndarray, query_vectors: np.ndarray, relevant: list[set[int]]) -> float:
    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    discounts = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for row, rel in zip(top, relevant, strict=True):
        dcg = sum(discounts[rank] for rank, doc in enumerate(row) if int(doc) in rel)
        ideal = discounts[: min(10, len(rel))].sum()
        total += dcg / ideal
    return total / len(relevant)


def make_variant(name: str, args: argparse.Namespace) -> tuple[Callable[[list[str]], np.ndarray], Callable[[list[str]], np.ndarray]] | str:
    """(embed documents, embed queries) for a variant, or a string saying why it is skipped."""
    from ingest.runtime.resolve import resolve_model

    if name == "baseline":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(resolve_model(args.model)), device=args.device, local_files_only=True)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

        return encode, encode

    from ingest.embedder_st import BackendUnavailable, SentenceTransformerEmbedder

    backend, _, quant = name.partition("-")
    if args.device != "cpu" and backend != "torch":
        return f"the {backend} backend runs on the CPU only"
    try:
        embedder = SentenceTransformerEmbedder(
            args.model,
            device=args.device,
            backend=backend,  # type: ignore[arg-type]
            quantization=(quant or "none"),  # type: ignore[arg-type]
            batch_size=args.batch_size,
            batch_tokens=args.batch_tokens,
            threads=args.threads,
            cache_dir=args.cache_dir,
        )
    except BackendUnavailable as exc:
        return str(exc)
    return embedder.embed_documents, embedder.embed_queries


def timed(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = fn(texts)  # numpy out: GPU work has finished when the vectors are on the host
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds after the quality pass")
    parser.add_argument("--round-docs", type=int, default=256)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = library default")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda: the baseline then runs fp32 on the GPU, our torch variant fp16")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "groundwork-bench-models",
                        help="where exported ONNX/OpenVINO models are kept between runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    import torch

    workload = scifact_workload(args.docs, args.queries) or synthetic_workload(args.docs)
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no GPU")
        print(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    print(f"workload: {workload.source}")
    print(_versions())

    results: dict[str, Result] = {}
    runners: dict[str, tuple[Callable, Callable]] = {}
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        started = time.perf_counter()
        made = make_variant(name, args)
        if isinstance(made, str):
            print(f"skip {name}: {made}")
            continue
        embed_docs, embed_queries = made
        startup = time.perf_counter() - started
        embed_docs(workload.docs[:8])  # warm-up: first-call allocations and kernel selection
        doc_vectors, seconds = timed(embed_docs, workload.docs)
        query_vectors = embed_queries(workload.queries) if workload.queries else None
        results[name] = Result(name, startup, len(workload.docs) / seconds, doc_vectors=doc_vectors, query_vectors=query_vectors)
        runners[name] = (embed_docs, embed_queries)
        print(f"{name}: {len(workload.docs) / seconds:.1f} docs/s over {len(workload.docs)} docs (startup {startup:.1f}s)", flush=True)

    round_docs = workload.docs[: args.round_docs]
    for round_no in range(args.rounds):
        for name, (embed_docs, _) in runners.items():
            _, seconds = timed(embed_docs, round_docs)
            results[name].round_docs_per_s.append(len(round_docs) / seconds)
        print(f"round {round_no + 1}/{args.rounds} done; load average {os.getloadavg()[0]:.1f}", flush=True)

    _report(results, workload, args)


def _report(results: dict[str, Result], workload: Workload, args: argparse.Namespace) -> None:
    if not results:
        print("nothing measured")
        return
    reference_name = "baseline" if "baseline" in results else next(iter(results))
    reference = results[reference_name]
    ref_speed = median(reference.round_docs_per_s) if reference.round_docs_per_s else reference.full_docs_per_s
    ref_ndcg = None
    if workload.queries and reference.query_vectors is not None:
        ref_ndcg = ndcg_at_10(reference.doc_vectors, reference.query_vectors, workload.relevant)

    rows, records = [], []
    for name, result in results.items():
        speed = median(result.round_docs_per_s) if result.round_docs_per_s else result.full_docs_per_s
        cosines = np.sum(result.doc_vectors * reference.doc_vectors, axis=1)
        row = [name, f"{result.startup_s:.1f}", f"{result.full_docs_per_s:.1f}", f"{speed:.1f}", f"{speed / ref_speed:.2f}x",
               f"{cosines.min():.4f}", f"{cosines.mean():.5f}"]
        record = {"variant": name, "startup_s": result.startup_s, "full_pass_docs_per_s": result.full_docs_per_s,
                  "round_docs_per_s": result.round_docs_per_s, "speedup_vs_baseline": speed / ref_speed,
                  "min_cosine_vs_baseline": float(cosines.min()), "mean_cosine_vs_baseline": float(cosines.mean())}
        if ref_ndcg is not None:
            ndcg = ndcg_at_10(result.doc_vectors, result.query_vectors, workload.relevant)
            # Queries embedded by this variant against documents embedded in fp32: what a
            # deployment sees if it switches backend without re-embedding its corpus.
            cross = ndcg_at_10(reference.doc_vectors, result.query_vectors, workload.relevant)
            row += [f"{ndcg:.4f}", f"{100 * (ndcg - ref_ndcg) / ref_ndcg:+.2f}%", f"{cross:.4f}"]
            record.update(ndcg_at_10=ndcg, ndcg_rel_change=(ndcg - ref_ndcg) / ref_ndcg, cross_ndcg_at_10=cross)
        rows.append(row)
        records.append(record)

    headers = ["variant", "startup s", "docs/s full", f"docs/s med{len(reference.round_docs_per_s)}", "vs baseline",
               "min cos", "mean cos"]
    if ref_ndcg is not None:
        headers += ["nDCG@10", "vs fp32", "nDCG@10 fp32 docs"]
    print()
    print(table(rows, headers))
    print(f"\nload average at end {os.getloadavg()[0]:.1f}; cos = cosine to the {reference_name} vector of the same document")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "workload": workload.source, "results": records}, indent=2))


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("torch", "sentence-transformers", "transformers", "onnxruntime", "openvino", "nncf"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return "versions: " + ", ".join(found)


if __name__ == "__main__":
    main()
