"""The ingestion job: files -> parse (worker processes) -> chunk -> embed (batched) -> store.

Parsing runs in killable worker processes while this process chunks and embeds, so the two
overlap. A document becomes durable ("acknowledged") only when its single transaction
commits; everything before that is redone by re-running the same job, which is why a
``kill -9`` at any moment is harmless. Derived indexes are not touched here: they catch up
from the change log.

One file never stops a job: each file that cannot be read, is refused by the open policy
(symlinks, see ``ingest.safe_open``) or cannot be parsed fails alone with a reason, and names
that are not valid text are stored escaped (``ingest.source_names``). A database that fails
its own integrity check is refused before anything is written.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.models import DocumentStatus, JobStatus
from index.settings import Settings
from index.store import DocumentWrite, NewChunk, Store, chunk_location
from ingest.chunking import ChunkSpan, chunk_document
from ingest.doc_context import DocumentContext, derive_context
from ingest.documents import FailureReason, ParsedDocument, ParseFailure
from ingest.embedder import Embedder
from ingest.safe_open import OpenPolicy, hash_checked, symlink_digest
from ingest.source_names import source_name, storable
from ingest.tokens import TokenCounter
from ingest.version import INGEST_VERSION, is_current

log = logging.getLogger(__name__)

FILE_STATUSES = ("added", "updated", "unchanged", "removed", "failed")

# Where an ingest's seconds go, in the order the work flows: "list" walks, hashes and skips
# unchanged files; "parse" is the time spent waiting for parsed files (parsing itself runs in
# worker processes, beside everything else); "embed" runs on its own thread while the next
# documents are parsed and chunked and the previous ones stored, and "embed_wait" is the part
# of it the job had to wait for; "index" is the indexes catching up afterwards. Stages overlap,
# so they can add up to more than the job's seconds.
STAGES = ("list", "parse", "chunk", "embed", "embed_wait", "store", "index")


class StageTimes:
    """Seconds per stage of one job, added to from the job's threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def to_json(self) -> dict[str, float]:
        with self._lock:
            return {stage: round(seconds, 3) for stage, seconds in self.seconds.items()}


@dataclass
class FileResult:
    path: str
    status: str
    reason: str | None = None
    chunks: int = 0
    detail: str | None = None
    document_id: int | None = None


@dataclass
class JobSummary:
    job_id: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    stages: StageTimes = field(default_factory=StageTimes)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def to_json(self) -> dict:
        return {
            "job_id": self.job_id,
            **{status: self.count(status) for status in FILE_STATUSES},
            "chunks": sum(f.chunks for f in self.files if f.status in ("added", "updated")),
            "seconds": round(self.seconds, 3),
            "stages": self.stages.to_json(),
            "files": [
                {"path": f.path, "status": f.status, "reason": f.reason, "chunks": f.chunks}
                | ({"detail": f.detail} if f.detail else {})
                for f in self.files
            ],
        }


def expand_paths(paths: Iterable[Path], *, follow_symlinks: bool = False, confine_to: Sequence[Path] | None = None) -> list[Path]:
    """Files under the given files and folders, recursively, sorted, each once.

    The paths given are resolved (naming a symlink on the command line follows it). Inside
    folders, symlinks are followed only with ``follow_symlinks``: then each file is listed
    under its resolved path, unless it lies outside ``confine_to``, when the link itself is
    listed (and fails at open, under its own name); without it a symlink to a file or folder
    is listed as it is, to fail with reason ``symlink``. Hidden entries and anything that is
    neither a file, a folder nor a symlink (FIFOs, sockets) are skipped.
    """
    roots = None if confine_to is None else tuple(Path(r).resolve() for r in confine_to)
    seen: dict[Path, None] = {}
    for given in paths:
        root = Path(given)
        if root.is_dir():
            _walk(root.resolve(), seen, follow_symlinks, roots)
        elif root.is_file():
            seen.setdefault(root.resolve(), None)
        else:
            raise FileNotFoundError(f"no such file or directory: {source_name(root)}")
    return list(seen)


