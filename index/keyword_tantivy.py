"""The shipped keyword engine: BM25 on tantivy, persistent and updated in place.

Chosen over bm25s and SQLite FTS5 (``bench/keyword_engines.py``): on SciFact all three rank
within 0.01 nDCG@10 of each other, but bm25s cannot add or delete without re-indexing
everything and FTS5 answers OR-queries tens of times slower. tantivy fixes BM25 at k1=1.2,
b=0.75 (and scales scores by k1 + 1, which leaves the ranking as in Lucene).

Queries never go through tantivy's query parser: the raw text is run through the same
analyzer as the indexed text and the resulting terms are OR-ed as term queries, so no user
input can be a syntax error. A term repeated in the query counts once per occurrence, as in
Lucene and bm25s.

Failing closed. tantivy keeps no checksums of its own: a flipped byte in a posting list makes
it panic (pyo3's PanicException, a BaseException that would escape every ``except
Exception``) or rank wrongly. So each commit records the size and sha256 of the files it
consists of in the manifest, an open verifies them, and an engine failure on read is raised as
:class:`~index.keyword.KeywordIndexCorrupt`. A failed write (a full disk kills tantivy's
writer) discards the writer and its uncommitted changes: the position stays where the last
commit left it, so the caller's next catch-up replays them into a fresh writer. The writer
lives only from the first change to the commit, which waits for tantivy's background merges:
between commits nothing rewrites the files the manifest describes.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

import tantivy
from tantivy import Filter, Occur, Query, TextAnalyzer, TextAnalyzerBuilder, Tokenizer

from index.errors import StorageUnavailable
from index.keyword import (
    FORMAT_VERSION,
    TANTIVY_ENGINE,
    KeywordDoc,
    KeywordIndexCorrupt,
    KeywordIndexMismatch,
    FileDigest,
    KeywordManifest,
    check_position,
    clean_text,
    digest_problem,
    latest_by_chunk,
    prepare_manifest,
    rank,
    read_manifest,
    record_digests,
    usable_ids,
    validate_analyzer,
    validate_id,
    write_manifest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ENGINE_DIR = "tantivy"
CHUNK_ID = "chunk_id"
DOCUMENT_ID = "document_id"
TEXT = "text"
# Each chunk's document groups as whole terms ("g:" + name), or PUBLIC for a document with none:
# an access filter is then a few posting lists instead of a term set of thousands of document
# ids (at a million chunks, a filter keeping 1% cost 20 ms as a term set; bench/scale.py).
GROUPS = "groups"
PUBLIC = "public"
GROUP_PREFIX = "g:"

# tantivy's own analyzers drop longer tokens: they are hashes, base64 or run-together junk
# that no one types, and they bloat the term dictionary.
_MAX_TOKEN_BYTES = 40
# Whitespace tokens keep their punctuation (paths, URLs, identifiers), so allow more.
_MAX_WHITESPACE_TOKEN_BYTES = 255
# A filtered search first looks this many times deeper (and at least this deep) in the
# unfiltered ranking before paying for an exact term-set filter.
_FILTER_OVERFETCH = 4
_FILTER_MIN_DEPTH = 256
# When that first look says how selective the filter is, one deeper unfiltered look (at most
# this deep) replaces the term-set filter for filters that keep a few percent or more: at a
# million chunks a filter keeping 10% cost 43 ms as a term set (bench/scale.py).
_FILTER_MAX_DEPTH = 4096
_FILTER_DEPTH_MARGIN = 1.5
# A filter of at most this many documents (the few a question names, one user's uploads) costs
# little as a term set, while an unfiltered look deep enough to hold k of their chunks would
# cost more than the answer: it goes straight to the term-set filter.
_FILTER_DIRECT_MAX_IDS = 64
# The group filter looks this many hits past k, so a few chunks of documents it admits but the
# caller may not see (not indexed yet) do not send the search to the exact filter.
_GROUP_FILTER_SLACK = 16
# Indexing memory budget shared by the writer's threads; tantivy flushes a segment when full.
_WRITER_HEAP_BYTES = 64_000_000
# tantivy rewrites this file under the same name at every commit; every other file it names
# (segment components, delete bitsets carrying their opstamp) is written once.
_META_FILE = "meta.json"
# Exceptions that are about the process, not the engine's files: never reported as corruption.
_NOT_ENGINE_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


class KeywordWriteFailed(StorageUnavailable):
    """tantivy could not write (most often: the disk is full). Nothing was committed and the
    position did not move; replaying the same changes later is safe."""

    code = "keyword_write_failed"


def build_text_analyzer(analyzer: str) -> TextAnalyzer:
    """The token chain behind each analyzer name (shared with the bm25s engine so that both
    see identical terms).

    ``en_stem`` removes stop words before stemming because the stop list holds unstemmed
    words; tantivy's English list is Lucene's 33 words, the list bm25s uses too.
    """
    validate_analyzer(analyzer)
    if analyzer == "whitespace":
        return (
            TextAnalyzerBuilder(Tokenizer.whitespace())
            .filter(Filter.remove_long(_MAX_WHITESPACE_TOKEN_BYTES))
            .build()
        )
    builder = (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(_MAX_TOKEN_BYTES))
        .filter(Filter.lowercase())
    )
    if analyzer == "en_stem":
        builder = builder.filter(Filter.stopword("english")).filter(Filter.stemmer("english"))
    return builder.build()


def _tokenizer_name(analyzer: str) -> str:
    return f"groundwork_{analyzer}"


def _schema(analyzer: str) -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # Indexed to delete and filter by; fast to read back from hits without stored documents.
    builder.add_unsigned_field(CHUNK_ID, indexed=True, fast=True)
    builder.add_unsigned_field(DOCUMENT_ID, indexed=True, fast=True)
    # Frequencies are all BM25 needs; positions would only serve phrase queries.
    builder.add_text_field(TEXT, stored=False, tokenizer_name=_tokenizer_name(analyzer), index_option="freq")
    builder.add_text_field(GROUPS, stored=False, tokenizer_name="raw", index_option="basic")
    return builder.build()


def _has_group_terms(schema: tantivy.Schema) -> bool:
    try:
        Query.term_query(schema, GROUPS, PUBLIC)
    except ValueError:  # "Field `groups` is not defined in the schema"
        return False
    return True


def group_terms(groups: Collection[str]) -> list[str]:
    """The GROUPS terms of a chunk whose document has ``groups``."""
    return [GROUP_PREFIX + group for group in sorted(set(groups))] if groups else [PUBLIC]


def _membership(allowed: Collection[int]) -> Collection[int]:
    """A set for the membership tests, without copying one the caller already built."""
    if isinstance(allowed, (set, frozenset)):
        return allowed
    if hasattr(allowed, "tolist"):  # numpy arrays: plain ints hash and compare faster
        allowed = allowed.tolist()
    return set(allowed)


def _has_index(directory: Path) -> bool:
    return directory.is_dir() and tantivy.Index.exists(str(directory))


def _live_segments(engine_dir: Path) -> dict[str, str | None]:
    """File-name prefix of each segment meta.json lists -> the name suffix of its current
    delete bitset (None when it has no deletes)."""
    meta = json.loads((Path(engine_dir) / _META_FILE).read_bytes())
    segments: dict[str, str | None] = {}
    for segment in meta.get("segments", []):
        opstamp = (segment.get("deletes") or {}).get("opstamp")
        segments[str(segment["segment_id"]).replace("-", "") + "."] = None if opstamp is None else f"{opstamp}.del"
    return segments


def committed_files(engine_dir: Path) -> list[str]:
    """The files the committed state consists of: meta.json and the components of the
    segments it lists (with each segment's current delete bitset only). Leftovers of merges
    and failed writes, which tantivy collects later, are not part of it."""
    segments = _live_segments(engine_dir)
    names = [_META_FILE]
    for entry in Path(engine_dir).iterdir():
        prefix, _, rest = entry.name.partition(".")
        delete_suffix = segments.get(prefix + ".", False)
        if delete_suffix is False:
            continue
        if rest.endswith(".del") and rest != delete_suffix:
            continue  # an older delete bitset of a live segment
        names.append(entry.name)
    return sorted(names)


def check_committed_files(engine_dir: Path, recorded: dict[str, FileDigest], *, full: bool) -> list[str]:
    """How the committed files differ from the digests a commit recorded ([] when intact).

    Segment files are written once under a fresh name, so every recorded file still in use
    must match its digest. meta.json is rewritten by every commit: when it differs, a later
    commit landed without its manifest (a crash, or another process mid-commit), and that is
    allowed as long as meta.json parses and every segment it names has its files; the files
    that commit added cannot be checked until the next commit records them. A manifest
    without digests (written before they were recorded) checks nothing.
    """
    if not recorded:
        return []
    engine_dir = Path(engine_dir)
    try:
        names = committed_files(engine_dir)
    except FileNotFoundError:
        return [f"{_META_FILE}: missing"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"{_META_FILE}: unreadable ({exc})"]
    meta = recorded.get(_META_FILE)
    moved_on = meta is None or digest_problem(engine_dir / _META_FILE, meta, full=True) is not None
    problems: list[str] = []
    present = set(names)
    for name, expected in sorted(recorded.items()):
        if name == _META_FILE:
            continue
        if name in present:
            problem = digest_problem(engine_dir / name, expected, full=full)
            if problem is not None:
                problems.append(problem)
        elif not moved_on:
            problems.append(f"{name}: missing")
    if moved_on:
        with_files = {name.partition(".")[0] + "." for name in names if not name.endswith(".del")}
        problems.extend(f"{_META_FILE} names segment {prefix[:-1]}, whose files are missing"
                        for prefix in sorted(set(_live_segments(engine_dir)) - with_files))
    return problems


def _is_engine_failure(exc: BaseException) -> bool:
    """A panic inside the engine (pyo3 raises those as BaseException), as opposed to an
    ordinary error or the process being interrupted or shut down."""
    return not isinstance(exc, (Exception, *_NOT_ENGINE_FAILURES))


def _read(path: Path, what: str, call: Callable[[], T]) -> T:
    """Run an engine read; whatever the engine raises on its own files is corruption."""
    try:
        return call()
    except KeywordIndexCorrupt:
        raise
    except (ValueError, OSError, RuntimeError) as exc:
        raise KeywordIndexCorrupt(f"keyword index at {path}: tantivy failed to {what}: {exc}") from exc
    except BaseException as exc:
        if not _is_engine_failure(exc):
            raise
        raise KeywordIndexCorrupt(f"keyword index at {path}: tantivy panicked while trying to {what}: {exc}") from exc


class TantivyKeywordIndex:
    """A :class:`~index.keyword.KeywordIndex` on tantivy; see the protocol for the contract."""

    name = TANTIVY_ENGINE

    def __init__(self, path: Path, analyzer: str = "en_stem", *, full_check_max_bytes: int | None = None):
        """Open (or create) the index at ``path``, verifying its files against the manifest.

        Files up to ``full_check_max_bytes`` in total (None: no limit) are re-hashed; above it
        only those whose size or modification time changed are, and ``verify_files`` re-hashes
        everything.
        """
        validate_analyzer(analyzer)
        self._path = Path(path)
        self._analyzer = analyzer
        self._engine_dir = engine_dir = self._path / ENGINE_DIR
        manifest, fresh = prepare_manifest(
            self._path, engine=self.name, analyzer=analyzer, engine_files_present=_has_index(engine_dir)
        )
        if fresh:
            # Nothing the manifest vouches for lives here: clear any half-created leftovers.
            shutil.rmtree(engine_dir, ignore_errors=True)
            engine_dir.mkdir(parents=True)
            self._index = tantivy.Index(_schema(analyzer), path=str(engine_dir))
        else:
            total = sum(digest.size for digest in manifest.files.values())
            full = full_check_max_bytes is None or total <= full_check_max_bytes
            problems = check_committed_files(engine_dir, manifest.files, full=full)
            if problems:
                raise KeywordIndexCorrupt(f"keyword index at {self._path} does not match its manifest: " + "; ".join(problems[:5]))
            self._index = _read(self._path, "open the index", lambda: tantivy.Index.open(str(engine_dir)))
        self._files = dict(manifest.files)
        self._text_analyzer = build_text_analyzer(analyzer)
        self._index.register_tokenizer(_tokenizer_name(analyzer), self._text_analyzer)
        # Searchers change only at our commit, so a search never sees a half-applied batch.
        self._index.config_reader(reload_policy="manual")
        self._schema = self._index.schema
        if not _has_group_terms(self._schema):
            raise KeywordIndexMismatch(
                f"keyword index at {self._path} was written before access groups were indexed; it is rebuilt from the database"
            )
        self._searcher = _read(self._path, "open a searcher", self._index.searcher)
        self._writer: tantivy.IndexWriter | None = None
        self._dirty = False
        self._position = manifest.position
        self._closed = False
        # Allowed sets seen lately, by identity (the catalog hands each caller the same array
        # until it changes): (the object, its membership set, its filter query or None). Saves
        # rebuilding a set and a term-set query of thousands of ids on every filtered search.
        self._allowed_memo: dict[int, tuple[object, Collection[int], Query | None]] = {}
        self._group_filters: dict[frozenset[str], Query] = {}

    # --- writing -------------------------------------------------------------------------
    def _open_writer(self) -> tantivy.IndexWriter:
        """Taken on first write, so an index opened only to search holds no writer lock."""
        self._check_open()
        if self._writer is None:
            self._writer = self._write("open a writer", lambda: self._index.writer(heap_size=_WRITER_HEAP_BYTES))
        return self._writer

    def _write(self, what: str, call: Callable[[], T]) -> T:
        """Run an engine write. On failure the writer and every uncommitted change are dropped
        (a killed tantivy writer refuses all further work), so the next attempt starts clean
        from the last commit; a panic means the files themselves are suspect."""
        try:
            return call()
        except _NOT_ENGINE_FAILURES:
            raise
        except BaseException as exc:
            self._discard_writer()
            if _is_engine_failure(exc):
                raise KeywordIndexCorrupt(f"keyword index at {self._path}: tantivy panicked while trying to {what}: {exc}") from exc
            raise KeywordWriteFailed(
                f"keyword index at {self._path}: could not {what} ({exc}); nothing was committed, "
                f"the index stays at position {self._position}"
            ) from exc

    def _discard_writer(self) -> None:
        writer, self._writer = self._writer, None
        self._dirty = False
        if writer is None:
            return
        for step in (writer.rollback, writer.wait_merging_threads):
            try:
                step()
            except _NOT_ENGINE_FAILURES:
                raise
            except BaseException as exc:  # a killed writer may refuse even this
                log.debug("discarding the keyword index writer: %s", exc)

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        docs = latest_by_chunk(docs)
        if not docs:
            return
        writer = self._open_writer()

        def add_all() -> None:
            # Deletes apply only to documents added before them, so one delete of the whole
            # batch followed by the adds replaces old versions and keeps the new ones.
            self._delete_ids(writer, [doc.chunk_id for doc in docs])
            for doc in docs:
                document = tantivy.Document()
                document.add_unsigned(CHUNK_ID, doc.chunk_id)
                document.add_unsigned(DOCUMENT_ID, doc.document_id)
                document.add_text(TEXT, doc.text)
                for term in group_terms(doc.groups):
                    document.add_text(GROUPS, term)
                writer.add_document(document)

        self._write("add documents", add_all)
        self._dirty = True

    def delete(self, chunk_ids: Sequence[int]) -> None:
        ids = [validate_id(chunk_id, "chunk_id") for chunk_id in chunk_ids]
        if not ids:
            return
        writer = self._open_writer()
        self._write("delete documents", lambda: self._delete_ids(writer, ids))
        self._dirty = True

    def _delete_ids(self, writer: tantivy.IndexWriter, chunk_ids: list[int]) -> None:
        # By query, not delete_documents_by_term: the latter builds a signed-integer term
        # from a Python int, which never matches this unsigned field.
        writer.delete_documents_by_query(Query.term_set_query(self._schema, CHUNK_ID, chunk_ids))

    def commit(self, position: int) -> None:
        self._check_open()
        position = check_position(self._position, position)
        files = self._files
        if self._dirty or not files:
            if self._dirty:
                writer = self._writer
                assert writer is not None
                self._write("commit", writer.commit)
                # Merges run in the background after a commit and rewrite meta.json; wait for
                # them (which also ends the writer) so that the files recorded below stay as
                # they are until the next commit.
                self._writer, self._dirty = None, False
                try:
                    writer.wait_merging_threads()
                except _NOT_ENGINE_FAILURES:
                    raise
                except BaseException as exc:  # the commit is durable; a merge that failed is only not done
                    log.warning("keyword index at %s: a background merge failed: %s", self._path, exc)
            try:
                files = record_digests(self._engine_dir, committed_files(self._engine_dir), self._files, rewritten=(_META_FILE,))
            except OSError as exc:
                raise KeywordWriteFailed(f"keyword index at {self._path}: could not record its files ({exc})") from exc
            except (ValueError, KeyError, TypeError) as exc:
                raise KeywordIndexCorrupt(f"keyword index at {self._path}: unreadable {_META_FILE} after commit ({exc})") from exc
        self._index.reload()
        searcher = _read(self._path, "open a searcher", self._index.searcher)
        self._searcher = searcher
        # The engine's commit is durable before the manifest names its position: after a
        # crash (or a failed write) in between, the manifest lags, the replay is harmless, and
        # the files that commit added are accepted unchecked until the next commit records them.
        write_manifest(
            self._path,
            KeywordManifest(FORMAT_VERSION, self.name, self._analyzer, position, searcher.num_docs, files),
        )
        self._files = files
        self._position = position

    def verify_files(self) -> list[str]:
        """Re-hash the committed files against the manifest on disk (which a writer in another
        process may have moved past this instance's view)."""
        self._check_open()
        manifest = read_manifest(self._path)
        return check_committed_files(self._engine_dir, manifest.files, full=True) if manifest else []

    # --- reading -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._position

    @property
    def analyzer(self) -> str:
        return self._analyzer

    def count(self) -> int:
        self._check_open()
        searcher = self._searcher
        return _read(self._path, "count documents", lambda: searcher.num_docs)

    def search(
        self, query: str, k: int, *, allowed_document_ids: Collection[int] | None = None,
        allowed_groups: frozenset[str] | None = None, expansion: str = "", expansion_weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        self._check_open()
        searcher = self._searcher  # one consistent view even if a commit swaps it meanwhile
        if k <= 0:
            return []
        allowed = None if allowed_document_ids is None else self._remembered(allowed_document_ids)[1]
        if allowed is not None and not allowed:
            return []
        text_query = self._text_query(query, expansion, expansion_weight)
        if text_query is None:
            return []
        if allowed is None:
            return _read(self._path, "search", lambda: self._ranked(searcher, searcher.search(text_query, limit=k, count=False).hits, k))
        if allowed_groups is not None and len(allowed) > _FILTER_DIRECT_MAX_IDS:
            found = _read(self._path, "search", lambda: self._search_groups(searcher, text_query, k, allowed, allowed_groups))
            if found is not None:
                return found
        return _read(self._path, "search", lambda: self._search_allowed(searcher, text_query, k, allowed, allowed_document_ids))

    def _search_groups(
        self, searcher: tantivy.Searcher, text_query: Query, k: int, allowed: Collection[int], groups: frozenset[str]
    ) -> list[tuple[int, float]] | None:
        """Top ``k`` among allowed documents through the group terms, or None when that cannot
        tell (then the exact document-id filter answers).

        The chunks of the caller's groups (and the public ones) are a superset of the allowed
        documents' chunks: the same, unless a document is not indexed yet or its groups changed
        since the keyword index was written. Each hit is still checked against ``allowed``, so
        a stale group term can cost a result until the next catch-up, never leak one; when the
        check drops hits that the top ``k`` needed, the exact filter runs instead.
        """
        acl = self._group_filters.get(groups)
        if acl is None:
            terms = sorted({PUBLIC, *group_terms(groups)})  # what the caller's groups see, and the public
            acl = Query.const_score_query(Query.term_set_query(self._schema, GROUPS, terms), 0.0)
            if len(self._group_filters) >= 256:
                self._group_filters = {}
            self._group_filters[groups] = acl
        depth = k + _GROUP_FILTER_SLACK
        hits = searcher.search(Query.boolean_query([(Occur.Must, text_query), (Occur.Must, acl)]), limit=depth, count=False).hits
        document_ids = searcher.fast_field_values(DOCUMENT_ID, [address for _, address in hits])
        kept = [hit for hit, document_id in zip(hits, document_ids) if document_id in allowed]
        if len(kept) >= k or len(hits) < depth:
            return self._ranked(searcher, kept, k)
        return None

    def _remembered(self, allowed_document_ids: Collection[int]) -> tuple[object, Collection[int], Query | None]:
        key = id(allowed_document_ids)
        memo = self._allowed_memo.get(key)
        if memo is None or memo[0] is not allowed_document_ids:
            if len(self._allowed_memo) >= 16:
                self._allowed_memo = {}
            memo = (allowed_document_ids, _membership(allowed_document_ids), None)
            self._allowed_memo[key] = memo
        return memo

    def _acl_query(self, allowed: Collection[int], source: Collection[int] | None) -> Query | None:
        """The zero-scored term-set filter for ``allowed``, remembered with its source object."""
        memo = self._allowed_memo.get(id(source)) if source is not None else None
        if memo is not None and memo[0] is source and memo[2] is not None:
            return memo[2]
        ids = usable_ids(allowed)
        if not ids:
            return None
        acl = Query.const_score_query(Query.term_set_query(self._schema, DOCUMENT_ID, list(ids)), 0.0)
        if memo is not None and memo[0] is source:
            self._allowed_memo[id(source)] = (memo[0], memo[1], acl)
        return acl

    def _search_allowed(
        self, searcher: tantivy.Searcher, text_query: Query, k: int, allowed: Collection[int],
        source: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` among allowed documents, exactly as if only they were indexed.

        A term-set filter costs time in proportion to the allowed set (tens of milliseconds
        for tens of thousands of ids), so first look a little deeper in the unfiltered
        ranking: when that already holds ``k`` allowed chunks, or every match, they are the
        answer. Only a selective filter pays for the filter inside the search, and a filter
        of a few documents goes to it directly.
        """
        if len(allowed) > _FILTER_DIRECT_MAX_IDS:
            depth = max(k * _FILTER_OVERFETCH, _FILTER_MIN_DEPTH)
            hits, kept = self._allowed_hits(searcher, text_query, depth, allowed)
            if len(kept) >= k or len(hits) < depth:
                return self._ranked(searcher, kept, k)
            # The share kept so far estimates the filter's selectivity: look once more, as deep
            # as k allowed hits should need, when that is within reach.
            wanted = int(_FILTER_DEPTH_MARGIN * k * len(hits) / len(kept)) if kept else _FILTER_MAX_DEPTH + 1
            if wanted <= _FILTER_MAX_DEPTH:
                depth = max(wanted, 2 * depth)
                hits, kept = self._allowed_hits(searcher, text_query, depth, allowed)
                if len(kept) >= k or len(hits) < depth:
                    return self._ranked(searcher, kept, k)
        # Zero-scored so the filter restricts without shifting BM25 scores, and a Must
        # clause so tantivy applies it while collecting the top k, not afterwards.
        acl = self._acl_query(allowed, source)
        if acl is None:
            return []
        filtered = Query.boolean_query([(Occur.Must, text_query), (Occur.Must, acl)])
        return self._ranked(searcher, searcher.search(filtered, limit=k, count=False).hits, k)

    @staticmethod
    def _allowed_hits(searcher: tantivy.Searcher, text_query: Query, depth: int, allowed: Collection[int]) -> tuple[list, list]:
        """The unfiltered top ``depth``, and those of its hits whose document is allowed."""
        hits = searcher.search(text_query, limit=depth, count=False).hits
        document_ids = searcher.fast_field_values(DOCUMENT_ID, [address for _, address in hits])
        return hits, [hit for hit, document_id in zip(hits, document_ids) if document_id in allowed]

    @staticmethod
    def _ranked(searcher: tantivy.Searcher, hits: list, k: int) -> list[tuple[int, float]]:
        if not hits:
            return []
        chunk_ids = searcher.fast_field_values(CHUNK_ID, [address for _, address in hits])
        return rank([(int(chunk_id), float(score)) for (score, _), chunk_id in zip(hits, chunk_ids)], k)

    def _text_query(self, text: str, expansion: str = "", expansion_weight: float = 1.0) -> Query | None:
        terms = Counter(self._text_analyzer.analyze(clean_text(text)))
        weights = {term: float(occurrences) for term, occurrences in terms.items()}
        if expansion and expansion_weight > 0:
            for term in self._text_analyzer.analyze(clean_text(expansion)):
                weights[term] = weights.get(term, 0.0) + expansion_weight
        if not weights:
            return None
        clauses = []
        for term, weight in weights.items():
            clause = Query.term_query(self._schema, TEXT, term, index_option="freq")
            if weight != 1.0:
                clause = Query.boost_query(clause, weight)
            clauses.append((Occur.Should, clause))
        return Query.boolean_query(clauses)

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Discard uncommitted changes and release the writer lock."""
        if self._closed:
            return
        self._closed = True
        self._discard_writer()  # rolls back, then consumes the writer: the lock goes with it

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"keyword index at {self._path} is closed")

    def __enter__(self) -> TantivyKeywordIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TantivyKeywordIndex({str(self._path)!r}, analyzer={self._analyzer!r}, position={self._position})"
