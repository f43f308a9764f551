"""Retrieval over real company filings: FinanceBench through the product, beside a plain pipeline.

    python bench/qa.py [--limit N] [--docs A,B|@file] [--max-pages N] [--json out.json] [--fresh] [--data-dir D] [--product DIR]

The product ingests the question set's PDFs with `groundwork ingest` into a data dir cached under
``--cache-dir`` (keyed by a fingerprint of the product's ingest/ and index/ code and GROUNDWORK_*
settings, so a parser change re-ingests and an unchanged product reuses its index), is served by
`groundwork serve` with an API key, and every question goes through ``POST /v1/search`` (k=5) and
``POST /v1/answer``. In the same run a plain tutorial pipeline is measured on the same PDFs:
pypdf page text, 1,000-character chunks with 200 overlap, BM25 (bm25s) + all-MiniLM-L6-v2 (the
product's embedder, offline) fused by RRF (k=60), top 5. Its chunks and embeddings are cached too.

Per question type and overall:
  a) evidence page hit@5: a top-5 passage comes from an annotated evidence page (doc + page),
  b) evidence figures: share of the evidence texts' figures found in the top-5 passages' text,
  c) same document: share of top-5 passages from the question's document,
  d) answer figure: share of answers containing a figure of the reference answer (product only).
A "figure" is a number with 3+ digits (for d, 2+), normalised: $ , ( ) % stripped, trailing
decimal zeros dropped ("$1577.00" == "(1,577)"); bare years (1900-2099) are not figures.
``--product DIR`` measures another checkout's product (e.g. main) with this harness.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, SHARED_DATA, machine, percentile, table  # noqa: E402
from ingest.runtime.offline import OFFLINE_ENVIRONMENT  # noqa: E402

FINANCEBENCH = SHARED_DATA / "financebench"
QUESTIONS_FILE = "financebench_open_source.subset_with_pdfs.jsonl"
DEFAULT_CACHE = Path(os.environ.get("GROUNDWORK_BENCH_CACHE") or Path.home() / ".cache" / "groundwork-bench")
TOP_K = 5

BASELINE_CHUNK_CHARS = 1000
BASELINE_OVERLAP_CHARS = 200
BASELINE_CANDIDATES = 100
RRF_K = 60

# --- figures -------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])\(?\$?\s?\d[\d,]*(?:\.\d+)?\)?%?")
_YEAR = re.compile(r"(19|20)\d\d")


def normalise_figure(raw: str) -> str:
    """``$ (1,577.00)%`` -> ``1577``: currency, grouping, sign brackets and trailing zeros dropped."""
    value = re.sub(r"[$,()%\s]", "", raw)
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


def figures(text: str, min_digits: int = 3) -> set[str]:
    """The normalised figures of ``text`` with at least ``min_digits`` digits; bare years excluded."""
    found = set()
    for match in _NUMBER.finditer(text):
        raw = match.group().strip()
        value = normalise_figure(raw)
        digits = sum(c.isdigit() for c in value)
        if digits < min_digits:
            continue
        if _YEAR.fullmatch(value) and "," not in raw and "$" not in raw:
            continue
        found.add(value)
    return found


# --- questions and metrics -----------------------------------------------------------------------


@dataclass
class Question:
    qid: str
    kind: str
    doc_name: str
    question: str
    answer: str
    evidence_pages: set[tuple[str, int]]  # (doc_name, 1-based page)
    evidence_figures: set[str]
    answer_figures: set[str]


def load_questions(folder: Path, limit: int | None = None) -> list[Question]:
    questions = []
    with (folder / QUESTIONS_FILE).open(encoding="utf-8") as stream:
        for line in stream:
            if not line.strip():
                continue
            row = json.loads(line)
            pages, evidence_figures = set(), set()
            for evidence in row["evidence"]:
                doc = evidence.get("doc_name") or evidence.get("evidence_doc_name") or row["doc_name"]
                pages.add((doc, int(evidence["evidence_page_num"]) + 1))  # 0-based in the data set
                evidence_figures |= figures(evidence["evidence_text"])
            questions.append(Question(
                row["financebench_id"], row["question_type"], row["doc_name"], row["question"], row["answer"],
                pages, evidence_figures, figures(row["answer"], min_digits=2),
            ))
    return questions[:limit] if limit else questions


@dataclass
class Passage:
    doc_name: str
    pages: list[int]
    text: str
    score: float
    chunk_id: int | str


@dataclass
class Outcome:
    passages: list[Passage]
    answer: str | None = None
    provenance: dict = field(default_factory=dict)


def score(question: Question, outcome: Outcome) -> dict:
    """The four metrics for one question (None where a metric does not apply)."""
    top = outcome.passages[:TOP_K]
    hit = any((p.doc_name, page) in question.evidence_pages for p in top for page in p.pages)
    passage_figures = set().union(*(figures(p.text) for p in top)) if top else set()
    found = question.evidence_figures & passage_figures
    same_doc = sum(p.doc_name == question.doc_name for p in top) / TOP_K
    answer_hit = None
    if outcome.answer is not None and question.answer_figures:
        answer_hit = bool(question.answer_figures & figures(outcome.answer, min_digits=2))
    return {
        "evidence_page_hit": hit,
        "figure_recall": len(found) / len(question.evidence_figures) if question.evidence_figures else None,
        "figures_found": sorted(found),
        "figures_missing": sorted(question.evidence_figures - found),
        "same_doc_share": same_doc,
        "answer_figure_hit": answer_hit,
    }


METRICS = ("evidence_page_hit", "figure_recall", "same_doc_share", "answer_figure_hit")


def summarise(questions: list[Question], scores: list[dict]) -> dict[str, dict[str, tuple[float | None, int]]]:
    """Mean of each metric per question type and overall, with how many questions it covers."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for question, s in zip(questions, scores):
        groups[question.kind].append(s)
        groups["overall"].append(s)
    summary = {}
    for name, rows in groups.items():
        summary[name] = {}
        for metric in METRICS:
            values = [float(r[metric]) for r in rows if r[metric] is not None]
            summary[name][metric] = (sum(values) / len(values) if values else None, len(values))
    return summary


