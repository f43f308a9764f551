"""Ingestion throughput: the whole pipeline (parse workers + chunk + embed + store) against
plain `SentenceTransformer.encode` over the very same chunk texts, in the same run.

    python bench/ingest.py [--docs 400]
    python bench/ingest.py --ray [ADDRESS] [--docs 400]

With ``--ray``: the single-process pipeline, then the same job through Ray with 1 and with 2
parse workers (one embed worker), each into a fresh data directory, in the same run. Without
an ADDRESS each Ray run starts a private local cluster; start-up (cluster, model load, parser
start) is timed apart from the job.

Corpus: SciFact abstracts written out as plain-text files (when ../shared/data is present),
otherwise generated paragraphs (labelled synthetic). Target: pipeline >= 0.8x plain encode.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SCIFACT, machine, median, table  # noqa: E402


def write_corpus(folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    corpus = SCIFACT / "corpus.jsonl"
    if corpus.exists():
        with open(corpus, encoding="utf-8") as handle:
            for i, line in enumerate(handle):
                if i >= n:
                    break
                entry = json.loads(line)
                (folder / f"{entry['_id']}.txt").write_text(f"{entry['title']}\n\n{entry['text']}\n", encoding="utf-8")
        return f"SciFact abstracts ({n} plain-text files)"
    import random

    rng = random.Random(0)
    words = "system policy network data report process team review budget server customer quality release".split()
    for i in range(n):
        paras = ["".join(" ".join(rng.choices(words, k=20)).capitalize() + ". " for _ in range(4)) for _ in range(3)]
        (folder / f"doc{i}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return f"synthetic paragraphs ({n} plain-text files)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="also ingest through Ray (1 and 2 parse workers); no value: a local cluster per run")
    parser.add_argument("--ray-workers", default="1,2", help="parse worker counts to measure with --ray")
    args = parser.parse_args()
    if args.ray:
        return ray_main(args)

    from index.settings import Settings
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from service.engine import Groundwork

    work = Path(tempfile.mkdtemp(prefix="gw-bench-ingest-"))
    label = write_corpus(work / "corpus", args.docs)
    settings = Settings(data_dir=work / "data", reranker_enabled=False)
    gw = Groundwork(settings)
    embedder = gw.embedder  # load the model outside the timed region
    gw.tokens

    from sentence_transformers import SentenceTransformer

    from ingest.runtime.resolve import resolve_model

    plain = SentenceTransformer(str(resolve_model(settings.embedding_model)), device="cpu")

    def plain_encode(texts: list[str]) -> float:
        t0 = time.perf_counter()
        plain.encode(texts, batch_size=64, normalize_embeddings=True)
        return time.perf_counter() - t0

    def ours_encode(texts: list[str]) -> float:
        t0 = time.perf_counter()
        embedder.embed_documents(texts)
        return time.perf_counter() - t0

    # The machine is shared and noisy: measure the baseline before and after the pipeline and
    # take medians, so the ratio compares like with like.
    warm = [f"warm-up sentence number {i}" for i in range(64)]
    plain.encode(warm, batch_size=64)
    t0 = time.perf_counter()
    summary = gw.ingest([work / "corpus"], progress=False)
    pipeline_s = time.perf_counter() - t0
    out = summary.to_json()
    chunks = out["chunks"]

    # The exact texts the pipeline embedded, re-derived from the stored chunks.
    from ingest.pipeline import embedding_text
    from sqlalchemy import select
    from sqlmodel import Session

    from index.models import Chunk, Document

    with Session(gw.engine) as session:
        rows = session.execute(select(Document.title, Chunk.heading_path, Chunk.context, Chunk.text, Document.context)
                               .join(Document, Document.id == Chunk.document_id)).all()
    texts = [embedding_text(t, h or [], c, x, gw.tokens, settings.chunk_prefix_tokens, d) for t, h, c, x, d in rows]
    plain_runs = [plain_encode(texts)]
    ours_runs = [ours_encode(texts)]
    plain_runs.append(plain_encode(texts))
    ours_runs.append(ours_encode(texts))
    plain_s, ours_s = median(plain_runs), median(ours_runs)

    print(f"machine: {machine()}")
    print(f"corpus: {label}; {out['added']} files added, {out['failed']} failed, {chunks} chunks")
    rows_out = [
        ["plain SentenceTransformer.encode (fp32, batch 64) [baseline]", "-", f"{len(texts) / plain_s:.1f}", "1.00"],
        ["our embedder alone (length-sorted token-budget batches)", "-", f"{len(texts) / ours_s:.1f}", f"{plain_s / ours_s:.2f}"],
        ["full pipeline (parse + chunk + embed + store)", f"{out['added'] / pipeline_s:.1f}", f"{chunks / pipeline_s:.1f}", f"{(chunks / pipeline_s) / (len(texts) / plain_s):.2f}"],
    ]
    print(table(rows_out, ["what", "files/s", "chunks/s", "x baseline"]))
    gw.close()


def ray_main(args) -> None:
    """docs/s of the single-process pipeline and of Ray with N parse workers, same corpus, same run."""
    from index.settings import Settings
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    from service.engine import Groundwork

    work = Path(tempfile.mkdtemp(prefix="gw-bench-ray-"))
    label = write_corpus(work / "corpus", args.docs)
    rows_out = []

    def run(name: str, ray_address: str | None, **overrides) -> float:
        settings = Settings(data_dir=work / name, reranker_enabled=False, **overrides)
        gw = Groundwork(settings)
        t0 = time.perf_counter()
        if ray_address:
            gw._ray(ray_address)  # cluster, actors, model and parsers started outside the timed job
        else:
            gw.embedder, gw.tokens
        startup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = gw.ingest([work / "corpus"], progress=False, ray_address=ray_address)
        job_s = time.perf_counter() - t0
        gw.close()
        out = summary.to_json()
        docs_s = out["added"] / job_s
        rows_out.append([name, f"{out['added']}", f"{out['chunks']}", f"{startup_s:.1f}", f"{job_s:.1f}", f"{docs_s:.1f}", docs_s])
        return docs_s

    baseline = run("single process [baseline]", None)
    for workers in (int(w) for w in args.ray_workers.split(",")):
        run(f"ray, {workers} parse worker(s) + 1 embed worker", args.ray, ray_parse_actors=workers, ray_embed_actors=1)
    print(f"machine: {machine()}")
    print(f"corpus: {label}; Ray at {args.ray}")
    for row in rows_out:
        row.append(f"{row.pop(6) / baseline:.2f}")
    print(table(rows_out, ["pipeline", "files", "chunks", "start-up s", "job s", "docs/s", "x baseline"]))


if __name__ == "__main__":
    main()
