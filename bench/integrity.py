"""What checking costs: opening a SciFact-size keyword index with its file digests verified,
and SQLite's quick_check on a SciFact-size database.

    python bench/integrity.py [--rounds 5] [--words-per-chunk 90]

Keyword open: full re-hash of every engine file (the default up to
keyword_full_check_max_bytes) vs the size+mtime fast path vs no check at all (the same-run
baseline). Database: PRAGMA quick_check vs reading the file once sequentially (baseline).
Vectors are random (their values do not change the cost), chunk texts are SciFact's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SCIFACT, machine, median  # noqa: E402
from index.db import check_integrity, open_database  # noqa: E402
from index.keyword import KeywordDoc, read_manifest  # noqa: E402
from index.keyword_tantivy import TantivyKeywordIndex  # noqa: E402
from index.settings import Settings  # noqa: E402
from index.store import DocumentWrite, NewChunk, Store  # noqa: E402


def scifact_chunks(words_per_chunk: int) -> list[tuple[int, str, list[str]]]:
    """(document number, full text, chunk texts) per abstract."""
    out = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            row = json.loads(line)
            text = f"{row.get('title', '')}\n{row['text']}"
            words = text.split()
            out.append((number, text, [" ".join(words[i:i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]))
    return out


def timed(call, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return median(samples)


def keyword_open(root: Path, corpus, rounds: int) -> None:
    import index.keyword_tantivy as keyword_tantivy

    path = root / "keyword"
    index = TantivyKeywordIndex(path)
    chunk_id = 0
    docs = []
    for number, _text, chunks in corpus:
        for chunk in chunks:
            chunk_id += 1
            docs.append(KeywordDoc(chunk_id, number, chunk))
    index.upsert(docs)
    index.commit(1)
    index.close()
    files = read_manifest(path).files
    size = sum(d.size for d in files.values())
    print(f"keyword index: {chunk_id} chunks, {len(files)} files, {size / 1e6:.1f} MB")

    def opened(**kw):
        TantivyKeywordIndex(path, **kw).close()

    real = keyword_tantivy.check_committed_files
    for round_ in range(3):
        full = timed(lambda: opened(full_check_max_bytes=None), rounds)
        fast = timed(lambda: opened(full_check_max_bytes=0), rounds)
        keyword_tantivy.check_committed_files = lambda *a, **k: []
        try:
            none = timed(opened, rounds)
        finally:
            keyword_tantivy.check_committed_files = real
        print(f"  round {round_}: open, median of {rounds}: full re-hash {full * 1e3:.1f} ms, "
              f"size+mtime {fast * 1e3:.1f} ms, no check (baseline) {none * 1e3:.1f} ms")


def database_check(root: Path, corpus, rounds: int) -> None:
    settings = Settings(data_dir=root / "db")
    engine = open_database(settings)
    store = Store(engine)
    rng = np.random.default_rng(0)
    chunks = 0
    for number, text, pieces in corpus:
        vectors = rng.normal(size=(len(pieces), 384)).astype(np.float32)
        new = [NewChunk(i, piece, len(piece.split()), 0, len(piece), [], []) for i, piece in enumerate(pieces)]
        store.put_document(DocumentWrite("default", f"scifact/{number}", f"{number:064x}", None, "text/plain", text,
                                         len(text), [], {}, new, vectors, "bench"))
        chunks += len(pieces)
    engine.dispose()  # checkpoint into the main file
    database = settings.data_dir / "groundwork.db"
    print(f"database: {chunks} chunks with 384-d embeddings, {database.stat().st_size / 1e6:.1f} MB")
    engine = open_database(settings)

    def read_file():
        with open(database, "rb") as handle:
            while handle.read(1 << 20):
                pass

    for round_ in range(3):
        check = timed(lambda: check_integrity(engine), rounds)
        read = timed(read_file, rounds)
        print(f"  round {round_}: quick_check {check * 1e3:.0f} ms, reading the file once (baseline) {read * 1e3:.0f} ms")
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--words-per-chunk", type=int, default=90)
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").exists():
        print(f"SciFact not found at {SCIFACT}; set GROUNDWORK_SHARED_DATA", file=sys.stderr)
        return 2
    print(machine())
    corpus = scifact_chunks(args.words_per_chunk)
    root = Path(tempfile.mkdtemp(prefix="gw-bench-integrity-"))
    try:
        keyword_open(root, corpus, args.rounds)
        database_check(root, corpus, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    sys.exit(main())
