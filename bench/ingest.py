"""Ingestion throughput: the whole `groundwork ingest` command against plain
`SentenceTransformer.encode` over the very same chunk texts, both model load included, in the
same run, alternating, medians of rounds; and where the command's seconds go (its "stages").

    python bench/ingest.py [--docs 1000] [--rounds 3]

Corpus: SciFact abstracts written out as plain-text files (when the shared data is present),
otherwise generated paragraphs (labelled synthetic). Target (issue #15): the command at
>= 2.0x plain encode. Each round ingests into a fresh data folder, in a fresh process, as a
user would; the baseline is a fresh process that loads the model and encodes the texts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, SCIFACT, machine, median, table  # noqa: E402

PLAIN_ENCODE = """
import json, sys
from sentence_transformers import SentenceTransformer
from index.settings import Settings
from ingest.runtime.resolve import resolve_model
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(str(resolve_model(Settings().embedding_model)), device="cpu")
model.encode(texts, batch_size=64, normalize_embeddings=True)
"""


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


def environment(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["GROUNDWORK_DATA_DIR"] = str(data_dir)
    return env


def run_command(corpus: Path, data_dir: Path) -> tuple[float, dict]:
    """Wall seconds of one `groundwork ingest --json` into a fresh data folder, and its summary."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service.cli", "ingest", str(corpus), "--json"], env=environment(data_dir),
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def run_plain(texts_file: Path, data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PLAIN_ENCODE, str(texts_file)], env=environment(data_dir), check=True, capture_output=True)
    return time.perf_counter() - started


def chunk_texts(data_dir: Path) -> list[str]:
    """The exact texts the pipeline embedded, re-derived from the stored chunks."""
    from sqlalchemy import select
    from sqlmodel import Session

    from index.models import Chunk, Document
    from index.settings import Settings
    from ingest.pipeline import embedding_text
    from service.engine import Groundwork

    settings = Settings(data_dir=data_dir, reranker_enabled=False)
    gw = Groundwork(settings)
    try:
        with Session(gw.engine) as session:
            rows = session.execute(select(Document.title, Chunk.heading_path, Chunk.context, Chunk.text, Document.context)
                                   .join(Document, Document.id == Chunk.document_id)).all()
        return [embedding_text(t, h or [], c, x, gw.tokens, settings.chunk_prefix_tokens, d) for t, h, c, x, d in rows]
    finally:
        gw.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    work = Path(tempfile.mkdtemp(prefix="gw-bench-ingest-"))
    label = write_corpus(work / "corpus", args.docs)

    # A first, untimed ingest exports the model if needed and gives the texts for the baseline.
    _seconds, summary = run_command(work / "corpus", work / "data-warm")
    texts = chunk_texts(work / "data-warm")
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts))
    run_plain(texts_file, work / "data-plain")  # warm the file cache for the baseline too

    # The machine is shared and noisy: alternate the two, every round, and compare medians.
    command_runs: list[float] = []
    plain_runs: list[float] = []
    stage_runs: list[dict] = []
    for round_number in range(args.rounds):
        seconds, summary = run_command(work / "corpus", work / f"data-{round_number}")
        command_runs.append(seconds)
        stage_runs.append(summary["stages"] | {"job": summary["seconds"]})
        plain_runs.append(run_plain(texts_file, work / "data-plain"))
    command_s, plain_s = median(command_runs), median(plain_runs)
    chunks = summary["chunks"]

    print(f"machine: {machine()}")
    print(f"corpus: {label}; {summary['added']} files added, {summary['failed']} failed, {chunks} chunks; {args.rounds} rounds")
    rows = [
        ["plain SentenceTransformer.encode (fp32, batch 64), model load included [baseline]", f"{args.docs / plain_s:.1f}",
         f"{len(texts) / plain_s:.1f}", "1.00", " ".join(f"{s:.1f}" for s in plain_runs)],
        ["`groundwork ingest --json` (parse + chunk + embed + store + index), model load included", f"{args.docs / command_s:.1f}",
         f"{chunks / command_s:.1f}", f"{plain_s / command_s:.2f}", " ".join(f"{s:.1f}" for s in command_runs)],
    ]
    print(table(rows, ["what", "files/s", "chunks/s", "x baseline", "seconds per round"]))
    stage_names = list(stage_runs[0])
    print("where the command's seconds go (median of rounds; embed runs beside parse, chunk and store):")
    print(table([[name, f"{median([r[name] for r in stage_runs]):.2f}"] for name in stage_names]
                + [["whole command (process start, imports, model load included)", f"{command_s:.2f}"]], ["stage", "seconds"]))


if __name__ == "__main__":
    main()