def _walk(root: Path, seen: dict[Path, None], follow_symlinks: bool, roots: tuple[Path, ...] | None) -> None:
    visited: set[tuple[int, int]] = set()  # folders already walked: a symlink loop ends here
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        here = Path(dirpath)
        try:
            info = here.stat()
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            candidate = here / name
            if candidate.is_symlink():
                if not follow_symlinks:
                    seen.setdefault(candidate, None)  # fails alone: a symlink, not followed
                    continue
                if roots is not None and not _inside(candidate.resolve(), roots):
                    seen.setdefault(candidate, None)  # fails alone: leads outside the roots
                    continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            candidate = here / name
            try:
                mode = candidate.lstat().st_mode
            except OSError:
                continue
            if not follow_symlinks:
                if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                    seen.setdefault(candidate, None)  # a symlink fails alone at open
                continue
            # Following: each file once, under its resolved path (a file reached through a
            # link and directly is one document), unless that lies outside the roots.
            target = candidate.resolve()
            if not target.is_file():
                continue  # dangling, or a FIFO: nothing to ingest, as for a plain one
            seen.setdefault(target if roots is None or _inside(target, roots) else candidate, None)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def embedding_text(
    title: str | None, heading_path: Sequence[str], context: str, text: str, tokens: TokenCounter, prefix_budget: int,
    document_context: str | None = None,
) -> str:
    """The chunk as the embedder sees it: where it sits, its own context, then its text.

    The location (``index.store.chunk_location``: document context › heading path) is cut to
    ``prefix_budget`` tokens so that prefix + chunk never exceeds the model's sequence length:
    nothing is truncated silently. A split table's ``context`` (its header row) follows whole,
    because the chunker already held its tokens back from the chunk. Citations and offsets stay
    on the chunk's own text.
    """
    location = chunk_location(title, document_context, heading_path) if prefix_budget > 0 else ""
    if location:
        spans = tokens.token_spans(location)
        if len(spans) > prefix_budget:
            location = location[: spans[prefix_budget - 1][1]]
    return "\n".join(p for p in (location, context, text) if p)


