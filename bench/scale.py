"""The whole product as the corpus grows: write, build, open, verify, reindex and search at N
chunks, beside the same figures at 10k chunks measured in the same run.

    python bench/scale.py --chunks 100000                  # 10k baseline, then 100k
    python bench/scale.py --chunks 1000000 --http-seconds 0  # 1M (well under an hour here)
    python bench/scale.py --chunks 10000 --embedder real     # the real model's vectors

Corpus: deterministic synthetic documents (a Zipf vocabulary of pseudo-words, sentences of
5-30 words, sections of 2-9 sentences, one chunk per section, a shared disclaimer in some
chunks, every document in one of 100 access groups) written through ``Store.put_documents``
(the bulk path, one transaction per batch) after a first slice through ``Store.put_document``
(the per-document path ingestion takes), so both write rates are reported.

Vectors: with ``--embedder fast`` (the default) a STAND-IN: points of a Gaussian mixture fitted
to all-MiniLM-L6-v2 embeddings of SciFact (``bench/ann.py``'s ``Mixture``), one topic per
document; the query side returns the stand-in vector of the query text but first pays for the
real model's query embedding when that model is installed, so latencies include it. ``real``
embeds every chunk with the configured model (slow on a CPU: for small N or a GPU).

Relevance: 40 planted queries of three rare words each; one chunk holds all three (grade 2,
its vector near the query's), two hold two of them (grade 1, further away). nDCG@10 of hybrid
search over those shows whether speed cost recall.

Searches (k=10, hybrid, no reranker): in-process through ``Groundwork.pipeline`` and over HTTP
(``groundwork serve`` in a child process, one and eight keep-alive clients), for a key that sees
everything and keys whose groups keep 10% and 1% of the chunks. Start-up is a fresh process
opening the data directory (indexes verified and caught up, the catalog loaded, one search)
after a clean shutdown, and after ``kill -9`` of a process that had written 200 chunks the
indexes had not yet seen.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import machine, median, percentile  # noqa: E402

BASELINE = 10_000
DIM = 384
GROUPS = 100  # every document belongs to team-00 .. team-99
PLANTED = 40
COLLECTION = "scale"
FINGERPRINT_FAST = "stand-in-minilm-statistics-v1"


# --- corpus ------------------------------------------------------------------------------------


def pseudo_words(count: int, rng: np.random.Generator, prefix: str = "") -> list[str]:
    """Pronounceable, distinct words from syllables (so the analyzer treats them as words)."""
    onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "cr", "st", "tr", "pl", "gr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        syllables = int(rng.integers(1, 4))
        word = prefix + "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] + codas[rng.integers(len(codas))]
                                for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


@dataclass
class Corpus:
    """Generates documents chunk by chunk; everything follows from the seed."""

    seed: int = 7
    vocabulary_size: int = 30_000

    def __post_init__(self) -> None:
        from bench.ann import Mixture

        rng = np.random.default_rng(self.seed)
        self.words = np.asarray(pseudo_words(self.vocabulary_size, rng), dtype=object)
        ranks = np.arange(1, self.vocabulary_size + 1, dtype=np.float64)
        p = 1.0 / (ranks + 2.7) ** 1.07  # Zipf-Mandelbrot, as in English text
        self.cumulative = np.cumsum(p / p.sum())
        self.disclaimers = [self.sentence(rng, 20) for _ in range(3)]
        self.mixture = Mixture.make(DIM, 1000, rng)
        planted_words = pseudo_words(3 * PLANTED, rng, prefix="zy")
        self.planted = [planted_words[3 * i: 3 * i + 3] for i in range(PLANTED)]
        self.query_vectors = self.mixture.sample(PLANTED, rng)

    def sentence(self, rng: np.random.Generator, length: int | None = None) -> str:
        n = int(length or np.clip(rng.normal(16, 6), 5, 30))
        idx = np.searchsorted(self.cumulative, rng.random(n))
        words = self.words[np.minimum(idx, self.vocabulary_size - 1)]
        return " ".join(words).capitalize() + "."

    def sentences(self, rng: np.random.Generator, count: int) -> list[str]:
        """``count`` sentences of 5-30 words, drawn at once."""
        lengths = np.clip(rng.normal(16, 6, count), 5, 30).astype(np.int64)
        idx = np.minimum(np.searchsorted(self.cumulative, rng.random(int(lengths.sum()))), self.vocabulary_size - 1)
        words = self.words[idx].tolist()
        out, start = [], 0
        for length in lengths.tolist():
            out.append(" ".join(words[start : start + length]).capitalize() + ".")
            start += length
        return out

    def noise(self, n: int, rng: np.random.Generator, scale: float) -> np.ndarray:
        from bench.ann import anisotropic_gaussian

        return scale * anisotropic_gaussian(n, self.mixture.point_scales, self.mixture.basis, rng)

    def plan(self, n_chunks: int) -> tuple[list[int], dict[int, list[tuple[int, int]]]]:
        """Chunks per document (1-12, mean about 5) summing to ``n_chunks``, and where each
        planted query's relevant chunks sit: query -> [(global chunk index, grade)]."""
        rng = np.random.default_rng(self.seed + n_chunks)
        sizes: list[int] = []
        total = 0
        while total < n_chunks:
            size = int(min(12, max(1, rng.poisson(4.5))))
            size = min(size, n_chunks - total)
            sizes.append(size)
            total += size
        spots = rng.choice(n_chunks, size=3 * PLANTED, replace=False)
        planted = {q: [(int(spots[3 * q]), 2), (int(spots[3 * q + 1]), 1), (int(spots[3 * q + 2]), 1)] for q in range(PLANTED)}
        return sizes, planted

    def documents(self, n_chunks: int, embed=None):
        """Yields (document index, DocumentWrite) in order; chunk vectors from the stand-in
        mixture unless ``embed`` (texts -> vectors) is given."""
        from index.store import DocumentWrite, NewChunk

        sizes, planted = self.plan(n_chunks)
        at_chunk: dict[int, tuple[int, int]] = {spot: (q, grade) for q, spots in planted.items() for spot, grade in spots}
        rng = np.random.default_rng(self.seed * 1_000_003 + n_chunks)
        chunk_index = 0
        noise_pool = np.zeros((0, DIM), dtype=np.float32)
        for doc_index, size in enumerate(sizes):
            topic = self.mixture.centers[int(rng.integers(len(self.mixture.centers)))]
            title = " ".join(self.words[np.searchsorted(self.cumulative, rng.random(4))]).title()
            chunks, texts, vectors = [], [], []
            offset = 0
            # Drawn per document, not per sentence: the generator, not the product, was most of
            # a 1M run's write phase.
            per_chunk = rng.integers(2, 10, size)
            all_sentences = self.sentences(rng, int(per_chunk.sum()))
            disclaimed = rng.random(size) < 0.15
            which = rng.integers(len(self.disclaimers), size=size)
            if len(noise_pool) < size:  # drawn in large blocks: one small matrix product per document was slower
                noise_pool = self.noise(20_000, rng, 1.0)
            noise, noise_pool = noise_pool[:size], noise_pool[size:]
            first = 0
            for ordinal in range(size):
                sentences = all_sentences[first : first + per_chunk[ordinal]]
                first += per_chunk[ordinal]
                if disclaimed[ordinal]:
                    sentences.append(self.disclaimers[which[ordinal]])
                vector = None
                if chunk_index in at_chunk:
                    q, grade = at_chunk[chunk_index]
                    words = self.planted[q] if grade == 2 else self.planted[q][:2]
                    sentences.insert(int(rng.integers(len(sentences))), f"The {' and '.join(words)} case applies here.")
                    vector = self.query_vectors[q] + self.noise(1, rng, 0.5 if grade == 2 else 0.9)[0]
                if vector is None:
                    vector = topic + noise[ordinal]
                text = " ".join(sentences)
                heading = [f"Section {ordinal + 1}"]
                chunks.append(NewChunk(ordinal=ordinal, text=text, token_count=len(text) // 4, start=offset,
                                       end=offset + len(text), pages=[ordinal // 3 + 1], heading_path=heading))
                offset += len(text) + 2
                texts.append(text)
                vectors.append(vector)
                chunk_index += 1
            if embed is not None:
                matrix = np.asarray(embed(texts), dtype=np.float32)
            else:
                matrix = np.asarray(vectors, dtype=np.float32)
                matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            body = "\n\n".join(texts)
            yield doc_index, DocumentWrite(
                collection=COLLECTION, source=f"scale://doc-{doc_index:07d}.txt", sha256=hashlib.sha256(body.encode()).hexdigest(),
                title=title, mime_type="text/plain", text=body, size_bytes=len(body.encode()), groups=[group_of(doc_index)],
                metadata={}, chunks=chunks, embeddings=matrix, embedding_fingerprint="", context="")

    def random_queries(self, count: int) -> list[str]:
        rng = np.random.default_rng(self.seed + 99)
        out = []
        for _ in range(count):
            # mid-frequency words, as people type them
            idx = rng.integers(50, 5000, int(rng.integers(2, 6)))
            out.append(" ".join(self.words[idx]))
        return out


def group_of(doc_index: int) -> str:
    return f"team-{doc_index % GROUPS:02d}"


def groups_for_share(share: float) -> list[str]:
    return [f"team-{i:02d}" for i in range(max(1, round(GROUPS * share)))]


# --- the stand-in embedder ---------------------------------------------------------------------


def make_embedder(kind: str, corpus: Corpus, *, pay_real_query_cost: bool):
    """The real configured model, or the stand-in (see the module docstring)."""
    from ingest.embedder import Embedder
    from ingest.embedder_st import SentenceTransformerEmbedder
    from index.settings import Settings

    real = None
    if kind == "real" or pay_real_query_cost:
        try:
            real = SentenceTransformerEmbedder.from_settings(Settings(data_dir=Path("/tmp")))
        except Exception as exc:  # not installed: latencies leave out query embedding, and say so
            if kind == "real":
                raise
            print(f"note: real model unavailable ({exc}); query embedding cost NOT included", file=sys.stderr)
    if kind == "real":
        return real

    planted_vectors = {" ".join(words): corpus.query_vectors[q] for q, words in enumerate(corpus.planted)}

    class StandInEmbedder(Embedder):
        model_name = "stand-in (MiniLM statistics)"
        dimension = DIM
        max_seq_length = 256
        fingerprint = FINGERPRINT_FAST
        device = "cpu"
        pays_real_query_cost = real is not None

        def embed_documents(self, texts):
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for row, text in enumerate(texts):
                rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))
                out[row] = corpus.mixture.sample(1, rng)[0]
            return out

        def embed_queries(self, texts):
            if real is not None:
                real.embed_queries(list(texts))  # the real cost, result unused
            out = self.embed_documents(texts)
            for row, text in enumerate(texts):
                if text in planted_vectors:
                    out[row] = planted_vectors[text]
            return out

        def tokenizer_path(self):
            return None

    return StandInEmbedder()


# --- measurements --------------------------------------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def disk_bytes(data_dir: Path, database_url: str | None) -> int:
    total = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file() and "snapshots" not in p.parts)
    if database_url and database_url.startswith("postgres"):
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.connect() as connection:
            total += int(connection.execute(text("select pg_database_size(current_database())")).scalar())
        engine.dispose()
    return total