# --- the product, over HTTP ----------------------------------------------------------------------


def product_fingerprint(root: Path) -> str:
    """What the product's index depends on: its ingest/ and index/ code and the GROUNDWORK_* settings."""
    digest = hashlib.sha256()
    for folder in ("ingest", "index"):
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    for key in sorted(os.environ):
        if key.startswith("GROUNDWORK_") and key not in ("GROUNDWORK_DATA_DIR", "GROUNDWORK_SHARED_DATA", "GROUNDWORK_BENCH_CACHE"):
            digest.update(f"{key}={os.environ[key]}".encode())
    return digest.hexdigest()[:12]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Product:
    """`groundwork` run from ``root`` as subprocesses against ``data_dir``."""

    def __init__(self, root: Path, data_dir: Path, parse_timeout_s: float):
        self.root = root
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "GROUNDWORK_DATA_DIR": str(data_dir),
            "GROUNDWORK_RATE_LIMIT_PER_MINUTE": "0",
            "GROUNDWORK_PARSE_TIMEOUT_S": str(parse_timeout_s),
            **OFFLINE_ENVIRONMENT,
        }

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=self.root, env=self.env, text=True, **kw)

    def ingest(self, paths: list[Path]) -> dict:
        completed = self.cli("ingest", *map(str, paths), "--json", "--no-progress", capture_output=True)
        if completed.returncode != 0:
            raise SystemExit(f"groundwork ingest failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        return json.loads(completed.stdout)

    def serve_and_ask(self, questions: list[Question], k: int) -> list[Outcome]:
        import httpx

        created = self.cli("keys", "create", "--role", "reader", "--group", "*", "--name", "qa-bench", capture_output=True, check=True)
        key = created.stdout.strip().splitlines()[-1]
        port = _free_port()
        log_path = self.data_dir / "qa-serve.log"
        with log_path.open("w") as log:
            server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], cwd=self.root,
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 600
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"groundwork serve exited ({server.returncode}); see {log_path}")
                try:
                    if httpx.get(base + "/v1/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise SystemExit(f"groundwork serve did not come up; see {log_path}")
                time.sleep(1)
            outcomes = []
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:
                pages_of: dict[int, list[int]] = {}
                for question in questions:
                    found = _post(http, "/v1/search", {"query": question.question, "k": k})
                    passages = []
                    for result in found["results"]:
                        chunk_id = result["chunk_id"]
                        if chunk_id not in pages_of:  # a result names only its first page
                            response = http.get(f"/v1/chunks/{chunk_id}")
                            response.raise_for_status()
                            pages_of[chunk_id] = response.json()["pages"]
                        # The passage as served: the table window around the chunk when it has one.
                        window = result.get("window")
                        pages, text = (window["pages"], window["text"]) if window else (pages_of[chunk_id], result["text"])
                        passages.append(Passage(Path(result["source"]).stem, pages, text, result["score"], chunk_id))
                    answered = _post(http, "/v1/answer", {"query": question.question})
                    outcomes.append(Outcome(passages, answered["answer"], found.get("provenance", {})))
            return outcomes
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            self.cli("keys", "revoke", key.split("_")[1], capture_output=True)


def _post(http, route: str, body: dict) -> dict:
    response = http.post(route, json=body)
    if response.status_code != 200:
        raise SystemExit(f"{route} answered {response.status_code}: {response.text[:500]}")
    return response.json()


# --- the plain baseline --------------------------------------------------------------------------


def window_chunks(text: str, size: int = BASELINE_CHUNK_CHARS, overlap: int = BASELINE_OVERLAP_CHARS) -> list[str]:
    """Fixed windows of at most ``size`` characters, ``overlap`` repeated, ends snapped to spaces.

    What tutorial pipelines do with a character splitter: cut where a window is full, back up to
    the last whitespace in its second half, start the next window ``overlap`` characters earlier.
    """
    text = text.strip()
    chunks = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            space = max(space, text.rfind("\n", start + size // 2, end))
            if space > start:
                end = space
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        following = max(end - overlap, start + 1)
        space = text.find(" ", following, end)
        start = space + 1 if 0 <= space < end - 1 else following
    return chunks


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Baseline:
    """pypdf pages -> character windows -> BM25 + MiniLM -> RRF; chunks and vectors cached."""

    def __init__(self, pdfs: list[Path], cache_dir: Path, fresh: bool):
        import numpy as np
        import pypdf

        from index.settings import Settings
        from ingest.embedder_st import SentenceTransformerEmbedder

        settings = Settings(data_dir=cache_dir)
        self.embedder = SentenceTransformerEmbedder.from_settings(settings)
        key = hashlib.sha256(json.dumps([
            sorted(_sha256(p) for p in pdfs), BASELINE_CHUNK_CHARS, BASELINE_OVERLAP_CHARS, pypdf.__version__,
            self.embedder.fingerprint,
        ]).encode()).hexdigest()[:12]
        meta_path, vectors_path = cache_dir / f"baseline-{key}.json", cache_dir / f"baseline-{key}.npy"
        if fresh:
            meta_path.unlink(missing_ok=True)
            vectors_path.unlink(missing_ok=True)
        if meta_path.exists() and vectors_path.exists():
            self.chunks = [Passage(c["doc"], [c["page"]], c["text"], 0.0, n) for n, c in enumerate(json.loads(meta_path.read_text()))]
            self.vectors = np.load(vectors_path)
        else:
            self.chunks = []
            for pdf in pdfs:
                reader = pypdf.PdfReader(str(pdf))
                for number, page in enumerate(reader.pages, 1):
                    try:
                        text = page.extract_text() or ""
                    except Exception:  # a page pypdf cannot read is simply missing, as in the tutorials
                        text = ""
                    for piece in window_chunks(text):
                        self.chunks.append(Passage(pdf.stem, [number], piece, 0.0, len(self.chunks)))
            self.vectors = self.embedder.embed_documents([c.text for c in self.chunks]).astype(np.float32)
            cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(vectors_path, self.vectors)
            meta_path.write_text(json.dumps([{"doc": c.doc_name, "page": c.pages[0], "text": c.text} for c in self.chunks]))
        import bm25s
        import Stemmer

        self.stemmer = Stemmer.Stemmer("english")
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize([c.text for c in self.chunks], stopwords="en", stemmer=self.stemmer, show_progress=False),
                        show_progress=False)

    def search(self, query: str, k: int) -> list[Passage]:
        import bm25s
        import numpy as np

        depth = min(BASELINE_CANDIDATES, len(self.chunks))
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, show_progress=False)
        keyword_ids, _ = self.bm25.retrieve(tokens, k=depth, show_progress=False)
        similarities = self.vectors @ self.embedder.embed_queries([query])[0]
        dense_ids = np.argsort(-similarities)[:depth]
        fused: dict[int, float] = defaultdict(float)
        for ranking in (keyword_ids[0], dense_ids):
            for rank, chunk in enumerate(ranking, 1):
                fused[int(chunk)] += 1.0 / (RRF_K + rank)
        best = sorted(fused, key=lambda c: -fused[c])[:k]
        return [Passage(self.chunks[c].doc_name, self.chunks[c].pages, self.chunks[c].text, fused[c], c) for c in best]


# --- report --------------------------------------------------------------------------------------


def _cell(value: tuple[float | None, int]) -> str:
    mean, n = value
    return "n/a" if mean is None else f"{mean:.3f}"


def report(questions: list[Question], results: dict[str, list[dict]]) -> str:
    kinds = sorted({q.kind for q in questions}) + ["overall"]
    rows = []
    summaries = {system: summarise(questions, scores) for system, scores in results.items()}
    for kind in kinds:
        for system, summary in summaries.items():
            if kind not in summary:
                continue
            s = summary[kind]
            rows.append([kind, system, s["evidence_page_hit"][1], _cell(s["evidence_page_hit"]),
                         f"{_cell(s['figure_recall'])} ({s['figure_recall'][1]})", _cell(s["same_doc_share"]),
                         f"{_cell(s['answer_figure_hit'])} ({s['answer_figure_hit'][1]})"])
    return table(rows, ["question type", "system", "n", "a) evidence page hit@5", "b) evidence figures (n)",
                        "c) same-document share", "d) answer has figure (n)"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=FINANCEBENCH, help="the FinanceBench folder (pdfs/ and the questions)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions (their documents only)")
    parser.add_argument("--docs", default="", help="only the questions on these documents (comma-separated names, or @file)")
    parser.add_argument("--max-pages", type=int, default=0,
                        help="only the questions on documents of at most N pages (a subset a busy machine ingests in minutes)")
    parser.add_argument("--json", type=Path, help="write per-question details here")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="product data dirs and baseline vectors (GROUNDWORK_BENCH_CACHE)")
    parser.add_argument("--data-dir", type=Path, help="the product's data dir (default: <cache-dir>/product-<code fingerprint>)")
    parser.add_argument("--fresh", action="store_true", help="drop the cached product data dir and baseline first")
    parser.add_argument("--product", type=Path, default=REPO, help="checkout whose product is measured (default: this one)")
    parser.add_argument("--parse-timeout", type=float, default=3600.0,
                        help="per-file parse limit for the ingest (a shared machine must not turn quality into timeouts)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-product", action="store_true")
    args = parser.parse_args()
    if not (args.data / QUESTIONS_FILE).is_file():
        print(f"{args.data} not found (the shared data folder is optional; nothing to measure)")
        return

    questions = load_questions(args.data, args.limit or None)
    docs = Path(args.docs[1:]).read_text() if args.docs.startswith("@") else args.docs
    wanted = {name.strip() for name in docs.split(",") if name.strip()}
    if wanted:
        questions = [q for q in questions if q.doc_name in wanted]
    if args.max_pages:
        import pypdf

        pages = {name: len(pypdf.PdfReader(args.data / "pdfs" / f"{name}.pdf").pages) for name in {q.doc_name for q in questions}}
        questions = [q for q in questions if pages[q.doc_name] <= args.max_pages]
    pdfs = sorted({args.data / "pdfs" / f"{q.doc_name}.pdf" for q in questions})
    missing = [p.name for p in pdfs if not p.is_file()]
    if missing:
        raise SystemExit(f"missing PDFs: {missing}")
    product_root = args.product.resolve()
    commit = subprocess.run(["git", "-C", str(product_root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    data_dir = args.data_dir or args.cache_dir / f"product-{product_fingerprint(product_root)}"
    print(f"machine: {machine()}")
    print(f"{len(questions)} questions over {len(pdfs)} PDFs; product {product_root} @ {commit or '?'}, data dir {data_dir}")

    outcomes: dict[str, list[Outcome]] = {}
    details: dict = {"questions": [], "product": {"root": str(product_root), "commit": commit, "data_dir": str(data_dir)}}
    if not args.skip_product:
        if args.fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        product = Product(product_root, data_dir, args.parse_timeout)
        started = time.perf_counter()
        summary = product.ingest(pdfs)
        failed = [f for f in summary["files"] if f["status"] == "failed"]
        print(f"ingest: {', '.join(f'{s} {summary[s]}' for s in ('added', 'updated', 'unchanged', 'failed'))} "
              f"in {time.perf_counter() - started:.0f}s; {sum(f.get('chunks') or 0 for f in summary['files'])} chunks")
        for f in failed:
            print(f"  failed: {Path(f['path']).name}: {f['reason']}")
        details["product"]["ingest"] = summary
        started = time.perf_counter()
        outcomes["product"] = product.serve_and_ask(questions, TOP_K)
        print(f"product: {len(questions)} searches + answers in {time.perf_counter() - started:.0f}s")
    if not args.skip_baseline:
        started = time.perf_counter()
        baseline = Baseline(pdfs, args.cache_dir, args.fresh)
        print(f"baseline: {len(baseline.chunks)} chunks ready in {time.perf_counter() - started:.0f}s")
        outcomes["baseline"] = [Outcome(baseline.search(q.question, TOP_K)) for q in questions]

    results = {system: [score(q, o) for q, o in zip(questions, got)] for system, got in outcomes.items()}
    print()
    print(report(questions, results))
    print("\na) a top-5 passage from an annotated evidence page; b) share of the evidence's figures (3+ digits) in the "
          "top-5 text; c) top-5 passages from the question's document; d) /v1/answer text holds a figure of the "
          "reference answer (baseline: no generator, n/a).")
    if outcomes.get("product"):
        configured = sorted({f"fusion {o.provenance.get('fusion')}, reranker {o.provenance.get('reranker_status')}, "
                             f"reranked {o.provenance.get('reranked')}" for o in outcomes["product"]})
        print("product retrieval as configured: " + "; ".join(configured))
    if args.json:
        for n, question in enumerate(questions):
            row = {"id": question.qid, "type": question.kind, "doc": question.doc_name, "question": question.question,
                   "answer": question.answer, "evidence_pages": sorted(question.evidence_pages),
                   "evidence_figures": sorted(question.evidence_figures)}
            for system, got in outcomes.items():
                outcome = got[n]
                row[system] = {
                    **results[system][n],
                    "answer_text": outcome.answer,
                    "provenance": outcome.provenance,
                    "top": [{"doc": p.doc_name, "pages": p.pages, "score": p.score, "chunk": p.chunk_id, "text": p.text}
                            for p in outcome.passages],
                }
            details["questions"].append(row)
        details["summary"] = {system: summarise(questions, scores) for system, scores in results.items()}
        args.json.write_text(json.dumps(details, indent=1, default=str))
        print(f"details in {args.json}")


if __name__ == "__main__":
    main()