def describe(parsed: ParsedDocument, source: str, settings: Settings) -> DocumentContext:
    """The document's title and context line; a failure here costs the context, never the file."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    try:
        return derive_context(parsed, name, parsed.metadata, max_chars=settings.document_context_chars)
    except Exception:  # a bug in a heuristic must not fail an ingest
        log.exception("document context failed for %s", source)
        return DocumentContext(parsed.title, "")


def chunk_budget(settings: Settings, embedder: Embedder) -> int:
    if settings.chunk_max_tokens:
        return settings.chunk_max_tokens
    # [CLS] and [SEP], the prefix reserve, and one token for the newline joining them.
    return max(16, embedder.max_seq_length - 2 - settings.chunk_prefix_tokens - 1)


@dataclass
class _Pending:
    path: Path
    source: str
    sha256: str
    size: int
    parsed: ParsedDocument
    described: DocumentContext
    spans: list[ChunkSpan]
    texts: list[str]  # embedding texts


class IngestRunner:
    """One ingestion job. Re-running the same job after a crash finishes the work."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        tokens: TokenCounter,
        *,
        parser_factory: Callable[[], object] | None = None,
        progress: bool | None = None,
    ):
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.tokens = tokens
        self.parser_factory = parser_factory
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.max_tokens = chunk_budget(settings, embedder)

    # ---------------------------------------------------------------------------------------
    def run(
        self,
        paths: Sequence[Path],
        *,
        collection: str = "default",
        groups: Sequence[str] = (),
        metadata: dict | None = None,
        sync: bool = False,
        job_id: str | None = None,
        source_names: dict[Path, str] | None = None,
        policy: OpenPolicy | None = None,
    ) -> JobSummary:
        """Ingest ``paths``. ``policy`` says which files may be opened (default: no symlinks
        followed inside folders); ``source_names`` overrides the source of given files."""
        started = time.perf_counter()
        policy = policy or OpenPolicy()
        # Before anything is written: writes into a damaged database spread the damage.
        self.store.integrity.require_intact(max_age_s=self.settings.database_check_interval_s)
        jobs = self.store.jobs
        jobs.mark_orphaned()
        params = {"paths": [source_name(p) for p in paths], "collection": collection, "groups": list(groups), "sync": sync}
        job_id = jobs.create(params, job_id)
        jobs.start(job_id)
        summary = JobSummary(job_id=job_id)
        try:
            files = expand_paths(paths, follow_symlinks=policy.follow_symlinks, confine_to=policy.confine_to)
            self._process(files, summary, collection, list(groups), metadata or {}, source_names or {}, policy)
            if sync:
                self._sync(files, paths, summary, collection, source_names or {})
        except BaseException as exc:
            jobs.finish(job_id, JobStatus.failed if isinstance(exc, Exception) else JobStatus.interrupted, self._counts(summary),
                        error=storable(f"{type(exc).__name__}: {exc}"))
            raise
        summary.seconds = time.perf_counter() - started
        jobs.finish(job_id, JobStatus.done, self._counts(summary))
        return summary

    # ---------------------------------------------------------------------------------------
    def _counts(self, summary: JobSummary) -> dict[str, int]:
        return {status: summary.count(status) for status in FILE_STATUSES} | {"files": len(summary.files)}

    def _record(self, summary: JobSummary, result: FileResult, bar) -> None:
        self._record_many(summary, [result], bar)

    def _record_many(self, summary: JobSummary, results: list[FileResult], bar) -> None:
        """Add files' outcomes to the job's record, in one transaction."""
        for result in results:
            if result.detail is not None:
                result.detail = storable(result.detail)
        summary.files.extend(results)
        self.store.jobs.record_files(summary.job_id, [
            {"path": r.path, "status": r.status, "reason": r.reason, "detail": r.detail, "chunks": r.chunks, "document_id": r.document_id}
            for r in results
        ], counts=self._counts(summary))
        if bar is not None:
            bar.update(len(results))

    def _source_for(self, path: Path, source_names: dict[Path, str]) -> str:
        return source_names.get(path) or source_name(path)

    def _process(self, files: list[Path], summary: JobSummary, collection: str, groups: list[str], metadata: dict,
                 source_names: dict[Path, str], policy: OpenPolicy) -> None:
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="file", desc="ingest", dynamic_ncols=True)
        t0 = time.perf_counter()
        with summary.stages.measure("list"):
            to_parse, meta_by_path = self._changed_files(files, summary, collection, groups, metadata, source_names, policy, bar)
        if not to_parse:
            if bar is not None:
                bar.close()
            return
        self._parse_and_ingest(to_parse, meta_by_path, summary, collection, groups, metadata, source_names, policy, bar, t0)

    def _changed_files(self, files: list[Path], summary: JobSummary, collection: str, groups: list[str], metadata: dict,
                       source_names: dict[Path, str], policy: OpenPolicy, bar) -> tuple[list[Path], dict[Path, tuple[str, int]]]:
        """The files to parse, with their digest and size; the rest are recorded (unchanged, failed) here."""
        to_parse: list[Path] = []
        meta_by_path: dict[Path, tuple[str, int]] = {}
        claimed: dict[str, Path] = {}
        for path in files:
            source = self._source_for(path, source_names)
            if claimed.setdefault(source, path) != path:
                self._record(summary, FileResult(source, "failed", FailureReason.unsupported_type.value,
                                                 detail=f"its name, written as text, is also the name of {claimed[source]!s}"), bar)
                continue
            try:
                digest, size = hash_checked(path, policy)
            except ParseFailure as failure:
                # Refused by the open policy (a symlink) or not a regular file: fails alone, under
                # a digest of what it is, so a re-run over the same link records nothing new.
                self._fail(summary, collection, source, symlink_digest(path), 0, failure, groups, metadata, bar)
                continue
            except OSError as exc:
                self._record(summary, FileResult(source, "failed", FailureReason.corrupt.value, detail=f"unreadable: {exc}"), bar)
                continue
            existing = self.store.find_document(collection, source)
            if existing is not None and existing.sha256 == digest and is_current(existing.ingest_version) and (
                existing.status == DocumentStatus.failed
                # A NULL context: indexed before documents had one; derive it and re-embed.
                or (existing.embedding_fingerprint == self.embedder.fingerprint and existing.context is not None)
            ):
                if sorted(set(groups)) != list(existing.groups) or (metadata and metadata != existing.doc_metadata):
                    self.store.update_document(existing.id, groups=groups, metadata=metadata or None)
                if existing.status == DocumentStatus.failed:
                    result = FileResult(source, "failed", existing.failure_reason, detail=existing.failure_detail, document_id=existing.id)
                else:
                    result = FileResult(source, "unchanged", chunks=existing.chunk_count, document_id=existing.id)
                self._record(summary, result, bar)
                continue
            if size > self.settings.max_file_bytes:
                self._fail(summary, collection, source, digest, size, ParseFailure(FailureReason.too_large, f"{size} bytes > max_file_bytes={self.settings.max_file_bytes}"), groups, metadata, bar)
                continue
            meta_by_path[path] = (digest, size)
            to_parse.append(path)
        return to_parse, meta_by_path

    def _parse_and_ingest(self, to_parse: list[Path], meta_by_path: dict[Path, tuple[str, int]], summary: JobSummary, collection: str,
                          groups: list[str], metadata: dict, source_names: dict[Path, str], policy: OpenPolicy, bar, t0: float) -> None:
        chunk_total = 0
        pending: list[_Pending] = []
        pending_chunks = 0
        flush_at = max(self.settings.embedding_batch_size * 4, 64)
        stages = summary.stages
        # One batch is embedded on this thread while the next is parsed and chunked and the one
        # before is stored: the embedder is the bottleneck, so it should never wait for the rest.
        embedder_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed")
        in_flight: tuple[list[_Pending], Future] | None = None
        try:
            with self._parser() as pool:
                results = pool.imap_unordered(to_parse, policy=policy)
                try:
                    while True:
                        with stages.measure("parse"):
                            item = next(results, None)
                        if item is None:
                            break
                        path, outcome = Path(item[0]), item[1]
                        source = self._source_for(path, source_names)
                        digest, size = meta_by_path[path]
                        if isinstance(outcome, ParseFailure):
                            with stages.measure("store"):
                                self._fail(summary, collection, source, digest, size, outcome, groups, metadata, bar)
                            continue
                        # The bytes parsed are what the document records (the file may have changed since it was hashed).
                        digest, size = outcome.sha256 or digest, outcome.size_bytes if outcome.size_bytes is not None else size
                        with stages.measure("chunk"):
                            prepared = self._prepare(path, source, digest, size, outcome)
                        if isinstance(prepared, ParseFailure):
                            with stages.measure("store"):
                                self._fail(summary, collection, source, digest, size, prepared, groups, metadata, bar)
                            continue
                        pending.append(prepared)
                        pending_chunks += len(prepared.spans)
                        if pending_chunks >= flush_at:
                            in_flight, written = self._hand_over(embedder_thread, pending, in_flight, summary, collection, groups, metadata, bar)
                            chunk_total += written
                            pending, pending_chunks = [], 0
                            if bar is not None:
                                bar.set_postfix(chunks_per_s=f"{chunk_total / max(time.perf_counter() - t0, 1e-9):.1f}")
                finally:
                    results.close()
            if pending:
                in_flight, written = self._hand_over(embedder_thread, pending, in_flight, summary, collection, groups, metadata, bar)
                chunk_total += written
            if in_flight is not None:
                chunk_total += self._store_batch(*in_flight, summary, collection, groups, metadata, bar)
        finally:
            embedder_thread.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.set_postfix(chunks_per_s=f"{chunk_total / max(time.perf_counter() - t0, 1e-9):.1f}")
            bar.close()

    def _prepare(self, path: Path, source: str, digest: str, size: int, parsed: ParsedDocument) -> _Pending | ParseFailure:
        """Chunk a parsed document and build the texts to embed, or say why it has none."""
        try:
            spans = chunk_document(parsed, self.tokens, max_tokens=self.max_tokens, overlap_tokens=self.settings.chunk_overlap_tokens,
                                   min_tokens=self.settings.chunk_min_tokens)
        except Exception as exc:  # a chunker bug must not take the job down
            log.exception("chunking failed for %s", source)
            return ParseFailure(FailureReason.corrupt, f"chunking failed: {type(exc).__name__}: {exc}")
        if not spans:
            return ParseFailure(FailureReason.no_extractable_text, "no text to index after parsing")
        described = describe(parsed, source, self.settings)
        texts = [
            embedding_text(described.title, s.heading_path, s.context, parsed.text[s.start : s.end], self.tokens,
                           self.settings.chunk_prefix_tokens, described.context)
            for s in spans
        ]
        return _Pending(path, source, digest, size, parsed, described, spans, texts)

    def _parser(self):
        if self.parser_factory is not None:
            return self.parser_factory()
        from ingest.parser_pool import ParserPool

        return ParserPool.from_settings(self.settings)

    def _hand_over(self, embedder_thread: ThreadPoolExecutor, batch: list[_Pending], in_flight: tuple[list[_Pending], Future] | None,
                   summary: JobSummary, collection: str, groups: list[str], metadata: dict, bar) -> tuple[tuple[list[_Pending], Future], int]:
        """Start embedding ``batch``, then store the batch embedded before it while this one runs."""
        future = embedder_thread.submit(self._embed_batch, batch, summary.stages)
        written = self._store_batch(*in_flight, summary, collection, groups, metadata, bar) if in_flight is not None else 0
        return (batch, future), written

    def _embed_batch(self, pending: list[_Pending], stages: StageTimes | None = None) -> np.ndarray:
        """Many documents' chunks in one batched call: the embedder sorts them by length."""
        started = time.perf_counter()
        vectors = self.embedder.embed_documents([t for p in pending for t in p.texts])
        if stages is not None:
            stages.add("embed", time.perf_counter() - started)
        return vectors

    def _flush(self, pending: list[_Pending], summary: JobSummary, collection: str, groups: list[str], metadata: dict, bar) -> int:
        """Embed many documents' chunks in one batched call, then commit each document alone."""
        return self._store_batch(pending, self._embed_batch(pending, summary.stages), summary, collection, groups, metadata, bar)

    def _store_batch(self, pending: list[_Pending], vectors: np.ndarray | Future, summary: JobSummary, collection: str, groups: list[str],
                     metadata: dict, bar) -> int:
        """Commit each document of an embedded batch in its own transaction, in order."""
        if isinstance(vectors, Future):
            with summary.stages.measure("embed_wait"):
                vectors = vectors.result()
        with summary.stages.measure("store"):
            return self._write(pending, vectors, summary, collection, groups, metadata, bar)

    def _write(self, pending: list[_Pending], vectors: np.ndarray, summary: JobSummary, collection: str, groups: list[str],
               metadata: dict, bar) -> int:
        offset = 0
        written = 0
        results: list[FileResult] = []
        try:
            for item in pending:
                n = len(item.spans)
                doc_vectors = vectors[offset : offset + n]
                offset += n
                chunks = [
                    NewChunk(
                        ordinal=s.ordinal, text=item.parsed.text[s.start : s.end], token_count=s.token_count, start=s.start, end=s.end,
                        pages=list(s.pages), heading_path=list(s.heading_path), kind=s.kind, context=s.context,
                    )
                    for s in item.spans
                ]
                doc_id, outcome = self.store.put_document(
                    DocumentWrite(
                        collection=collection, source=item.source, sha256=item.sha256, title=item.described.title or Path(item.source).name,
                        mime_type=item.parsed.mime_type, text=item.parsed.text, size_bytes=item.size, groups=groups,
                        metadata={**item.parsed.metadata, **metadata}, chunks=chunks, embeddings=np.asarray(doc_vectors, dtype=np.float32),
                        embedding_fingerprint=self.embedder.fingerprint, context=item.described.context, ingest_version=INGEST_VERSION,
                    )
                )
                written += n
                results.append(FileResult(item.source, outcome, chunks=n, document_id=doc_id))
        finally:
            # Each document committed alone above; the job's record of them takes one more commit.
            # A crash in between loses only that record: a re-run finds the documents unchanged.
            self._record_many(summary, results, bar)
        return written

    def _fail(self, summary: JobSummary, collection: str, source: str, digest: str | None, size: int, failure: ParseFailure, groups, metadata, bar) -> None:
        existing = self.store.find_document(collection, source) if digest is not None else None
        if existing is not None and existing.status == DocumentStatus.failed and existing.sha256 == digest \
                and existing.failure_reason == failure.reason.value and is_current(existing.ingest_version):
            doc_id = existing.id  # failed the same way last time: nothing new to record
        else:
            doc_id, _ = self.store.put_failed_document(
                collection, source, sha256=digest, size_bytes=size, reason=failure.reason.value, detail=storable(failure.detail),
                groups=groups, metadata=metadata, ingest_version=INGEST_VERSION,
            )
        self._record(summary, FileResult(source, "failed", failure.reason.value, detail=failure.detail, document_id=doc_id), bar)

    def _sync(self, files: list[Path], roots: Sequence[Path], summary: JobSummary, collection: str, source_names: dict[Path, str]) -> None:
        """Remove documents under the given roots whose source file is gone."""
        present = {self._source_for(p, source_names) for p in files}
        root_prefixes = [source_name(Path(r).resolve()) for r in roots]
        for doc_id, source in self.store.documents_in(collection):
            if source in present:
                continue
            if not any(source == r or source.startswith(r.rstrip(os.sep) + os.sep) for r in root_prefixes):
                continue
            if self.store.delete_document(doc_id):
                self._record(summary, FileResult(source, "removed", document_id=doc_id), None)
