"""FinanceBench retrieval, in process, for ranking variants over one ingest.

    python bench/qa_ranking.py --data-dir D [--parse-cache C] [--product DIR] [--k 5] [--json out.json]
                               [--variants 'default;{"document_boost_weight": 0.5};...'] [--answers]

bench/qa.py measures the product as deployed (HTTP, one configuration). Ranking work needs the
same metrics for many settings over one index: this ingests the question set's PDFs once into
``--data-dir`` (idempotent: a second run reuses it), then runs every question once per variant,
a variant being ``default`` or a JSON object of settings overrides applied to the running
service, and prints bench/qa.py's metrics for each (evidence page hit@5, evidence figures in the
top 5, same-document share) and the in-process search time past the query embedding (p50/p95
over the questions, from the search's own stage timings). Reranking is off: the metrics are
about first-stage retrieval.

Parsing the 41 filings is most of an ingest (hours on a busy 2-core machine), and a ranking change
does not change it: ``--parse-cache`` keeps each file's parse, keyed by the file's sha256 and the
product's parsing code, so another data dir or another checkout (``--product``: the same harness
over that checkout's code, e.g. main as the baseline) re-embeds without re-parsing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
# The checkout whose code is measured: this one, or --product's (then the harness re-runs itself
# there with this variable set).
PRODUCT = Path(os.environ.get("GROUNDWORK_QA_PRODUCT") or REPO).resolve()
sys.path.insert(0, str(PRODUCT))
# Files whose code decides what a parse returns; a change to any of them re-parses.
PARSER_FILES = ("documents.py", "filetypes.py", "offline.py", "parsing.py", "parser_pool.py", "pdf_layout.py", "tables.py",
                "ocr.py", "ocr_documents.py", "ocr_tesseract.py", "page_images.py", "safe_open.py")


def _qa():
    """bench/qa.py of this checkout, loaded by path: under --product, ``bench`` may be another's."""
    spec = importlib.util.spec_from_file_location("groundwork_bench_qa", HERE.parent / "qa.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def parser_fingerprint(product: Path) -> str:
    digest = hashlib.sha256()
    for name in PARSER_FILES:
        path = product / "ingest" / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class CachingParser:
    """The ingest's parser pool, answering from ``folder`` when it has the file's parse."""

    def __init__(self, settings, folder: Path, product: Path):
        self.settings, self.folder, self.code = settings, folder, parser_fingerprint(product)
        self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.__exit__(*exc)

    def _entry(self, path: Path) -> Path:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]
        return self.folder / f"{digest}-{self.code}.pickle"

    def imap_unordered(self, paths, **options):
        missing = []
        for path in paths:
            entry = self._entry(path)
            if entry.exists():
                yield path, _current(pickle.loads(entry.read_bytes()))
            else:
                missing.append(path)
        if not missing:
            return
        from ingest.parser_pool import ParserPool

        self.pool = ParserPool.from_settings(self.settings).__enter__()
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, outcome in self.pool.imap_unordered(missing, **options):
            entry = self._entry(path)
            entry.with_suffix(".tmp").write_bytes(pickle.dumps(outcome))
            os.replace(entry.with_suffix(".tmp"), entry)
            yield path, outcome


def _current(outcome):
    """A cached parse as today's class: fields added since (with defaults) take their default."""
    from dataclasses import fields, is_dataclass

    if is_dataclass(outcome):
        kind = type(outcome)
        return kind(**{f.name: getattr(outcome, f.name) for f in fields(kind) if hasattr(outcome, f.name)})
    return outcome


