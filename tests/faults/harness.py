"""The fault suite's pieces: a small synthetic corpus, a Groundwork that needs no model, the
state to compare after recovery, and the faults themselves (byte flips, a full disk).

The runs use the deterministic hash embedder and a minimal text parser, through the same
open checks as production (``ingest.safe_open``): the faults are in storage, not in models or
parsing, and a process must start in a second or two to be killed at random points.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

from index.settings import Settings
from ingest.documents import Element, ElementKind, ParsedDocument, ParseFailure

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["quarterly tide report", "harbour crane maintenance", "lighthouse lamp schedule", "ferry timetable winter"]
_TOPICS = ["tide", "harbour", "crane", "lighthouse", "lamp", "ferry", "timetable", "winter", "pier", "buoy", "dredging", "anchor"]


def write_corpus(folder: Path, documents: int = 40, paragraphs: int = 6, seed: int = 0) -> Path:
    """Markdown files whose paragraphs mix a few topic words: every query matches several."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(documents):
        body = "\n\n".join(
            f"Paragraph {j} of note {i}: the {rng.choice(_TOPICS)} and {rng.choice(_TOPICS)} report for quarter {rng.randrange(4)} "
            f"covers {' '.join(rng.choices(_TOPICS, k=12))}."
            for j in range(paragraphs)
        )
        (folder / f"note{i:03}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    return folder


def settings_for(data_dir: Path, **overrides) -> Settings:
    values = dict(data_dir=data_dir, reranker_enabled=False, parse_workers=1, chunk_max_tokens=60)
    values.update(overrides)
    return Settings(**values)


def plain_text_parse(path: Path, *, max_bytes: int, max_chars: int) -> ParsedDocument:
    """Paragraphs as text elements: enough structure for chunking, no NLP model to load."""
    from ingest.documents import FailureReason

    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ParseFailure(FailureReason.empty, "file is empty")
    elements, offset = [], 0
    for block in text.split("\n\n"):
        start = text.index(block, offset)
        if block.strip():
            elements.append(Element(ElementKind.text, start, start + len(block)))
        offset = start + len(block)
    return ParsedDocument(text, elements, "text/markdown", title=path.stem)


class PlainParser:
    """Parses in the calling process, through the production open checks."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __enter__(self) -> PlainParser:
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def imap_unordered(self, paths, *, policy=None):
        from ingest.safe_open import OpenPolicy, parse_checked

        for path in paths:
            try:
                yield Path(path), parse_checked(plain_text_parse, Path(path), policy or OpenPolicy(),
                                                max_bytes=self.settings.max_file_bytes, max_chars=self.settings.max_document_chars)
            except ParseFailure as failure:
                yield Path(path), failure


def open_groundwork(settings: Settings):
    from ingest.embedder_hash import HashEmbedder
    from service.engine import Groundwork

    gw = Groundwork(settings, embedder=HashEmbedder(dimension=64))
    gw._borrow_parser = lambda: PlainParser(settings)
    return gw


def snapshot(database: Path) -> dict:
    """What must be equal to a clean run: documents and their chunk counts, and no duplicate
    or orphaned chunk."""
    with sqlite3.connect(database) as conn:
        docs = dict(conn.execute("SELECT source, chunk_count FROM document WHERE status='indexed'").fetchall())
        dupes = conn.execute("SELECT COUNT(*) FROM (SELECT document_id, ordinal FROM chunk GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0]
        orphans = conn.execute("SELECT COUNT(*) FROM chunk WHERE document_id NOT IN (SELECT id FROM document)").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunk").fetchone()[0]
    return {"docs": docs, "chunks": chunks, "dupes": dupes, "orphans": orphans}


def keyword_answers(gw) -> list[list[str]]:
    """The sources of the keyword hits for the standard queries: what a damaged index would
    silently get wrong."""
    from service.query.types import Principal, Query

    admin = Principal(id="faults", all_access=True)
    return [[hit.source for hit in gw.pipeline.search(Query(q, admin, k=5, mode="keyword")).hits] for q in QUERIES]


def flip_bytes(path: Path, count: int = 8, seed: int = 0) -> None:
    """XOR ``count`` bytes at seeded positions with 0xFF, in place."""
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for _ in range(count):
        data[rng.randrange(len(data))] ^= 0xFF
    path.write_bytes(bytes(data))


# --- a full disk --------------------------------------------------------------------------------------

def can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(target)], capture_output=True)
    return True


@contextmanager
def tmpfs(target: Path, size: str):
    """A size-limited file system at ``target`` (needs root: mount -t tmpfs)."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)  # a file still open: detach


def fill(folder: Path) -> Path:
    """Write a ballast file until the file system is full; returns it (delete it to free space)."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    try:
        while True:  # the last few bytes
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


@contextmanager
def injected_enospc(monkeypatch):
    """A full disk at the write boundary, for systems where no small file system can be
    mounted: every index file write fails as the real ones do (faiss raises RuntimeError,
    tantivy's killed writer a ValueError naming StorageFull, Python OSError ENOSPC)."""
    import faiss

    import index.atomic as atomic
    import index.keyword_tantivy as keyword_tantivy
    import index.vectors as vectors

    full = [True]

    def write_via(path, writer):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write_via(path, writer)

    def write_index(index, path):
        if full:
            raise RuntimeError(f"write error in {path}: No space left on device")
        return real_write_index(index, path)

    class FullDiskWriter:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            attr = getattr(self._inner, name)
            if name in ("commit", "add_document") and full:
                def fail(*_args, **_kwargs):
                    raise ValueError("Failed to open file for write: 'IoError { kind: StorageFull, No space left on device }'")
                return fail
            return attr

    def open_writer(self):
        writer = real_open_writer(self)
        return writer if isinstance(writer, FullDiskWriter) else FullDiskWriter(writer)

    real_write_via, real_write_index, real_open_writer = atomic.atomic_write_via, faiss.write_index, keyword_tantivy.TantivyKeywordIndex._open_writer
    monkeypatch.setattr(atomic, "atomic_write_via", write_via)
    monkeypatch.setattr(vectors, "atomic_write_via", write_via)
    monkeypatch.setattr(faiss, "write_index", write_index)
    monkeypatch.setattr(keyword_tantivy.TantivyKeywordIndex, "_open_writer", open_writer)
    yield full  # clear it to free the space
