"""The derived indexes (vectors + BM25) as one versioned unit that follows the database.

Layout under ``<data_dir>/indexes``::

    CURRENT.json          {"version": N}           (written atomically: the switch point)
    v<N>/vectors/         faiss index + manifest    (position = change-log seq reflected)
    v<N>/keyword/         BM25 index + manifest
    .writer.lock          one process at a time maintains the files

Opening verifies each index's manifest and checksum and replays the change log from the
position it records; a missing, stale or corrupt index is rebuilt from stored embeddings,
never re-embedded. ``rebuild`` writes a whole new version beside the live one and switches
``CURRENT`` atomically, so readers never see a half-built index.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.atomic import atomic_write_json, read_json
from index.errors import IndexMismatch
from index.keyword import KeywordDoc, KeywordIndex
from index.keyword_factory import open_keyword_index
from index.settings import Settings
from index.store import Store, decode_vectors
from index.vectors import IndexCorrupt, VectorIndex, VectorParams

log = logging.getLogger(__name__)


RETIRE_GRACE_S = 60.0  # a replaced index stays open this long for searches already running


class ModelMismatch(IndexMismatch, RuntimeError):
    """The index was built with other embeddings than the configured model produces."""


@dataclass(frozen=True)
class EmbeddingIdentity:
    model: str
    fingerprint: str
    dimension: int


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
        self._retired: list[tuple[float, KeywordIndex]] = []

    # --- paths ------------------------------------------------------------------------------------
    def _version_dir(self, version: int) -> Path:
        return self.root / f"v{version}"

    def _read_current(self) -> int:
        try:
            return int(read_json(self.root / "CURRENT.json")["version"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            return 0

    # --- open / catch up ------------------------------------------------------------------------
    def open(self) -> "IndexSet":
        self.root.mkdir(parents=True, exist_ok=True)
        if self.want_writer:
            self.lock.try_acquire()
        with self.mutex:
            version = self._read_current()
            if version == 0:
                self._note("no index yet: building version 1 from the database")
                self._build_version(1)
            else:
                self.version = version
                self.vectors = self._open_vectors(version)
                self.keyword = self._open_keyword(version)
            self.catch_up()
        return self

    def _note(self, message: str) -> None:
        log.info(message)
        self.events.append(message)

    def _open_vectors(self, version: int) -> VectorIndex:
        directory = self._version_dir(version) / "vectors"
        try:
            index = VectorIndex.load(directory, params=self.params)
        except (IndexCorrupt, FileNotFoundError, OSError, ValueError) as exc:
            self._note(f"vector index v{version} unusable ({exc}); rebuilding from stored embeddings")
            return self._rebuild_vectors_into(directory)
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

    def _open_keyword(self, version: int) -> KeywordIndex:
        directory = self._version_dir(version) / "keyword"
        try:
            return open_keyword_index(directory, analyzer=self.settings.keyword_analyzer)
        except Exception as exc:  # corrupt, analyzer changed, missing: derive it again
            self._note(f"keyword index v{version} unusable ({exc}); rebuilding from the database")
            shutil.rmtree(directory, ignore_errors=True)
            return self._rebuild_keyword_into(directory)

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
        index.position = position
        return index

    def _rebuild_keyword_into(self, directory: Path) -> KeywordIndex:
        position = self.store.max_seq()
        keyword = open_keyword_index(directory, analyzer=self.settings.keyword_analyzer)
        for rows in self.store.iter_chunks_for_index():
            keyword.upsert([KeywordDoc(chunk_id=r[0], document_id=r[1], text=r[2]) for r in rows])
        keyword.commit(position)
        return keyword

    def _build_version(self, version: int) -> None:
        vectors, keyword = self._build_files(version)
        self._switch(version, vectors, keyword)

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
        """Apply change-log rows past the indexes' positions. Returns rows applied."""
        with self.mutex:
            assert self.vectors is not None and self.keyword is not None
            # A reader (another process holds the writer lock) keeps vectors current in memory;
            # the keyword files belong to the writer and are picked up when it commits.
            start = min(self.vectors.position, self.keyword.position) if self.lock.held else self.vectors.position
            start, applied = self._replay(start)
            if self._retired:
                self._close_retired()
            if applied:
                self.vectors.position = start
                if self.lock.held:
                    self.keyword.commit(start)
                if persist and self.lock.held:
                    if self.vectors.needs_compaction():
                        self.vectors.compact()
                    self.vectors.save(self._version_dir(self.version) / "vectors", position=start)
            self.position = start
            return applied

    def _replay(self, start: int) -> tuple[int, int]:
        """Apply the change log after ``start`` to the current pair; returns (position, rows)."""
        applied = 0
        while True:
            changes = self.store.changes_since(start)
            if not changes:
                return start, applied
            self._apply(changes)
            start = changes[-1][0]
            applied += len(changes)

    def _apply(self, changes: list[tuple]) -> None:
        # Net effect per chunk in log order: the last op wins; adds read the row as it is now.
        final: dict[int, str] = {}
        for seq, op, chunk_id, _doc in changes:
            if chunk_id is None:
                continue
            final[chunk_id] = op
        deleted = [cid for cid, op in final.items() if op == "delete"]
        added = [cid for cid, op in final.items() if op == "add"]
        writes_keyword = self.lock.held
        if deleted:
            ids = np.asarray(deleted, dtype=np.int64)
            self.vectors.remove(ids)
            if writes_keyword:
                self.keyword.delete(deleted)
        if added:
            rows = self.store.index_rows(added)
            present = {r[0] for r in rows}
            gone = [cid for cid in added if cid not in present]
            if gone:  # added then deleted later than this batch saw: make sure they are absent
                self.vectors.remove(np.asarray(gone, dtype=np.int64))
                if writes_keyword:
                    self.keyword.delete(gone)
            with_vectors = [r for r in rows if r[3] is not None]
            if with_vectors:
                self.vectors.add(
                    np.asarray([r[0] for r in with_vectors], dtype=np.int64),
                    decode_vectors([r[3] for r in with_vectors], self.identity.dimension),
                )
            if writes_keyword:
                self.keyword.upsert([KeywordDoc(chunk_id=r[0], document_id=r[1], text=r[2]) for r in rows])

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
            self._catch_up_pair(vectors, keyword)
            vectors.save(self._version_dir(new_version) / "vectors", position=vectors.position)
            self._switch(new_version, vectors, keyword)
            self.position = vectors.position
        self._prune(keep=(self.version, self.version - 1))
        return self.version

    def _catch_up_pair(self, vectors: VectorIndex, keyword: KeywordIndex) -> None:
        """Bring a freshly built (not yet live) pair up to the database's position."""
        live_vectors, live_keyword = self.vectors, self.keyword
        self.vectors, self.keyword = vectors, keyword
        try:
            start, _ = self._replay(min(vectors.position, keyword.position))
            vectors.position = start
            keyword.commit(max(start, keyword.position))
        finally:
            self.vectors, self.keyword = live_vectors, live_keyword

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
                if old is not None:
                    self._retired.append((time.monotonic(), old))
                self.catch_up(persist=False)
            return True
        return False

    def close(self) -> None:
        with self.mutex:
            self._close_retired(grace_s=0.0)
            if self.keyword is not None:
                self.keyword.close()
            self.lock.release()

    # --- consistency -------------------------------------------------------------------------------
    def verify(self) -> dict:
        """Compare the database with both indexes, id by id."""
        with self.mutex:
            self.catch_up(persist=False)
            db_ids = self.store.live_chunk_ids()
            problems: list[str] = []
            vector_ids = self.vectors.live_ids()
            missing = np.setdiff1d(db_ids, vector_ids)
            extra = np.setdiff1d(vector_ids, db_ids)
            if len(missing):
                problems.append(f"{len(missing)} chunks have no vector (e.g. {missing[:5].tolist()})")
            if len(extra):
                problems.append(f"{len(extra)} vectors have no chunk (e.g. {extra[:5].tolist()})")
            if self.keyword.count() != len(db_ids):
                problems.append(f"keyword index holds {self.keyword.count()} chunks, database {len(db_ids)}")
            fingerprints = self.store.fingerprints()
            stale = {fp: n for fp, n in fingerprints.items() if fp != self.identity.fingerprint}
            if stale:
                problems.append(f"{sum(stale.values())} documents embedded with another model; run `groundwork reindex --reembed`")
            return {
                "consistent": not problems,
                "chunks": int(len(db_ids)),
                "vectors": int(self.vectors.live_count),
                "keyword_docs": int(self.keyword.count()),
                "index_version": self.version,
                "position": self.position,
                "database_position": self.store.max_seq(),
                "problems": problems,
            }