def settings_for(data_dir: Path, database_url: str | None, **extra):
    from index.settings import Settings

    values = {"data_dir": data_dir, "reranker_enabled": False, **extra}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


def dcg(grades: list[int]) -> float:
    return sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(grades))


def ndcg_at_10(gw, corpus: Corpus, qrels: dict[int, dict[int, int]]) -> float:
    from service.query.types import Principal, Query

    principal = Principal("bench", all_access=True)
    scores = []
    for q, words in enumerate(corpus.planted):
        hits = gw.pipeline.search(Query(" ".join(words), principal, k=10)).hits
        got = [qrels[q].get(h.chunk_id, 0) for h in hits[:10]]
        scores.append(dcg(got) / dcg(sorted(qrels[q].values(), reverse=True)))
    return float(np.mean(scores))


def search_latencies(gw, queries: list[str], principal) -> tuple[float, float]:
    from service.query.types import Query

    for q in queries[:10]:
        gw.pipeline.search(Query(q, principal, k=10))
    lat = []
    for q in queries:
        t = time.perf_counter()
        gw.pipeline.search(Query(q, principal, k=10))
        lat.append((time.perf_counter() - t) * 1000)
    return median(lat), percentile(lat, 0.95)


def principals():
    from service.query.types import Principal

    return {"all": Principal("bench-all", all_access=True),
            "10%": Principal("bench-10", groups=frozenset(groups_for_share(0.10))),
            "1%": Principal("bench-1", groups=frozenset(groups_for_share(0.01)))}


def child(args: list[str], timeout: float = 3600) -> dict:
    """Run this script in a fresh process in one of its child modes; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, env=child_env())
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure(n: int, options: argparse.Namespace) -> dict:
    from index.indexset import IndexSet
    from service.engine import Groundwork

    data_dir = options.work_dir / f"n{n}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    database_url = reset_database(options, n)
    corpus = Corpus()
    real_for_docs = make_embedder("real", corpus, pay_real_query_cost=False) if options.embedder == "real" else None
    settings = settings_for(data_dir, database_url)
    result: dict = {"chunks": n}

    # 1. write: the per-document path for a first slice, then the bulk path
    gw = Groundwork(settings, embedder=make_embedder(options.embedder, corpus, pay_real_query_cost=False))
    store = gw.store
    embed = real_for_docs.embed_documents if real_for_docs is not None else None
    single_chunks, single_s, bulk_chunks, bulk_s, generate_s = 0, 0.0, 0, 0.0, 0.0
    batch, batch_chunks = [], 0
    fingerprint = gw.embedder.fingerprint
    documents = corpus.documents(n, embed)
    while True:
        t = time.perf_counter()
        item = next(documents, None)
        generate_s += time.perf_counter() - t
        if item is None:
            break
        _doc_index, write = item
        write.embedding_fingerprint = fingerprint
        if single_chunks < min(2000, n // 5):
            t = time.perf_counter()
            store.put_document(write)
            single_s += time.perf_counter() - t
            single_chunks += len(write.chunks)
            continue
        batch.append(write)
        batch_chunks += len(write.chunks)
        if batch_chunks >= options.batch_chunks:
            t = time.perf_counter()
            store.put_documents(batch)
            bulk_s += time.perf_counter() - t
            bulk_chunks += batch_chunks
            batch, batch_chunks = [], 0
    if batch:
        t = time.perf_counter()
        store.put_documents(batch)
        bulk_s += time.perf_counter() - t
        bulk_chunks += batch_chunks
    result["write_per_document_chunks_s"] = single_chunks / single_s if single_s else float("nan")
    result["write_bulk_chunks_s"] = bulk_chunks / bulk_s if bulk_s else float("nan")
    result["generate_s"] = generate_s
    log(f"  n={n}: wrote {single_chunks} chunks one document per transaction ({result['write_per_document_chunks_s']:.0f}/s), "
        f"{bulk_chunks} in bulk ({result['write_bulk_chunks_s']:.0f}/s); {generate_s:.0f}s generating")

    # 2. index build (vectors, then BM25), timed apart
    timings: dict[str, float] = {}
    original_vectors, original_keyword = IndexSet._rebuild_vectors_into, IndexSet._rebuild_keyword_into

    def timed(name, fn):
        def run(self, directory):
            t0 = time.perf_counter()
            try:
                return fn(self, directory)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return run

    IndexSet._rebuild_vectors_into = timed("vectors", original_vectors)
    IndexSet._rebuild_keyword_into = timed("keyword", original_keyword)
    try:
        t = time.perf_counter()
        indexes = gw.indexes
        result["build_s"] = time.perf_counter() - t
    finally:
        IndexSet._rebuild_vectors_into, IndexSet._rebuild_keyword_into = original_vectors, original_keyword
    result["build_vectors_s"] = timings.get("vectors", float("nan"))
    result["build_keyword_s"] = timings.get("keyword", float("nan"))
    result["vector_kind"] = indexes.vectors.kind
    log(f"  n={n}: indexes built in {result['build_s']:.0f}s ({indexes.vectors.kind}: vectors {result['build_vectors_s']:.0f}s, "
        f"BM25 {result['build_keyword_s']:.0f}s)")
    qrels = planted_qrels(gw, corpus, n)
    gw.close()
    result["disk_bytes_per_chunk"] = disk_bytes(data_dir, database_url) / n

    # 3. start-up after a clean shutdown, and RSS
    base = ["--data-dir", str(data_dir), "--n", str(n), "--embedder-kind", options.embedder]
    if database_url:
        base += ["--database-url", database_url]
    opened = child(["--child", "open", *base])
    result["startup_clean_s"] = opened["open_s"]
    result["rss_bytes_per_chunk"] = opened["rss_delta"] / n
    result["rss_beyond_vectors_per_chunk"] = (opened["rss_delta"] - n * DIM * 4) / n
    result["catalog_refresh_s"] = opened["catalog_s"]
    # 4. start-up after kill -9 of a process with changes the indexes had not seen
    process = subprocess.Popen([sys.executable, __file__, "--child", "write-and-hang", *base], stdout=subprocess.PIPE, text=True, env=child_env())
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready" not in line:
        process.kill()
        raise RuntimeError(f"write-and-hang child said {line!r}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    result["startup_after_kill9_s"] = child(["--child", "open", *base])["open_s"]
    log(f"  n={n}: start-up clean {result['startup_clean_s']:.1f}s, after kill -9 {result['startup_after_kill9_s']:.1f}s")

    # 5. verify, reindex, searches in-process
    gw = Groundwork(settings, embedder=make_embedder(options.embedder, corpus, pay_real_query_cost=True))
    gw.indexes
    t = time.perf_counter()
    report = gw.verify()
    result["verify_s"] = time.perf_counter() - t
    result["verify_consistent"] = report["consistent"]
    t = time.perf_counter()
    gw.reindex(progress=False)
    result["reindex_s"] = time.perf_counter() - t
    log(f"  n={n}: verify {result['verify_s']:.1f}s (consistent={report['consistent']}), reindex {result['reindex_s']:.0f}s")
    queries = [" ".join(w) for w in corpus.planted] + corpus.random_queries(options.queries)
    with gw.fixed_corpus():
        result["ndcg10"] = ndcg_at_10(gw, corpus, qrels)
        for name, principal in principals().items():
            p50, p95 = search_latencies(gw, queries, principal)
            result[f"search_{name}_p50_ms"], result[f"search_{name}_p95_ms"] = p50, p95
    gw.close()
    log(f"  n={n}: nDCG@10 {result['ndcg10']:.3f}, hybrid p50 {result['search_all_p50_ms']:.1f} ms")

    # 6. over HTTP
    if options.http_seconds > 0:
        result.update(http_figures(settings, base, queries, options.http_seconds))
    return result


def planted_qrels(gw, corpus: Corpus, n: int) -> dict[int, dict[int, int]]:
    """query -> {chunk id: grade}, from the (document, ordinal) each planted chunk was written at."""
    sizes, planted = corpus.plan(n)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    qrels: dict[int, dict[int, int]] = {}
    for q, spots in planted.items():
        qrels[q] = {}
        for spot, grade in spots:
            doc_index = int(np.searchsorted(starts, spot, side="right") - 1)
            document = gw.store.find_document(COLLECTION, f"scale://doc-{doc_index:07d}.txt")
            ordinal = spot - int(starts[doc_index])
            chunk_id = chunk_id_of(gw.store, document.id, ordinal)
            qrels[q][chunk_id] = grade
    return qrels


def chunk_id_of(store, document_id: int, ordinal: int) -> int:
    from sqlalchemy import select
    from sqlmodel import Session

    from index.models import Chunk

    with Session(store.engine) as session:
        return int(session.execute(select(Chunk.id).where(Chunk.document_id == document_id, Chunk.ordinal == ordinal)).scalar_one())


def http_figures(settings, base: list[str], queries: list[str], seconds: float) -> dict:
    from bench.load import free_port, run_load
    from index.db import open_database
    from index.store import Store
    from service.auth import create_key

    engine = open_database(settings)
    store = Store(engine)
    keys = {"all": create_key(store, "reader", groups=["*"])[0],
            "10%": create_key(store, "reader", groups=groups_for_share(0.10))[0],
            "1%": create_key(store, "reader", groups=groups_for_share(0.01))[0]}
    engine.dispose()
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--child", "serve", "--port", str(port), *base],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    out: dict = {}
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if server.poll() is not None:
                raise RuntimeError("server exited")
        for name, key in keys.items():
            for clients in (1, 8):
                asyncio.run(run_load(url, clients, 2.0, False, queries, key=key))  # warm-up
                run = asyncio.run(run_load(url, clients, seconds, False, queries, key=key))
                lat = run["latencies"]
                out[f"http_{name}_c{clients}_p50_ms"] = median(lat)
                out[f"http_{name}_c{clients}_p95_ms"] = percentile(lat, 0.95)
                out[f"http_{name}_c{clients}_errors"] = len(run["errors"])
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


def reset_database(options: argparse.Namespace, n: int) -> str | None:
    if options.database == "sqlite":
        return None
    url = options.database_url or os.environ.get("GROUNDWORK_DATABASE_URL")
    if not url:
        raise SystemExit("--database postgres needs --database-url (or GROUNDWORK_DATABASE_URL)")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("drop schema public cascade; create schema public"))
    engine.dispose()
    return url


# --- child modes ---------------------------------------------------------------------------------


def run_child(options: argparse.Namespace) -> None:
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from service.engine import Groundwork
    from service.query.types import Principal, Query

    corpus = Corpus()
    settings = settings_for(Path(options.data_dir), options.database_url)
    if options.child == "open":
        embedder = make_embedder(options.embedder_kind, corpus, pay_real_query_cost=False)
        rss0 = rss_bytes()
        t = time.perf_counter()
        gw = Groundwork(settings, embedder=embedder)
        indexes = gw.indexes  # verify checksums, open, catch up
        t_catalog = time.perf_counter()
        gw.catalog.refresh(indexes.position)
        catalog_s = time.perf_counter() - t_catalog
        gw.pipeline.search(Query("first question", Principal("bench", all_access=True), k=10))
        open_s = time.perf_counter() - t
        print(json.dumps({"open_s": open_s, "catalog_s": catalog_s, "rss_delta": rss_bytes() - rss0}))
        gw.close()
    elif options.child == "write-and-hang":
        gw = Groundwork(settings, embedder=make_embedder(options.embedder_kind, corpus, pay_real_query_cost=False))
        gw.indexes
        written = 0
        for doc_index, write in Corpus(seed=11).documents(200):
            write.source = f"scale://late-{doc_index:05d}.txt"
            write.embedding_fingerprint = gw.embedder.fingerprint
            gw.store.put_document(write)
            written += len(write.chunks)
        print("ready", flush=True)
        time.sleep(3600)
    elif options.child == "serve":
        from service.server import serve

        settings = settings.model_copy(update={"port": options.port, "host": "127.0.0.1"})
        gw = Groundwork(settings, embedder=make_embedder(options.embedder_kind, corpus, pay_real_query_cost=True))
        sys.exit(serve(settings, groundwork=gw))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


ROWS = [
    ("write, per-document transactions (chunks/s)", "write_per_document_chunks_s", "{:.0f}"),
    ("write, bulk path (chunks/s)", "write_bulk_chunks_s", "{:.0f}"),
    ("index build, vectors (s)", "build_vectors_s", "{:.1f}"),
    ("index build, BM25 (s)", "build_keyword_s", "{:.1f}"),
    ("on disk per chunk (bytes)", "disk_bytes_per_chunk", "{:.0f}"),
    ("RSS per chunk after open (bytes)", "rss_bytes_per_chunk", "{:.0f}"),
    ("  of which beyond the raw vectors (bytes)", "rss_beyond_vectors_per_chunk", "{:.0f}"),
    ("start-up after clean shutdown (s)", "startup_clean_s", "{:.2f}"),
    ("  of which catalog load (s)", "catalog_refresh_s", "{:.2f}"),
    ("start-up after kill -9 (s)", "startup_after_kill9_s", "{:.2f}"),
    ("verify (s)", "verify_s", "{:.1f}"),
    ("reindex (s)", "reindex_s", "{:.1f}"),
    ("hybrid p50 / p95 in-process, all (ms)", ("search_all_p50_ms", "search_all_p95_ms"), "{:.1f} / {:.1f}"),
    ("  filter keeps 10% (ms)", ("search_10%_p50_ms", "search_10%_p95_ms"), "{:.1f} / {:.1f}"),
    ("  filter keeps 1% (ms)", ("search_1%_p50_ms", "search_1%_p95_ms"), "{:.1f} / {:.1f}"),
    *[(f"HTTP {c} client{'s' if c > 1 else ''}, {label} p50 / p95 (ms)", (f"http_{name}_c{c}_p50_ms", f"http_{name}_c{c}_p95_ms"), "{:.1f} / {:.1f}")
      for c in (1, 8) for name, label in (("all", "all"), ("10%", "10%"), ("1%", "1%"))],
    ("nDCG@10, planted queries", "ndcg10", "{:.3f}"),
]


def render(results: list[dict]) -> str:
    header = ["what"] + [f"{r['chunks']:,} chunks" + (" [baseline]" if i == 0 else "") for i, r in enumerate(results)]
    lines = []
    for label, keys, fmt in ROWS:
        cells = [label]
        for r in results:
            values = [r.get(k) for k in (keys if isinstance(keys, tuple) else (keys,))]
            cells.append("-" if any(v is None for v in values) else fmt.format(*values))
        lines.append(cells)
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in lines]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, nargs="+", default=[100_000], help="corpus sizes (the 10k baseline is added)")
    parser.add_argument("--baseline", type=int, default=BASELINE, help="the size every figure is compared with")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--embedder", choices=("fast", "real"), default="fast")
    parser.add_argument("--work-dir", type=Path, default=REPO / "groundwork-data" / "bench-scale")
    parser.add_argument("--queries", type=int, default=160, help="random queries besides the planted ones")
    parser.add_argument("--batch-chunks", type=int, default=5000, help="chunks per bulk transaction")
    parser.add_argument("--http-seconds", type=float, default=8.0, help="per client count and key; 0 skips HTTP")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--embedder-kind", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        run_child(options)
        return
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    sizes = sorted(set([options.baseline, *options.chunks]))
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    vectors = "REAL model" if options.embedder == "real" else "STAND-IN vectors (MiniLM statistics; query embedding cost real when the model is installed)"
    print(f"database: {options.database}; vectors: {vectors}")
    results = []
    for n in sizes:
        log(f"measuring {n:,} chunks")
        results.append(measure(n, options))
        log(json.dumps(results[-1]))
        if options.json:
            options.json.write_text(json.dumps(results, indent=1))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print(render(results))


if __name__ == "__main__":
    main()