def run(args) -> dict:
    # The product's modules first: qa.py puts this checkout on the path when it loads.
    from index.settings import Settings
    from ingest.pipeline import IngestRunner
    from service.engine import Groundwork
    from service.query.types import Principal, Query

    qa = _qa()

    wanted = set(filter(None, args.docs.split(",")))
    questions = [q for q in qa.load_questions(args.data) if not wanted or q.doc_name in wanted]
    pdfs = sorted({args.data / "pdfs" / f"{q.doc_name}.pdf" for q in questions})
    settings = Settings(data_dir=args.data_dir, reranker_enabled=False, parse_timeout_s=args.parse_timeout)
    gw = Groundwork(settings)
    try:
        started = time.perf_counter()
        factory = (lambda: CachingParser(settings, args.parse_cache, PRODUCT)) if args.parse_cache else None
        runner = IngestRunner(settings, gw.store, gw.embedder, gw.tokens, parser_factory=factory, progress=False)
        summary = runner.run(pdfs).to_json()
        print(f"{len(questions)} questions over {len(pdfs)} PDFs; ingest {time.perf_counter() - started:.0f}s: "
              + ", ".join(f"{s} {summary[s]}" for s in ("added", "updated", "unchanged", "failed")), flush=True)
        # The engine catches up once for this fixed corpus; a checkout from before fixed_corpus
        # catches up before its first search instead (auto_refresh).
        fixed = gw.fixed_corpus() if hasattr(gw, "fixed_corpus") else contextlib.nullcontext()
        everyone = Principal(id="qa-ranking", all_access=True)
        report: dict = {}
        with fixed:
            for variant in [v.strip() for v in args.variants.split(";") if v.strip()]:
                overrides = json.loads(variant) if variant != "default" else {}
                saved = {key: getattr(gw.settings, key) for key in overrides}
                try:
                    for key, value in overrides.items():
                        setattr(gw.settings, key, value)
                    _rebuild_generators(gw)  # a generator reads its settings when it is built
                    outcomes = []
                    search_ms: list[float] = []
                    for question in questions:
                        found = gw.pipeline.search(Query(question.question, everyone, k=args.k, rerank=False))
                        # Search time past the query embedding (the model's share is the same for every variant).
                        timings = found.timings_ms
                        search_ms.append(sum(timings.values()) - timings.get("embed_query", 0.0))
                        answer = None
                        if args.answers:  # the answer route's own search (its k), then the generator
                            answer = gw.pipeline.answer(Query(question.question, everyone, rerank=False))[0].text
                        # The passage as served: a table window when the hit has one (checkouts before
                        # windows have only the chunk).
                        outcomes.append(qa.Outcome([qa.Passage(Path(h.source).stem, getattr(h, "passage_pages", h.pages),
                                                               getattr(h, "passage", h.text), h.score, h.chunk_id)
                                                    for h in found.hits], answer))
                finally:
                    for key, value in saved.items():
                        setattr(gw.settings, key, value)
                    _rebuild_generators(gw)
                scores = [qa.score(q, o) for q, o in zip(questions, outcomes)]
                overall = qa.summarise(questions, scores)["overall"]
                report[variant] = {
                    "summary": qa.summarise(questions, scores),
                    "questions": [{"id": q.qid, "doc": q.doc_name, "question": q.question, "reference": q.answer, **s,
                                   "answer": o.answer, "top": [[p.doc_name, p.pages, p.text[:200]] for p in o.passages]}
                                  for q, s, o in zip(questions, scores, outcomes)],
                }
                answered = (f"  answer figure {overall['answer_figure_hit'][0]:.3f}"
                            if args.answers and overall["answer_figure_hit"][0] is not None else "")
                print(f"{variant:<72} page hit@{args.k} {overall['evidence_page_hit'][0]:.3f}  figures {overall['figure_recall'][0]:.3f}"
                      f"  same document {overall['same_doc_share'][0]:.3f}{answered}"
                      f"  search p50/p95 {qa.percentile(search_ms, 0.5):.1f}/{qa.percentile(search_ms, 0.95):.1f} ms", flush=True)
        return report
    finally:
        gw.close()


def _rebuild_generators(gw) -> None:
    """Forget the engine's generators, so the next answer builds them from the settings as
    they are now (the engine builds each once, on first use)."""
    if hasattr(gw, "_generator"):
        gw._generator = None
    gw.__dict__.pop("extractive_generator", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="the product's data dir (kept: later runs reuse its ingest)")
    parser.add_argument("--parse-cache", type=Path, help="keep each PDF's parse here, keyed by file and parser code")
    parser.add_argument("--product", type=Path, help="measure this checkout's code instead (e.g. main, as the baseline)")
    parser.add_argument("--variants", default="default", help="';'-separated: default, or a JSON object of settings overrides")
    parser.add_argument("--docs", default="", help="only the questions on these documents (comma-separated names)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--answers", action="store_true", help="also answer each question (the configured generator) and "
                        "report the share of answers holding a reference figure")
    parser.add_argument("--parse-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, help="per-question details")
    parser.add_argument("--data", type=Path, default=None, help="the FinanceBench folder (default: the shared data's)")
    args = parser.parse_args()
    if args.product is not None and Path(args.product).resolve() != PRODUCT:
        # The same harness over another checkout's code: its modules first on the path.
        product = Path(args.product).resolve()
        argv = [a for a in sys.argv[1:]]
        at = argv.index("--product")
        del argv[at : at + 2]
        env = {**os.environ, "PYTHONPATH": str(product), "GROUNDWORK_QA_PRODUCT": str(product),
               "GROUNDWORK_SHARED_DATA": str(_shared_data())}
        raise SystemExit(subprocess.call([sys.executable, str(HERE), *argv], cwd=product, env=env))
    args.data = args.data or _shared_data() / "financebench"
    if not (args.data / "financebench_open_source.subset_with_pdfs.jsonl").is_file():
        print(f"{args.data} not found (the shared data folder is optional; nothing to measure)")
        return
    print(f"product {PRODUCT} @ {_commit(PRODUCT)}, data dir {args.data_dir}", flush=True)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


def _shared_data() -> Path:
    return Path(os.environ.get("GROUNDWORK_SHARED_DATA") or REPO / ".." / "shared" / "data").resolve()


def _commit(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"


if __name__ == "__main__":
    main()
