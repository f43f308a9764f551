"""Ingestion throughput: the whole `groundwork ingest` command against plain
`SentenceTransformer.encode` over the very same chunk texts, both model load included, in the
same run, alternating, medians of rounds; and where the command's seconds go (its "stages").

    python bench/ingest.py [--docs 1000] [--rounds 3] [--compare OTHER_CHECKOUT]
    python bench/ingest.py --ray [ADDRESS] [--docs 400] [--ray-workers 1,2]

With ``--ray``: the single-process pipeline, then the same job through Ray with 1 and with 2
parse workers (one embed worker), each into a fresh data directory, in the same run. Without
an ADDRESS each Ray run starts a private local cluster; start-up (cluster, model load, parser
start) is timed apart from the job.

Corpus: SciFact abstracts written out as plain-text files (when the shared data is present),
otherwise generated paragraphs (labelled synthetic). Target (issue #15): the command at
>= 2.0x plain encode. Each round ingests into a fresh data folder, in a fresh process, as a
user would; the baseline is a fresh process that loads the model and encodes the texts.
``--compare`` also runs the command from another checkout (an earlier commit) in every round.
CPU seconds (the process and its parser workers) are printed beside wall seconds: on a shared
machine they move less with other people's load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def environment(data_dir: Path, repo: Path = REPO) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo)
    env["GROUNDWORK_DATA_DIR"] = str(data_dir)
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, stdout)."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} ... failed (exit code {done.returncode}):\n{done.stderr[-4000:]}")
    return time.perf_counter() - started, children_cpu() - cpu, done.stdout


def run_command(corpus: Path, data_dir: Path, repo: Path = REPO) -> tuple[float, float, dict]:
    """One `groundwork ingest --json` into a fresh data folder: wall and CPU seconds, and its summary."""
    wall, cpu, out = timed([sys.executable, "-X", "faulthandler", "-m", "service.cli", "ingest", str(corpus), "--json"], environment(data_dir, repo), repo)
    return wall, cpu, json.loads(out)


def run_plain(texts_file: Path, data_dir: Path) -> tuple[float, float]:
    wall, cpu, _ = timed([sys.executable, "-c", PLAIN_ENCODE, str(texts_file)], environment(data_dir), REPO)
    return wall, cpu


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
    parser.add_argument("--compare", type=Path, help="another checkout whose command also runs in every round")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="instead: ingest through Ray (1 and 2 parse workers) beside the single-process path; "
                             "no value: a local cluster per run")
    parser.add_argument("--ray-workers", default="1,2", help="parse worker counts to measure with --ray")
    args = parser.parse_args()
    if args.ray:
        return ray_main(args)

    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    work = Path(tempfile.mkdtemp(prefix="gw-bench-ingest-"))
    label = write_corpus(work / "corpus", args.docs)

    # A first, untimed ingest exports the model if needed and gives the texts for the baseline.
    _wall, _cpu, summary = run_command(work / "corpus", work / "data-warm")
    texts = chunk_texts(work / "data-warm")
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts))
    run_plain(texts_file, work / "data-plain")  # warm the file cache for the baseline too

    # The machine is shared and noisy: alternate, every round, and compare medians.
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "command": [], "compare": []}
    stage_runs: list[dict] = []
    for round_number in range(args.rounds):
        wall, cpu, summary = run_command(work / "corpus", work / f"data-{round_number}")
        runs["command"].append((wall, cpu))
        stage_runs.append(summary["stages"] | {"job (from the job's start to its end)": summary["seconds"]})
        runs["plain"].append(run_plain(texts_file, work / "data-plain"))
        if args.compare:
            wall, cpu, _ = run_command(work / "corpus", work / f"data-compare-{round_number}", args.compare.resolve())
            runs["compare"].append((wall, cpu))
    chunks = summary["chunks"]
    plain_wall, plain_cpu = median([w for w, _ in runs["plain"]]), median([c for _, c in runs["plain"]])

    def row(what: str, key: str) -> list[str]:
        wall, cpu = median([w for w, _ in runs[key]]), median([c for _, c in runs[key]])
        return [what, f"{args.docs / wall:.1f}", f"{chunks / wall:.1f}", f"{plain_wall / wall:.2f}", f"{plain_cpu / cpu:.2f}",
                " ".join(f"{w:.1f}/{c:.1f}" for w, c in runs[key])]

    print(f"machine: {machine()}")
    print(f"corpus: {label}; {summary['added']} files added, {summary['failed']} failed, {chunks} chunks; {args.rounds} rounds")
    rows = [row("plain SentenceTransformer.encode (fp32, batch 64), model load included [baseline]", "plain"),
            row("`groundwork ingest --json` (parse + chunk + embed + store + index), model load included", "command")]
    if args.compare:
        rows.append(row(f"the same command from {args.compare}", "compare"))
    print(table(rows, ["what", "files/s", "chunks/s", "x baseline (wall)", "x baseline (CPU)", "wall/CPU seconds per round"]))
    print("where the command's seconds go (median of rounds; embed runs beside parse, chunk and store):")
    print(table([[name, f"{median([r[name] for r in stage_runs]):.2f}"] for name in stage_runs[0]]
                + [["whole command (process start, imports, model load included)", f"{median([w for w, _ in runs['command']]):.2f}"]],
                ["stage", "seconds"]))


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
