"""The derived indexes (vectors + BM25) as one versioned unit that follows the database.

Layout under ``<data_dir>/indexes``::

    CURRENT.json          {"version": N}           (written atomically: the switch point)
    v<N>/vectors/         faiss index + manifest    (position = change-log seq reflected)
    v<N>/keyword/         BM25 index + manifest
    .writer.lock          one process at a time maintains the files

Opening verifies each index's manifest and checksums and replays the change log from the
position it records; a missing, stale or corrupt index is rebuilt from stored embeddings,
never re-embedded. ``rebuild`` writes a whole new version beside the live one and switches
``CURRENT`` atomically, so readers never see a half-built index.

Failing closed. Each index's position moves only once its write is durable: a keyword commit
or a vector save that fails (a full disk) leaves that index's position behind, records the
error, and the next ``catch_up`` replays from there; ``lag`` says how far behind each index is
and why. A keyword engine that fails on its files (checksum mismatch, a panic) is marked
corrupt: searches get ``IndexCorrupt`` at once, and the writer rebuilds it from the database at
its next catch-up. An index *ahead* of the database (a database restored from a backup, or one
that lost the tail of its log) is rebuilt, since its positions no longer mean anything.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.atomic import atomic_write_json, fsync_dir, read_json, sha256_file
from index.errors import IndexCorrupt, IndexMismatch, StorageUnavailable
from index.keyword import KeywordDoc, KeywordIndex
from index.keyword_factory import open_keyword_index
from index.keyword_guard import GuardedKeywordIndex
from index.settings import Settings
from index.store import Store, decode_vectors
from index.vectors import IndexCorrupt as VectorIndexCorrupt
from index.vectors import IndexMissing, VectorIndex, VectorParams
from index.vectors import read_manifest as read_vector_manifest

log = logging.getLogger(__name__)


RETIRE_GRACE_S = 60.0  # a replaced index stays open this long for searches already running


class ModelMismatch(IndexMismatch, RuntimeError):
    """The index was built with other embeddings than the configured model produces."""


@dataclass(frozen=True)
class EmbeddingIdentity:
    model: str
    fingerprint: str
    dimension: int


class IndexWriteFailed(StorageUnavailable):
    """An index could not be brought up to the database's position (its files could not be
    written). Its position stayed behind; the next catch-up tries again."""

    code = "index_write_failed"


@dataclass(frozen=True)
class IndexLag:
    """How far each derived index trails the database, and why: what health reports.

    ``*_behind`` count change-log rows past the index's position. Vectors are searchable at
    ``vectors_position`` (in memory) and saved at ``vectors_saved_position``; keyword
    searches see ``keyword_position`` (its last commit). ``errors`` holds the last failure
    per index ("vectors", "keyword") until that index catches up.
    """

    database_position: int
    vectors_position: int
    vectors_saved_position: int
    vectors_behind: int
    keyword_position: int
    keyword_behind: int
    keyword_corrupt: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ahead_of_database(self) -> bool:
        return max(self.vectors_position, self.keyword_position) > self.database_position

    def problems(self) -> list[str]:
        """One line per thing an operator should know; [] when both indexes are current or
        only briefly behind (a lag without a failure is the follower's normal delay)."""
        out: list[str] = []
        if self.keyword_corrupt:
            out.append(f"keyword index corrupt, being rebuilt from the database: {self.keyword_corrupt}")
        if "keyword" in self.errors:
            out.append(f"keyword index behind by {self.keyword_behind} change-log rows: {self.errors['keyword']}")
        if "vectors" in self.errors:
            behind = f"behind by {self.vectors_behind} change-log rows" if self.vectors_behind else (
                f"saved only up to position {self.vectors_saved_position} of {self.vectors_position}")
            out.append(f"vector index {behind}: {self.errors['vectors']}")
        if self.ahead_of_database:
            out.append(f"indexes are ahead of the database (positions {self.vectors_position}/{self.keyword_position}, "
                       f"database {self.database_position}): the database went back in time; the indexes are rebuilt")
        return out


class WriterLock:
    """An advisory lock (flock): held by the one process that writes index files."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def try_acquire(self) -> bool:
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def acquire(self, timeout_s: float = 600.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None


class IndexSet:
    """Vector + keyword index of one version, kept in step with the change log."""

    def __init__(self, settings: Settings, store: Store, identity: EmbeddingIdentity, *, writer: bool = True):
        self.settings = settings
        self.store = store
        self.identity = identity
        self.root = settings.data_dir / "indexes"
        self.lock = WriterLock(self.root / ".writer.lock")
        self.want_writer = writer
        self.params = VectorParams.from_settings(settings)
        self.version = 0
        self.vectors: VectorIndex | None = None
        self.keyword: KeywordIndex | None = None
        self.position = 0
        self.mutex = threading.RLock()  # guards swaps and catch-up; searches read references
        self.events: list[str] = []
        self.repairs: list[str] = []  # corruption found and repaired by this process (verify reports them)
        self._retired: list[tuple[float, KeywordIndex]] = []
        self._vectors_saved = 0  # the position the vector file on disk records
        self._vectors_saved_at = time.monotonic()  # when this process last saved it (or opened)
        self._errors: dict[str, str] = {}  # last failure per index, until it catches up
        self._keyword_corrupt: str | None = None

    # --- paths ------------------------------------------------------------------------------------
    def _version_dir(self, version: int) -> Path:
        return self.root / f"v{version}"

    def _read_current(self) -> int:
        """The live version; 0 when there is none yet, or when CURRENT.json is unreadable
        (``_current_damage`` tells those apart)."""
        try:
            return int(read_json(self.root / "CURRENT.json")["version"])
        except (OSError, KeyError, ValueError, TypeError):
            return 0

    def _current_damage(self) -> str | None:
        """Why CURRENT.json exists but cannot be read, or None."""
        try:
            version = read_json(self.root / "CURRENT.json")["version"]
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                return f"version {version!r} is not a version number"
        except FileNotFoundError:
            return None
        except (OSError, KeyError, ValueError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _next_free_version(self) -> int:
        numbers = [int(child.name[1:]) for child in self.root.glob("v*") if child.name[1:].isdigit()]
        return max(numbers, default=0) + 1

    # --- open / catch up ------------------------------------------------------------------------
    def open(self) -> "IndexSet":
        self.root.mkdir(parents=True, exist_ok=True)
        if self.want_writer:
            self.lock.try_acquire()
        with self.mutex:
            version = self._read_current()
            damage = self._current_damage() if version == 0 else None
            if damage is not None and self.lock.held:
                # Which version is live is unknown: build a fresh one beside them all.
                version = self._next_free_version()
                self._repaired(f"CURRENT.json is unreadable ({damage}); built version {version} from the database")
                self._build_version(version)
                self._prune(keep=(version,))
            elif version == 0:
                if damage is not None:
                    raise IndexCorrupt(f"CURRENT.json is unreadable ({damage}); the process maintaining the indexes rebuilds them")
                self._note("no index yet: building version 1 from the database")
                self._build_version(1)
            else:
                self.version = version
                self.vectors = self._open_vectors(version)
                self.keyword = self._open_keyword(version)
            self._rebuild_if_ahead()
            try:
                self.catch_up()
            except IndexWriteFailed as exc:
                # Serve what is there; the error is recorded and the next catch-up retries.
                log.warning("indexes opened behind the database: %s", exc)
        return self

    def _note(self, message: str) -> None:
        log.info(message)
        self.events.append(message)

    def _repaired(self, message: str) -> None:
        log.warning(message)
        self.events.append(message)
        self.repairs.append(message)

    def _open_vectors(self, version: int) -> VectorIndex:
        directory = self._version_dir(version) / "vectors"
        try:
            index = VectorIndex.load(directory, params=self.params)
        except (IndexCorrupt, FileNotFoundError, OSError, ValueError) as exc:
            message = f"vector index v{version} unusable ({exc}); rebuilding from stored embeddings"
            self._repaired(message) if _is_damage(exc) else self._note(message)
            return self._rebuild_vectors_into(directory)
        self._vectors_saved = index.position
        if index.model_fingerprint != self.identity.fingerprint:
            stored = set(self.store.fingerprints())
            if stored <= {self.identity.fingerprint}:
                # The database already holds the configured model's vectors (after
                # `reindex --reembed`): the index is merely stale, derive it again.
                self._note(f"vector index v{version} was built with another model; rebuilding from stored embeddings")
                return self._rebuild_vectors_into(directory)
            raise ModelMismatch(
                f"the vector index was built with model '{index.model}' (fingerprint {index.model_fingerprint[:12]}), "
                f"but the configured embedding model is '{self.identity.model}' (fingerprint {self.identity.fingerprint[:12]}). "
                "Queries would compare incompatible vectors. Run `groundwork reindex --reembed` to re-embed with the "
                "configured model, or configure the model the index was built with."
            )
        return index

    def _keyword_engine(self, directory: Path) -> KeywordIndex:
        return open_keyword_index(
            directory, analyzer=self.settings.keyword_analyzer,
            full_check_max_bytes=self.settings.keyword_full_check_max_bytes,
        )

    def _guard(self, engine: KeywordIndex) -> GuardedKeywordIndex:
        guarded = GuardedKeywordIndex(engine, on_corrupt=lambda reason: self._keyword_failed(guarded, reason))
        return guarded

    def _keyword_failed(self, guarded: GuardedKeywordIndex, reason: str) -> None:
        """Called (once per engine instance) when the live keyword engine failed on its files."""
        if guarded is self.keyword:
            log.error("keyword index marked corrupt: %s", reason)
            self._keyword_corrupt = reason

    def _open_keyword(self, version: int) -> GuardedKeywordIndex:
        directory = self._version_dir(version) / "keyword"
        try:
            return self._guard(self._keyword_engine(directory))
        except Exception as exc:  # corrupt, analyzer changed, missing: derive it again
            message = f"keyword index v{version} unusable ({exc}); rebuilding from the database"
            if not self.lock.held:
                # The files belong to the writer, which repairs them; until then keyword
                # searches in this process fail with IndexCorrupt.
                self._note(f"keyword index v{version} unusable ({exc}); waiting for the writer to rebuild it")
                return self._unusable_keyword(str(exc))
            self._repaired(message) if _is_damage(exc) else self._note(message)
            try:
                shutil.rmtree(directory, ignore_errors=True)
                return self._rebuild_keyword_into(directory)
            except Exception as rebuild_exc:
                self._errors["keyword"] = _describe(rebuild_exc)
                log.warning("keyword index v%d could not be rebuilt yet: %s", version, rebuild_exc)
                return self._unusable_keyword(f"{exc}; rebuild failed: {rebuild_exc}")

    def _unusable_keyword(self, reason: str) -> GuardedKeywordIndex:
        guarded = self._guard(_UnusableKeywordIndex(reason))
        guarded.corrupt = reason
        self._keyword_corrupt = reason
        return guarded

    def _new_vectors(self, expected: int) -> VectorIndex:
        return VectorIndex.create(
            self.identity.dimension, model=self.identity.model, model_fingerprint=self.identity.fingerprint,
            kind=self.settings.vector_index_kind, expected_size=expected, params=self.params,
        )

    def _rebuild_vectors_into(self, directory: Path) -> VectorIndex:
        position = self.store.max_seq()
        expected = len(self.store.live_chunk_ids())
        index = self._new_vectors(expected)
        for rows in self.store.iter_chunks_for_index():
            ids = np.asarray([r[0] for r in rows if r[3] is not None], dtype=np.int64)
            vecs = decode_vectors([r[3] for r in rows if r[3] is not None], self.identity.dimension)
            if len(ids):
                index.add(ids, vecs)
        if self.lock.held:
            index.save(directory, position=position)
            self._vectors_saved = position
        index.position = position
        return index

    def _rebuild_keyword_into(self, directory: Path) -> GuardedKeywordIndex:
        position = self.store.max_seq()
        keyword = self._keyword_engine(directory)
        try:
            for rows in self.store.iter_chunks_for_index():
                keyword.upsert(_keyword_docs(rows))
            keyword.commit(position)
        except BaseException:
            keyword.close()
            raise
        return self._guard(keyword)

    def _build_version(self, version: int) -> None:
        vectors, keyword = self._build_files(version)
        self._switch(version, vectors, keyword)
        if self.lock.held:
            self._vectors_saved = vectors.position

    def _build_files(self, version: int) -> tuple[VectorIndex, KeywordIndex]:
        """Build a complete version beside the live one. Needs no mutex: it reads only the
        database and writes only its own directory, so searches go on meanwhile."""
        directory = self._version_dir(version)
        shutil.rmtree(directory, ignore_errors=True)
        vectors = self._rebuild_vectors_into(directory / "vectors")
        keyword = self._rebuild_keyword_into(directory / "keyword")
        return vectors, keyword

    def _switch(self, version: int, vectors: VectorIndex, keyword: KeywordIndex) -> None:
        if self.lock.held:
            atomic_write_json(self.root / "CURRENT.json", {"version": version})
        old_keyword = self.keyword
        self.vectors, self.keyword, self.version = vectors, keyword, version
        self._keyword_corrupt = getattr(keyword, "corrupt", None)
        self._errors.clear()
        if old_keyword is not None and old_keyword is not keyword:
            # Searches that started before the switch still hold the old pair: retire it and
            # close it only once they are surely done, never under their feet.
            self._retired.append((time.monotonic(), old_keyword))
        self._close_retired()

    def _close_retired(self, grace_s: float = RETIRE_GRACE_S) -> None:
        now = time.monotonic()
        keep = []
        for retired_at, index in self._retired:
            if now - retired_at >= grace_s:
                try:
                    index.close()
                except Exception:
                    pass
            else:
                keep.append((retired_at, index))
        self._retired = keep

    def catch_up(self, persist: bool = True) -> int:
        """Apply change-log rows past the indexes' positions. Returns rows applied.

        Each index's position moves only once its write is durable. When a write fails its
        error is recorded (see ``lag``), the others still advance, and ``IndexWriteFailed``
        is raised at the end so that a caller retrying on a timer backs off.
        """
        with self.mutex:
            assert self.vectors is not None and self.keyword is not None
            writer = self.lock.held
            failures: dict[str, str] = {}
            if self._keyword_corrupt is not None:
                if writer:
                    try:
                        self._repair_keyword()
                    except IndexWriteFailed as exc:
                        failures["keyword"] = str(exc)
                else:
                    self._reopen_keyword()
            keyword_usable = writer and self._keyword_corrupt is None
            # A reader (another process holds the writer lock) keeps vectors current in memory;
            # the keyword files belong to the writer and are picked up when it commits.
            start = min(self.vectors.position, self.keyword.position) if keyword_usable else self.vectors.position
            start, applied, keyword_error = self._replay(start, self.vectors, self.keyword if keyword_usable else None)
            if self._retired:
                self._close_retired()
            self.vectors.position = start
            if keyword_usable:
                if keyword_error is None and self.keyword.position < start:
                    keyword_error = self._attempt(self.keyword.commit, start)
                if keyword_error is not None:
                    failures["keyword"] = keyword_error
            if persist and writer and self._vectors_saved < start and self._vector_save_due():
                vectors_error = self._attempt(self._save_vectors, start)
                if vectors_error is not None:
                    failures["vectors"] = vectors_error
            self.position = start
            self._settle_errors(failures, keyword_usable=keyword_usable, persisted=persist and writer)
            if failures:
                raise IndexWriteFailed("; ".join(f"{name} index: {error}" for name, error in failures.items()))
            return applied

    def _attempt(self, write: Callable[[int], None], position: int) -> str | None:
        """Run one index write; its failure as a message (the write left its position behind,
        to be retried at the next catch-up: after a full disk or I/O error as it is, after
        IndexCorrupt once the guard's report has had the index rebuilt)."""
        try:
            write(position)
        except Exception as exc:
            return _describe(exc)
        return None

    def _vector_save_due(self) -> bool:
        """Saving rewrites the whole vector file (6 s at a million HNSW vectors, in the way of
        the search that caught up): at most every ``vector_save_interval_s``, and at once after
        a failed save. Changes in between are searchable from memory and, after a crash,
        replayed from the change log at start-up."""
        interval = self.settings.vector_save_interval_s
        return interval <= 0 or "vectors" in self._errors or time.monotonic() - self._vectors_saved_at >= interval

    def _save_vectors(self, position: int) -> None:
        if self.vectors.needs_compaction():
            self.vectors.compact()
        self.vectors.save(self._version_dir(self.version) / "vectors", position=position)
        self._vectors_saved = position
        self._vectors_saved_at = time.monotonic()

    def _settle_errors(self, failures: dict[str, str], *, keyword_usable: bool, persisted: bool) -> None:
        for name, error in failures.items():
            if self._errors.get(name) != error:
                log.warning("%s index could not be brought up to date (it stays behind and is retried): %s", name, error)
            self._errors[name] = error
        if keyword_usable and "keyword" not in failures and self._errors.pop("keyword", None) is not None:
            log.warning("keyword index caught up after earlier failures")
        if persisted and "vectors" not in failures and self._errors.pop("vectors", None) is not None:
            log.warning("vector index saved after earlier failures")

    def _replay(self, start: int, vectors: VectorIndex, keyword: KeywordIndex | None) -> tuple[int, int, str | None]:
        """Apply the change log after ``start`` to ``vectors`` and (when given) ``keyword``;
        returns (position, rows, keyword error). A keyword failure stops only the keyword
        side: its uncommitted changes are gone with its writer, and its position stays put."""
        applied = 0
        keyword_error: str | None = None
        while True:
            changes = self.store.changes_since(start)
            if not changes:
                return start, applied, keyword_error
            deleted, added, rows = self._net_changes(changes)
            self._apply_vectors(vectors, deleted, added, rows)
            if keyword is not None and keyword_error is None:
                rewritten = self._rewritten_documents(changes, added)
                keyword_error = self._attempt(lambda _position: self._apply_keyword(keyword, deleted, added, rows + rewritten), start)
            start = changes[-1][0]
            applied += len(changes)

    def _net_changes(self, changes: list[tuple]) -> tuple[list[int], list[int], list[tuple]]:
        """Net effect per chunk in log order (the last op wins): (deleted, added, rows of the
        added chunks as they are now)."""
        final: dict[int, str] = {}
        for seq, op, chunk_id, _doc in changes:
            if chunk_id is None:
                continue
            final[chunk_id] = op
        deleted = [cid for cid, op in final.items() if op == "delete"]
        added = [cid for cid, op in final.items() if op == "add"]
        rows = self.store.index_rows(added) if added else []
        return deleted, added, rows

    def _rewritten_documents(self, changes: list[tuple], added: list[int]) -> list[tuple]:
        """Index rows of the chunks whose document changed (groups, title, context) without
        the chunk itself changing: the keyword index holds the document's groups and title
        with every chunk, so it writes those chunks again. The vectors need nothing."""
        documents = {doc for _seq, op, chunk_id, doc in changes if chunk_id is None and doc is not None}
        if not documents:
            return []
        fresh = set(added)  # rows read already (a new document's chunks, most often all of them)
        stale = [chunk_id for chunk_id in self.store.chunk_ids_of_documents(sorted(documents)) if chunk_id not in fresh]
        return self.store.index_rows(stale) if stale else []

    def _apply_vectors(self, vectors: VectorIndex, deleted: list[int], added: list[int], rows: list[tuple]) -> None:
        if deleted:
            vectors.remove(np.asarray(deleted, dtype=np.int64))
        if added:
            gone = _gone(added, rows)
            if gone:  # added then deleted later than this batch saw: make sure they are absent
                vectors.remove(np.asarray(gone, dtype=np.int64))
            with_vectors = [r for r in rows if r[3] is not None]
            if with_vectors:
                vectors.add(
                    np.asarray([r[0] for r in with_vectors], dtype=np.int64),
                    decode_vectors([r[3] for r in with_vectors], self.identity.dimension),
                )

    def _apply_keyword(self, keyword: KeywordIndex, deleted: list[int], added: list[int], rows: list[tuple]) -> None:
        if deleted:
            keyword.delete(deleted)
        if added:
            gone = _gone(added, rows)
            if gone:
                keyword.delete(gone)
        if rows:
            keyword.upsert(_keyword_docs(rows))

    # --- repair ------------------------------------------------------------------------------------
    def _repair_keyword(self) -> None:
        """Rebuild a keyword index marked corrupt from the database, in place (writer only).
        Searches keep failing fast on the corrupt one until the new one is swapped in."""
        reason = self._keyword_corrupt
        directory = self._version_dir(self.version) / "keyword"
        broken = self.keyword
        try:
            rebuilt = self._rebuild_into_fresh_directory(directory, broken)
        except Exception as exc:
            self._errors["keyword"] = _describe(exc)
            raise IndexWriteFailed(f"keyword index: rebuild after corruption failed: {_describe(exc)}") from exc
        self.keyword = rebuilt
        self._keyword_corrupt = None
        self._errors.pop("keyword", None)
        self._repaired(f"keyword index v{self.version} was corrupt ({reason}); rebuilt from the database")

    def _rebuild_into_fresh_directory(self, directory: Path, broken: KeywordIndex | None) -> GuardedKeywordIndex:
        if broken is not None:
            # Searches already running on it finish (its files stay mapped once unlinked).
            self._retired.append((time.monotonic(), broken))
        shutil.rmtree(directory, ignore_errors=True)
        return self._rebuild_keyword_into(directory)

    def _reopen_keyword(self) -> None:
        """A reader whose keyword index was unusable tries the files again: the writer may
        have repaired them by now."""
        directory = self._version_dir(self.version) / "keyword"
        try:
            engine = self._keyword_engine(directory)
        except Exception:
            return
        if self.keyword is not None:
            self._retired.append((time.monotonic(), self.keyword))
        self.keyword = self._guard(engine)
        self._keyword_corrupt = None

    def _rebuild_if_ahead(self) -> None:
        """Positions past the database's last change mean the database went back in time
        (restored from a backup, or its log lost its tail); the change-log numbers may be
        reused, so the indexes no longer say what they hold. Build a fresh version."""
        database = self.store.max_seq()
        ahead = max(self.vectors.position, self.keyword.position)
        if ahead <= database:
            return
        message = f"indexes v{self.version} are at position {ahead}, past the database's {database}"
        if not self.lock.held:
            self._note(message + "; the writer rebuilds them")
            return
        self._repaired(message + "; rebuilt from the database")
        version = max(self.version, self._read_current()) + 1
        self._build_version(version)
        self._prune(keep=(version,))

    # --- health ------------------------------------------------------------------------------------
    def lag(self) -> IndexLag:
        """How far each index trails the database, and the last error of each (cheap: one
        query for the database position, one counting query per index behind)."""
        with self.mutex:
            vectors_position, keyword_position = self.vectors.position, self.keyword.position
            saved, errors, corrupt = self._vectors_saved, dict(self._errors), self._keyword_corrupt
        database = self.store.max_seq()
        return IndexLag(
            database_position=database,
            vectors_position=vectors_position,
            vectors_saved_position=saved,
            vectors_behind=self.store.count_changes_since(vectors_position) if vectors_position < database else 0,
            keyword_position=keyword_position,
            keyword_behind=self.store.count_changes_since(keyword_position) if keyword_position < database else 0,
            keyword_corrupt=corrupt,
            errors=errors,
        )

    def health(self) -> dict:
        """What ``/v1/health`` reports for the indexes: ``status`` is "ok" or "degraded",
        ``problems`` says why, the rest is :class:`IndexLag` (positions: admin detail)."""
        lag = self.lag()
        problems = lag.problems()
        return {"status": "degraded" if problems else "ok", "problems": problems, "version": self.version,
                "lag": {"vectors": lag.vectors_behind, "keyword": lag.keyword_behind},
                "positions": {"database": lag.database_position, "vectors": lag.vectors_position,
                              "vectors_saved": lag.vectors_saved_position, "keyword": lag.keyword_position},
                "keyword_corrupt": lag.keyword_corrupt, "errors": lag.errors}

    # --- rebuild / switch --------------------------------------------------------------------------
    def rebuild(self) -> int:
        """Build a fresh version from stored embeddings and switch to it atomically.

        The build runs outside the mutex, so searches keep using the live version; only the
        final catch-up (the few changes that landed during the build) and the swap hold it.
        """
        if not self.lock.held and not self.lock.acquire(timeout_s=60):
            raise RuntimeError("another process is maintaining the indexes; try again when it is done")
        with self.mutex:
            new_version = max(self.version, self._read_current()) + 1
        vectors, keyword = self._build_files(new_version)
        with self.mutex:
            try:
                self._catch_up_pair(vectors, keyword)
                vectors.save(self._version_dir(new_version) / "vectors", position=vectors.position)
            except BaseException:
                keyword.close()  # the half-built version is never switched to; the next rebuild replaces it
                raise
            self._switch(new_version, vectors, keyword)
            self._vectors_saved = vectors.position
            self.position = vectors.position
        self._prune(keep=(self.version, self.version - 1))
        return self.version

    def _catch_up_pair(self, vectors: VectorIndex, keyword: KeywordIndex) -> None:
        """Bring a freshly built (not yet live) pair up to the database's position."""
        start, _, keyword_error = self._replay(min(vectors.position, keyword.position), vectors, keyword)
        if keyword_error is not None:
            raise IndexWriteFailed(f"keyword index: {keyword_error}")
        vectors.position = start
        keyword.commit(max(start, keyword.position))

    def _prune(self, keep: tuple[int, ...]) -> None:
        for child in self.root.glob("v*"):
            try:
                number = int(child.name[1:])
            except ValueError:
                continue
            if number not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def reload_if_switched(self) -> bool:
        """A reader notices another process switched CURRENT (after `groundwork reindex`)."""
        current = self._read_current()
        if current and current != self.version:
            with self.mutex:
                vectors = self._open_vectors(current)
                keyword = self._open_keyword(current)
                old = self.keyword
                self.vectors, self.keyword, self.version = vectors, keyword, current
                self._keyword_corrupt = keyword.corrupt
                if old is not None:
                    self._retired.append((time.monotonic(), old))
                self.catch_up(persist=False)
            return True
        return False

    def close(self) -> None:
        with self.mutex:
            self._close_retired(grace_s=0.0)
            if self.lock.held and self.vectors is not None and self._vectors_saved < self.vectors.position:
                # A clean shutdown leaves nothing to replay (saves are spaced out while running).
                error = self._attempt(self._save_vectors, self.vectors.position)
                if error is not None:
                    log.warning("vector index not saved at close (replayed from the change log at the next start): %s", error)
            if self.keyword is not None:
                self.keyword.close()
            self.lock.release()

    # --- consistency -------------------------------------------------------------------------------
    def verify(self) -> dict:
        """Compare the database with both indexes, id by id, and re-hash every index file
        against its manifest. Damage found is repaired when this process is the writer;
        ``repaired`` lists it (and repairs made when the indexes were opened), ``problems``
        what is still wrong."""
        with self.mutex:
            try:
                self.catch_up(persist=False)
            except IndexWriteFailed:
                pass  # the failure is in lag() below
            problems = self._verify_files()
            db_ids = self.store.live_chunk_ids()
            vector_ids = self.vectors.live_ids()
            missing = np.setdiff1d(db_ids, vector_ids)
            extra = np.setdiff1d(vector_ids, db_ids)
            if len(missing):
                problems.append(f"{len(missing)} chunks have no vector (e.g. {missing[:5].tolist()})")
            if len(extra):
                problems.append(f"{len(extra)} vectors have no chunk (e.g. {extra[:5].tolist()})")
            try:
                keyword_docs: int | None = int(self.keyword.count())
            except IndexCorrupt:
                keyword_docs = None  # lag() says why
            if keyword_docs is not None and keyword_docs != len(db_ids):
                problems.append(f"keyword index holds {keyword_docs} chunks, database {len(db_ids)}")
            lag = self.lag()
            problems.extend(lag.problems())
            fingerprints = self.store.fingerprints()
            stale = {fp: n for fp, n in fingerprints.items() if fp != self.identity.fingerprint}
            if stale:
                problems.append(f"{sum(stale.values())} documents embedded with another model; run `groundwork reindex --reembed`")
            return {
                "consistent": not problems,
                "chunks": int(len(db_ids)),
                "vectors": int(self.vectors.live_count),
                "keyword_docs": keyword_docs,
                "index_version": self.version,
                "position": self.position,
                "database_position": lag.database_position,
                "problems": problems,
                # Damage this process found and repaired (at open or just now): the indexes are
                # consistent again, but something broke them, and an operator should know.
                "repaired": list(self.repairs),
            }

    def _verify_files(self) -> list[str]:
        """Re-hash the keyword engine's files and the saved vector file. The writer repairs
        what fails (recorded in ``repairs``); another process can only report it."""
        problems: list[str] = []
        if self._keyword_corrupt is None:
            try:
                damaged = self.keyword.verify_files()
            except IndexCorrupt:
                damaged = []  # the guard has marked it corrupt
            if damaged:
                reason = "files differ from their manifest: " + "; ".join(damaged[:5])
                if self.lock.held:
                    self.keyword.blow(reason)
                else:
                    problems.append(f"keyword index v{self.version} {reason}; the process maintaining the indexes "
                                    "rebuilds it when it next opens or verifies them")
        if self._keyword_corrupt is not None and self.lock.held:
            try:
                self._repair_keyword()
            except IndexWriteFailed:
                pass  # reported through lag()
        if self.lock.held:
            damage = self._vector_file_damage()
            if damage is not None:
                # The index in memory was verified when it was loaded (or built): write it out again.
                try:
                    self._save_vectors(self.vectors.position)
                    self._repaired(f"vector index v{self.version} file was damaged ({damage}); saved again from memory")
                except Exception as exc:
                    problems.append(f"vector index v{self.version} file is damaged ({damage}) and could not be rewritten: {_describe(exc)}")
        return problems

    def _vector_file_damage(self) -> str | None:
        directory = self._version_dir(self.version) / "vectors"
        try:
            manifest = read_vector_manifest(directory)
            if sha256_file(directory / manifest.index_file) != manifest.checksum:
                return f"{manifest.index_file} does not match its manifest checksum"
        except VectorIndexCorrupt as exc:
            return str(exc)
        except OSError as exc:
            return f"unreadable: {exc}"
        return None


class _UnusableKeywordIndex:
    """Stands in for a keyword index that could not be opened or rebuilt: every read fails
    with IndexCorrupt (through its guard, which is created blown) until it is replaced."""

    name = "unavailable"

    def __init__(self, reason: str):
        self.reason = reason
        self.position = 0

    def _fail(self, *_args, **_kwargs):
        raise IndexCorrupt(f"the keyword index is unavailable: {self.reason}")

    search = count = upsert = delete = commit = _fail

    def verify_files(self) -> list[str]:
        return [self.reason]

    def close(self) -> None:
        return None


def _keyword_docs(rows: list[tuple]) -> list[KeywordDoc]:
    return [KeywordDoc(chunk_id=r[0], document_id=r[1], text=r[2], groups=r[4]) for r in rows]


def _gone(added: list[int], rows: list[tuple]) -> list[int]:
    present = {r[0] for r in rows}
    return [cid for cid in added if cid not in present]


def _is_damage(exc: BaseException) -> bool:
    """Whether an index failed to open because its files are damaged (as opposed to missing,
    or built for another model, engine or analyzer)."""
    return isinstance(exc, IndexCorrupt) and not isinstance(exc, IndexMissing)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def seed_indexes(settings: Settings, source_data_dir: Path) -> dict:
    """Give a new replica the live index version of another data directory over the same database.

    The live version's files and manifests are copied and checked against their recorded
    digests (the snapshot's copy, ``index.snapshot``, retried while a commit lands under it);
    opening the data directory then replays the change log from the positions those manifests
    record, instead of rebuilding every index from the database. An index that cannot be copied
    is left out and rebuilt at open. Refuses a data directory that already has indexes, or that a
    running process holds. Both directories must follow one database: positions are change-log
    sequence numbers of that database.
    """
    from index.snapshot import SnapshotRefused, _copy_indexes, _fsync_tree, _refuse_if_held

    source_data_dir, target_root = Path(source_data_dir).resolve(), settings.data_dir / "indexes"
    if source_data_dir == settings.data_dir.resolve():
        raise SnapshotRefused("a data directory cannot be seeded from itself")
    if not (source_data_dir / "indexes" / "CURRENT.json").is_file():
        raise SnapshotRefused(f"{source_data_dir} holds no index to seed from (no indexes/CURRENT.json)")
    _refuse_if_held(settings.data_dir)
    if (target_root / "CURRENT.json").exists() or any(target_root.glob("v*")):
        raise SnapshotRefused(f"{settings.data_dir} already has indexes; seed only a new data directory")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = settings.data_dir / f".indexes.seeding-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        copied = _copy_indexes(settings.model_copy(update={"data_dir": source_data_dir}), staging, {})
        if copied.get("version") is None:
            raise SnapshotRefused(f"nothing to seed from {source_data_dir}: {(copied.get('skipped') or {}).get('all')}")
        _fsync_tree(staging / "indexes")
        shutil.rmtree(target_root, ignore_errors=True)  # at most an empty folder or a stale lock file
        (staging / "indexes").rename(target_root)
        fsync_dir(settings.data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied
