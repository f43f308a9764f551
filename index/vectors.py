"""The dense vector index: a derived, versioned, crash-safe faiss index over chunk embeddings.

SQL holds every chunk's embedding; this index is a cache of them that can always be rebuilt.
It is saved as a generation-named faiss file plus a manifest written last, so a crash at any
point leaves the previous generation loadable, and the manifest's change-log ``position`` tells
the caller where to resume catching up.

Layout inside the faiss index. Every kind wraps its inner index in an ``IndexIDMap`` whose
``id_map`` turns internal slots into chunk ids. HNSW and IVF cannot cheaply delete, so a deleted
or replaced entry is tombstoned by overwriting its ``id_map`` entry with ``-1``: the tombstone
is persisted inside the faiss file itself, and the slot keeps its place so the graph or the
inverted lists stay intact until ``compact()`` rebuilds them. Flat indexes delete for real.

Searching goes to the inner index with an ``IDSelectorBitmap`` over *slots* (built from the
caller's allowed ids minus tombstones), so filters are applied inside the search and a filtered
query still gets k results. Graph and list searches lose recall when few entries qualify, so
small allowed sets are searched exactly instead, and larger ones with a widened search.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index import errors, gpu
from index.atomic import atomic_write_json, atomic_write_via, read_json, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
METRIC = "ip"
MANIFEST_NAME = "vectors.manifest.json"
INDEX_FILE_PREFIX = "vectors-"
INDEX_FILE_SUFFIX = ".faiss"
KINDS = ("flat", "hnsw", "ivf")
# Chosen with bench/ann.py (100k x 384-d): on clustered data HNSW (M=32) and IVF-Flat both
# reach recall@10 ~1.0 well past 20x exact single-query throughput, but on a less clustered
# mixture IVF-Flat fell to 0.64-0.88 (nprobe 16-64) while HNSW kept 0.94-0.98 (efSearch
# 64-128). HNSW also needs no training that goes stale as the corpus grows.
LARGE_CORPUS_KIND = "hnsw"
# The largest GPU top-k faiss supports; larger k falls back to the CPU index.
GPU_MAX_K = 2048
# Exact filtered search copies the allowed vectors out when they are at most 1/100 of the
# index (copying one costs about as much as skipping a hundred in a bitmap scan).
GATHER_MAX_SHARE_INVERSE = 100
# Filtered search, tuned with bench/ann.py (100k vectors, M=32, efSearch=128): below ~2% of
# entries allowed, HNSW recall@10 stays under 0.95 even with an 8x wider search while an exact
# pass over the allowed few is both exact and faster, so such filters always go exact. Above
# it the search is widened by FILTER_EFFORT_SCALE / share (2x at 10%: recall 0.97 -> 0.99),
# capped at MAX_FILTER_EFFORT; rows that still come back short are redone exactly.
FILTER_EXACT_SELECTIVITY = 0.02
FILTER_EFFORT_SCALE = 0.2
MAX_FILTER_EFFORT = 8.0
# IVF training sample per inverted list (faiss warns below 39; more mostly costs time).
IVF_TRAIN_PER_LIST = 64

_TOMBSTONE = -1
_PAD_SCORE = -np.inf


class IndexCorrupt(errors.IndexCorrupt):
    """The saved index cannot be trusted (missing, garbled, or not what the manifest says);
    the caller rebuilds it from the embeddings in SQL."""


class IndexMissing(IndexCorrupt):
    """No index has been saved in this directory yet."""


_single_query_thread = threading.local()


def serve_single_queries_on_this_thread() -> None:
    """Make faiss use one OpenMP thread for searches made from the calling thread.

    A one-query search gains nothing from a thread team, and the idle team spins: measured on
    SciFact (12k vectors, 2 cores), exact search took 1.2 ms instead of 1.5 and the whole
    hybrid search 5.5 ms of CPU instead of 7.8. The setting is per thread, so index builds on
    other threads keep every core.
    """
    if not getattr(_single_query_thread, "set", False):
        faiss.omp_set_num_threads(1)
        _single_query_thread.set = True


@dataclass(frozen=True)
class VectorParams:
    """The vector-index settings, named exactly as in ``Settings`` so they map one to one."""

    vector_index_kind: str = "auto"
    vector_exact_max: int = 10_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 32
    vector_use_gpu: bool = True
    compact_tombstone_ratio: float = 0.2
    # Allowed sets up to this size are always searched exactly (a few milliseconds at most;
    # smaller shares of the index than FILTER_EXACT_SELECTIVITY go exact regardless).
    vector_filter_exact_max: int = 10_000

    def __post_init__(self) -> None:
        if self.vector_index_kind not in ("auto", *KINDS):
            raise ValueError(f"unknown vector index kind {self.vector_index_kind!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> VectorParams:
        """Take every field the settings object has; fields it lacks keep their defaults."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        return cls(**values)


@dataclass
class VectorManifest:
    """Written beside the index file, after it, naming it: the manifest is the commit point."""

    format_version: int
    kind: str
    dim: int
    metric: str
    model: str
    model_fingerprint: str
    vector_count: int
    tombstones: int
    position: int
    checksum: str
    created_at: str
    index_file: str = ""
    requested_kind: str = "auto"
    build: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> VectorManifest:
        if not isinstance(data, dict):
            raise IndexCorrupt("vector manifest is not a JSON object")
        known = {f.name: f for f in fields(cls)}
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexCorrupt(f"vector manifest is incomplete: {exc}") from None
        expected_types = {"format_version": int, "dim": int, "vector_count": int, "tombstones": int,
                          "position": int, "kind": str, "metric": str, "checksum": str,
                          "index_file": str, "model": str, "model_fingerprint": str}
        for name, typ in expected_types.items():
            if not isinstance(getattr(manifest, name), typ):
                raise IndexCorrupt(f"vector manifest field {name!r} has the wrong type")
        return manifest


def read_manifest(directory: Path) -> VectorManifest:
    """The current manifest, without loading the index (to decide whether a rebuild is due)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        raise IndexMissing(f"no vector index manifest in {directory}")
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"unreadable vector manifest {path}: {exc}") from None
    return VectorManifest.from_json(data)


def ideal_nlist(n: int) -> int:
    """IVF list count: about 4*sqrt(n), but never so many that a list gets under ~39 training
    points (faiss's own floor for meaningful k-means)."""
    return max(1, min(int(round(4 * math.sqrt(max(n, 1)))), n // 39))


def preferred_kind(live_count: int, params: VectorParams, current: str | None = None) -> str:
    """Exact search while the corpus is small, the large-corpus kind beyond. A large index only
    goes back to flat below half the threshold, so a corpus hovering at the boundary does not
    flip kinds on every compaction."""
    if params.vector_index_kind != "auto":
        return params.vector_index_kind
    if current is not None and current != "flat":
        return "flat" if live_count < params.vector_exact_max // 2 else current
    return "flat" if live_count <= params.vector_exact_max else LARGE_CORPUS_KIND


class _ReadWriteLock:
    """Many concurrent searches (faiss releases the GIL) or one writer; waiting writers go
    first so a steady search load cannot starve index updates."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# --- pure helpers -----------------------------------------------------------------------------


def top_k_exact(queries: np.ndarray, vectors: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of each query over ``vectors`` (row i labelled ``labels[i]``),
    padded with (-inf, -1) when there are fewer than k vectors."""
    nq = len(queries)
    scores_out = np.full((nq, k), _PAD_SCORE, dtype=np.float32)
    ids_out = np.full((nq, k), -1, dtype=np.int64)
    m = len(vectors)
    if m == 0 or nq == 0:
        return scores_out, ids_out
    scores = queries @ vectors.T
    take = min(k, m)
    if take < m:
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    else:
        part = np.broadcast_to(np.arange(m), (nq, m))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    scores_out[:, :take] = np.take_along_axis(part_scores, order, axis=1)
    ids_out[:, :take] = labels[best]
    return scores_out, ids_out


def filtered_search_effort(selectivity: float) -> float:
    """How much wider than usual to search when only ``selectivity`` of the entries qualify: a
    graph or list walk meets qualifying entries at that rate, so it needs more candidates to
    find the same k."""
    return float(min(MAX_FILTER_EFFORT, max(1.0, FILTER_EFFORT_SCALE / max(selectivity, 1e-9))))


def use_exact_filter(allowed: int, live: int, params: VectorParams) -> bool:
    return allowed <= params.vector_filter_exact_max or allowed < FILTER_EXACT_SELECTIVITY * live


def _slot_bitmap(slots: np.ndarray, ntotal: int) -> np.ndarray:
    bits = np.zeros(ntotal, dtype=bool)
    bits[slots] = True
    return np.packbits(bits, bitorder="little")


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must have shape (n, {dim}), got {queries.shape}")
    return np.ascontiguousarray(queries)


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """Allowed-id sets usually arrive sorted from SQL; checking is much cheaper than sorting."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return ids
    return np.unique(ids)


def _last_occurrence(ids: np.ndarray) -> np.ndarray:
    """Positions that keep only the last of each repeated id, in input order (a batch that
    mentions an id twice means its final vector)."""
    reversed_ids = ids[::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    return np.sort(len(ids) - 1 - first_in_reversed)


def _new_inner(kind: str, dim: int, params: VectorParams, nlist: int = 1) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.hnsw_ef_construction
        inner.hnsw.efSearch = params.hnsw_ef_search
        return inner
    if kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.nprobe = params.ivf_nprobe
        return inner
    raise ValueError(f"unknown vector index kind {kind!r}")


def _wrap(kind: str, inner: faiss.Index) -> faiss.Index:
    # Flat deletes for real, so the reverse map of IDMap2 stays valid; the others tombstone
    # by editing id_map in place, which IDMap2's reverse map would not follow.
    return faiss.IndexIDMap2(inner) if kind == "flat" else faiss.IndexIDMap(inner)


def _kind_of(inner: faiss.Index) -> str | None:
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    return None


def _is_index_file_name(name: str) -> bool:
    return name.startswith(INDEX_FILE_PREFIX) and name.endswith(INDEX_FILE_SUFFIX)


# --- the index --------------------------------------------------------------------------------


class VectorIndex:
    """One faiss index over chunk ids. Safe for concurrent searches alongside a single writer."""

    def __init__(self, wrapped: faiss.Index, *, kind: str, requested_kind: str, dim: int, model: str,
                 model_fingerprint: str, params: VectorParams, position: int = 0,
                 expected_size: int = 0, mapped: bool = False) -> None:
        self._index = wrapped
        self._inner = faiss.downcast_index(wrapped.index)
        self.kind = kind
        self.requested_kind = requested_kind
        self.dim = dim
        self.model = model
        self.model_fingerprint = model_fingerprint
        self.params = params
        self.position = position
        self._expected_size = expected_size
        self._mapped = mapped  # backed by a read-only mmap of the file: copy before writing
        self._lock = _ReadWriteLock()
        self._gpu_lock = threading.Lock()
        self._gpu_index: faiss.Index | None = None
        self._gpu_stale = True
        self._live_bitmap: np.ndarray | None = None
        self._sorted_ids = np.empty(0, dtype=np.int64)
        self._sorted_slots = np.empty(0, dtype=np.int64)
        self._tombstones = 0
        self._rebuild_lookup()

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def create(cls, dim: int, *, model: str, model_fingerprint: str, kind: str = "auto",
               expected_size: int = 0, params: VectorParams) -> VectorIndex:
        """An empty index. ``kind="auto"`` defers to ``params.vector_index_kind``, and when that
        is auto too, to the expected corpus size (flat up to ``vector_exact_max``)."""
        requested = params.vector_index_kind if kind == "auto" else kind
        if requested not in ("auto", *KINDS):
            raise ValueError(f"unknown vector index kind {kind!r}")
        concrete = preferred_kind(expected_size, params) if requested == "auto" else requested
        wrapped = _wrap(concrete, _new_inner(concrete, dim, params))
        return cls(wrapped, kind=concrete, requested_kind=requested, dim=dim, model=model,
                   model_fingerprint=model_fingerprint, params=params, expected_size=expected_size)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _id_map_view(self) -> np.ndarray:
        """A writable numpy view of the IDMap's slot -> id table (re-fetched after every add,
        because the underlying std::vector may reallocate)."""
        size = self._index.id_map.size()
        if size == 0:
            return np.empty(0, dtype=np.int64)
        return faiss.rev_swig_ptr(self._index.id_map.data(), size)

    def _rebuild_lookup(self) -> None:
        id_map = self._id_map_view()
        live_slots = np.flatnonzero(id_map != _TOMBSTONE)
        live_ids = id_map[live_slots]
        order = np.argsort(live_ids, kind="stable")
        self._sorted_ids = live_ids[order]
        self._sorted_slots = live_slots[order]
        self._tombstones = len(id_map) - len(live_slots)
        self._changed()

    def _changed(self) -> None:
        self._live_bitmap = None
        self._gpu_stale = True
        # Allowed sets seen since the last write, by identity (the catalog hands each caller
        # the same array until it changes): (the object, its slots, their bitmap or None).
        self._allowed_memo: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def _allowed_slots(self, allowed_ids: np.ndarray) -> np.ndarray:
        """Slots of the live ones among ``allowed_ids``; at a million entries the lookup cost
        several milliseconds per filtered search, so it is remembered until the next write."""
        memo = self._allowed_memo.get(id(allowed_ids))
        if memo is not None and memo[0] is allowed_ids:
            return memo[1]
        slots = self._slots_of(_sorted_unique(allowed_ids))
        if isinstance(allowed_ids, np.ndarray):
            if len(self._allowed_memo) >= 16:
                self._allowed_memo = {}
            self._allowed_memo[id(allowed_ids)] = (allowed_ids, slots, None)
        return slots

    def _allowed_bitmap(self, allowed_ids: np.ndarray | None, slots: np.ndarray) -> np.ndarray:
        memo = self._allowed_memo.get(id(allowed_ids)) if allowed_ids is not None else None
        if memo is not None and memo[0] is allowed_ids and memo[1] is slots:
            if memo[2] is None:
                memo = (memo[0], memo[1], _slot_bitmap(slots, self._inner.ntotal))
                self._allowed_memo[id(allowed_ids)] = memo
            return memo[2]
        return _slot_bitmap(slots, self._inner.ntotal)

    def _positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Where the live ones among ``ids`` sit in the sorted lookup."""
        if len(self._sorted_ids) == 0 or len(ids) == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return pos[self._sorted_ids[pos] == ids]

    def _slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Slots of those ``ids`` that are live; unknown and deleted ids are dropped."""
        return self._sorted_slots[self._positions_of(ids)]

    @property
    def live_count(self) -> int:
        return len(self._sorted_ids)

    @property
    def tombstones(self) -> int:
        return self._tombstones

    @property
    def build_info(self) -> dict[str, int]:
        if self.kind == "hnsw":
            return {"hnsw_m": int(self._inner.hnsw.nb_neighbors(1)),
                    "hnsw_ef_construction": int(self._inner.hnsw.efConstruction)}
        if self.kind == "ivf":
            return {"nlist": int(self._inner.nlist)}
        return {}

    def live_ids(self) -> np.ndarray:
        """Every live chunk id, ascending (to reconcile with SQL)."""
        with self._lock.reading():
            return self._sorted_ids.copy()

    def __contains__(self, chunk_id: int) -> bool:
        with self._lock.reading():
            return len(self._slots_of(np.array([chunk_id], dtype=np.int64))) == 1

    # -- writing --------------------------------------------------------------------------------

    def _ensure_writable(self) -> None:
        """An mmap-loaded index points into a read-only file; faiss aborts the process if it
        is resized, so take a private in-memory copy before the first write."""
        if not self._mapped:
            return
        private = faiss.deserialize_index(faiss.serialize_index(self._index))
        self._index = private
        self._inner = faiss.downcast_index(private.index)
        self._mapped = False

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace: an id already present has its old vector dropped first. Vectors are
        expected L2-normalised (inner product then equals cosine similarity)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"vectors must have shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        if len(ids) == 0:
            return
        if (ids < 0).any():
            raise ValueError("chunk ids must be non-negative")
        keep = _last_occurrence(ids)
        if len(keep) != len(ids):
            ids, vectors = ids[keep], vectors[keep]
        vectors = np.ascontiguousarray(vectors)
        with self._lock.writing():
            self._ensure_writable()
            self._drop(ids)
            if self.kind == "ivf" and not self._inner.is_trained:
                self._train_ivf(vectors)
            first_slot = self._inner.ntotal
            self._index.add_with_ids(vectors, ids)
            self._note_added(ids, first_slot)

    def remove(self, ids: np.ndarray) -> None:
        """Delete ids (unknown ones are ignored): for real on flat, by tombstone otherwise."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self._lock.writing():
            if len(self._slots_of(ids)) == 0:
                return
            self._ensure_writable()
            self._drop(ids)

    def _drop(self, ids: np.ndarray) -> None:
        positions = self._positions_of(np.unique(ids))
        if len(positions) == 0:
            return
        if self.kind == "flat":  # real removal shifts the slots after each removed entry
            self._index.remove_ids(np.ascontiguousarray(self._sorted_ids[positions]))
            self._rebuild_lookup()
            return
        self._id_map_view()[self._sorted_slots[positions]] = _TOMBSTONE
        self._sorted_ids = np.delete(self._sorted_ids, positions)
        self._sorted_slots = np.delete(self._sorted_slots, positions)
        self._tombstones += len(positions)
        self._changed()

    def _note_added(self, ids: np.ndarray, first_slot: int) -> None:
        """Merge freshly appended entries into the sorted lookup: linear, where re-sorting
        everything would cost O(n log n) per write."""
        order = np.argsort(ids, kind="stable")
        new_ids = ids[order]
        at = np.searchsorted(self._sorted_ids, new_ids)
        self._sorted_ids = np.insert(self._sorted_ids, at, new_ids)
        self._sorted_slots = np.insert(self._sorted_slots, at, first_slot + order)
        self._changed()

    def _train_ivf(self, sample: np.ndarray) -> None:
        target = max(self._expected_size, len(sample))
        nlist = max(1, min(ideal_nlist(target), len(sample)))
        if nlist != self._inner.nlist:
            # nlist is fixed at construction; rebuild the empty IVF with the right count.
            self._inner = _new_inner("ivf", self.dim, self.params, nlist)
            self._index = _wrap("ivf", self._inner)
        if len(sample) > IVF_TRAIN_PER_LIST * nlist:
            rng = np.random.default_rng(0)
            sample = sample[rng.choice(len(sample), IVF_TRAIN_PER_LIST * nlist, replace=False)]
        self._inner.cp.min_points_per_centroid = 1  # a small first batch gets few lists, knowingly
        clustering = gpu.clustering_index(self.dim) if gpu.gpu_enabled(self.params.vector_use_gpu) else None
        if clustering is not None:
            self._inner.clustering_index = clustering
        self._inner.train(sample)
        self._inner.clustering_index = None
        # Slots are sequential, so an array direct map lets us reconstruct vectors by slot.
        self._inner.make_direct_map(True)

    # -- compaction -----------------------------------------------------------------------------

    def needs_compaction(self) -> bool:
        """Too many tombstones, an IVF trained for a much smaller corpus, or an auto index that
        has outgrown (or shrunk out of) its kind."""
        with self._lock.reading():
            total = self.live_count + self._tombstones
            if total and self._tombstones / total > self.params.compact_tombstone_ratio:
                return True
            if self.kind == "ivf" and self._inner.is_trained and self._inner.nlist < ideal_nlist(self.live_count) / 2:
                return True
            if self.requested_kind == "auto":
                return preferred_kind(self.live_count, self.params, self.kind) != self.kind
            return False

    def compact(self, vectors_for_live_ids: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Rebuild from the live entries only, re-choosing the kind when it is auto. Vectors come
        from ``vectors_for_live_ids`` (e.g. SQL) when given, else from the index itself. The new
        index is built beside the old one, so searches carry on until the swap; like add and
        remove it belongs to the single writer and must not overlap them."""
        with self._lock.reading():
            live_ids = self._sorted_ids.copy()
            if vectors_for_live_ids is None:
                vectors = self._vectors_for_slots(self._sorted_slots)
        if vectors_for_live_ids is not None:
            vectors = np.asarray(vectors_for_live_ids(live_ids), dtype=np.float32)
        kind = self.kind if self.requested_kind != "auto" else preferred_kind(len(live_ids), self.params, self.kind)
        fresh = VectorIndex.create(self.dim, model=self.model, model_fingerprint=self.model_fingerprint,
                                   kind=kind, expected_size=len(live_ids), params=self.params)
        fresh.add(live_ids, vectors)
        with self._lock.writing():
            self._index, self._inner = fresh._index, fresh._inner
            self.kind = kind
            self._mapped = False
            self._expected_size = len(live_ids)
            self._rebuild_lookup()
            with self._gpu_lock:
                self._gpu_index = None

    # -- searching ------------------------------------------------------------------------------

    def _vectors_for_slots(self, slots: np.ndarray) -> np.ndarray:
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        storage = self._inner if self.kind == "flat" else None
        if self.kind == "hnsw":
            storage = faiss.downcast_index(self._inner.storage)
        if storage is not None:
            xb = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dim).reshape(storage.ntotal, self.dim)
            return xb[slots]
        return self._inner.reconstruct_batch(slots)

    def _search_params(self, k: int, selector: faiss.IDSelector | None, effort: float = 1.0) -> faiss.SearchParameters | None:
        """Per-call parameters (never the index's own fields, which concurrent searches share).
        ``effort`` widens the search when a filter leaves few entries eligible."""
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=int(max(self.params.hnsw_ef_search, k) * effort))
        elif self.kind == "ivf":
            nprobe = int(math.ceil(self.params.ivf_nprobe * effort))
            params = faiss.SearchParametersIVF(nprobe=max(1, min(nprobe, self._inner.nlist)))
        elif selector is None:
            return None
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _gpu_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Unfiltered search on a GPU clone of a flat or IVF index, when there is a GPU."""
        if self.kind == "hnsw" or k > GPU_MAX_K or not gpu.gpu_enabled(self.params.vector_use_gpu):
            return None
        with self._gpu_lock:  # faiss GPU resources are not safe for concurrent use
            try:
                if self._gpu_index is None or self._gpu_stale:
                    self._gpu_index = gpu.clone_to_gpu(self._inner)
                    self._gpu_stale = False
                if self.kind == "ivf":
                    faiss.GpuParameterSpace().set_index_parameter(self._gpu_index, "nprobe", self.params.ivf_nprobe)
                return self._gpu_index.search(queries, k)
            except Exception:
                log.warning("faiss GPU search failed; using CPU", exc_info=True)
                return None

    def search(self, queries: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores, ids), each (nq, k), padded with (-inf, -1).

        ``allowed_ids`` restricts the result to those chunk ids inside the search, so a query
        gets k results whenever k allowed live entries exist. Tombstones never come back.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        queries = _as_queries(queries, self.dim)
        nq = len(queries)
        with self._lock.reading():
            if allowed_ids is None:
                slots = None
                available = self.live_count
            else:
                slots = self._allowed_slots(allowed_ids)
                available = len(slots)
            if available == 0 or nq == 0:
                return (np.full((nq, k), _PAD_SCORE, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64))
            if slots is not None and (self.kind == "flat" or use_exact_filter(available, self.live_count, self.params)):
                return self._search_exact(queries, k, slots)

            selector_bits = self._selector_bitmap(slots, allowed_ids)
            result = None
            if selector_bits is None:
                result = self._gpu_search(queries, k)
            if result is None:
                selector = None if selector_bits is None else faiss.IDSelectorBitmap(selector_bits)
                effort = filtered_search_effort(available / max(1, self.live_count))
                result = self._inner.search(queries, k, params=self._search_params(k, selector, effort))
            scores, labels = result
            ids = self._labels_to_ids(labels)
            return self._fill_short_rows(queries, k, scores, ids, slots, available)

    def _search_exact(self, queries: np.ndarray, k: int, slots: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the given slots (all live entries when None). A few vectors are
        gathered and multiplied directly; more are scanned in place with a slot bitmap, which
        costs about a nanosecond per skipped entry and copies nothing."""
        candidates = self._sorted_slots if slots is None else slots
        if len(candidates) * GATHER_MAX_SHARE_INVERSE <= self._inner.ntotal:
            return top_k_exact(queries, self._vectors_for_slots(candidates), self._id_map_view()[candidates], k)
        bits = self._selector_bitmap(slots)
        selector = None if bits is None else faiss.IDSelectorBitmap(bits)
        if self.kind == "ivf":  # probing every list makes IVF-Flat exact
            params = faiss.SearchParametersIVF(nprobe=self._inner.nlist)
            if selector is not None:
                params.sel = selector
            scores, labels = self._inner.search(queries, k, params=params)
        else:
            storage = self._inner if self.kind == "flat" else faiss.downcast_index(self._inner.storage)
            params = None if selector is None else faiss.SearchParameters(sel=selector)
            scores, labels = storage.search(queries, k, params=params)
        ids = self._labels_to_ids(labels)
        return np.where(ids >= 0, scores, _PAD_SCORE).astype(np.float32, copy=False), ids

    def _selector_bitmap(self, slots: np.ndarray | None, allowed_ids: np.ndarray | None = None) -> np.ndarray | None:
        """Bitmap over slots for the search, or None when every entry qualifies."""
        ntotal = self._inner.ntotal
        if slots is not None:
            return self._allowed_bitmap(allowed_ids, slots)
        if self._tombstones == 0:
            return None
        bits = self._live_bitmap
        if bits is None:  # cached until the next write; concurrent builds are harmless
            bits = _slot_bitmap(self._sorted_slots, ntotal)
            self._live_bitmap = bits
        return bits

    def _labels_to_ids(self, labels: np.ndarray) -> np.ndarray:
        id_map = self._id_map_view()
        ids = np.full(labels.shape, -1, dtype=np.int64)
        found = labels >= 0
        ids[found] = id_map[labels[found]]
        return ids

    def _fill_short_rows(self, queries: np.ndarray, k: int, scores: np.ndarray, ids: np.ndarray,
                         slots: np.ndarray | None, available: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate filtered searches can stop short of k hits when few entries qualify;
        redo just those queries exactly so the caller still gets min(k, available) results."""
        scores = np.where(ids >= 0, scores, _PAD_SCORE).astype(np.float32, copy=False)
        short = np.flatnonzero((ids >= 0).sum(axis=1) < min(k, available))
        if len(short) == 0:
            return scores, ids
        scores[short], ids[short] = self._search_exact(queries[short], k, slots)
        return scores, ids

    # -- persistence ----------------------------------------------------------------------------

    def save(self, directory: Path, *, position: int) -> VectorManifest:
        """Write a new generation: index file first, then the manifest that names it (the
        commit point), then delete older generations. A crash before the manifest rename
        leaves the previous generation current and intact."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock.reading():
            name = f"{INDEX_FILE_PREFIX}{position:012d}-{uuid.uuid4().hex[:8]}{INDEX_FILE_SUFFIX}"
            path = directory / name
            atomic_write_via(path, lambda tmp: faiss.write_index(self._index, str(tmp)))
            manifest = VectorManifest(
                format_version=FORMAT_VERSION, kind=self.kind, dim=self.dim, metric=METRIC,
                model=self.model, model_fingerprint=self.model_fingerprint,
                vector_count=self.live_count, tombstones=self._tombstones, position=position,
                checksum=sha256_file(path), created_at=datetime.now(timezone.utc).isoformat(),
                index_file=name, requested_kind=self.requested_kind, build=self.build_info)
            atomic_write_json(directory / MANIFEST_NAME, asdict(manifest))
            self.position = position
        _remove_stale_generations(directory, keep=name)
        return manifest

    @classmethod
    def load(cls, directory: Path, *, params: VectorParams, mmap: bool = False) -> VectorIndex:
        """Open the current generation, verifying it against its manifest. With ``mmap`` the
        vectors stay in the page cache shared by every process that maps the same file.

        A writer in another process may publish a new generation (and delete this one) between
        reading the manifest and opening the file; that race is retried, not reported corrupt."""
        directory = Path(directory)
        for _ in range(3):
            manifest = read_manifest(directory)
            try:
                return cls._load_generation(directory, manifest, params, mmap)
            except IndexCorrupt:
                if read_manifest(directory) == manifest:
                    raise
        raise IndexCorrupt(f"vector index in {directory} kept changing while being opened")

    @classmethod
    def _load_generation(cls, directory: Path, manifest: VectorManifest, params: VectorParams, mmap: bool) -> VectorIndex:
        if manifest.format_version != FORMAT_VERSION:
            raise IndexCorrupt(f"vector index format {manifest.format_version} is not {FORMAT_VERSION}")
        if manifest.metric != METRIC or manifest.kind not in KINDS:
            raise IndexCorrupt(f"vector manifest has metric {manifest.metric!r}, kind {manifest.kind!r}")
        name = manifest.index_file
        if not _is_index_file_name(name) or os.sep in name or (os.altsep and os.altsep in name):
            raise IndexCorrupt(f"vector manifest names an invalid index file {name!r}")
        path = directory / name
        try:
            checksum = sha256_file(path)
        except OSError as exc:
            raise IndexCorrupt(f"vector index file {path} unreadable: {exc}") from None
        if checksum != manifest.checksum:
            raise IndexCorrupt(f"vector index file {path} does not match its manifest checksum")
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            wrapped = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise IndexCorrupt(f"vector index file {path} unreadable by faiss: {exc}") from None
        if not isinstance(wrapped, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            raise IndexCorrupt(f"vector index file {path} is not an id-mapped index")
        inner = faiss.downcast_index(wrapped.index)
        if _kind_of(inner) != manifest.kind or wrapped.d != manifest.dim:
            raise IndexCorrupt(f"vector index file {path} is not the {manifest.kind}/{manifest.dim}d index its manifest describes")
        index = cls(wrapped, kind=manifest.kind, requested_kind=manifest.requested_kind, dim=manifest.dim,
                    model=manifest.model, model_fingerprint=manifest.model_fingerprint, params=params,
                    position=manifest.position, expected_size=manifest.vector_count, mapped=mmap)
        if index.live_count != manifest.vector_count or index.tombstones != manifest.tombstones:
            raise IndexCorrupt(f"vector index file {path} holds {index.live_count} live entries, manifest says {manifest.vector_count}")
        if (index._sorted_ids[1:] == index._sorted_ids[:-1]).any():
            raise IndexCorrupt(f"vector index file {path} maps one chunk id to several entries")
        return index


def _remove_stale_generations(directory: Path, *, keep: str) -> None:
    """Older index files and temporaries left by an interrupted save. Processes that still
    map an old file keep their mapping: unlinking does not invalidate it."""
    for entry in directory.iterdir():
        name = entry.name
        stale_generation = _is_index_file_name(name) and name != keep
        stale_temp = name.endswith(".tmp") and name.startswith((f".{INDEX_FILE_PREFIX}", f".{MANIFEST_NAME}."))
        if stale_generation or stale_temp:
            try:
                entry.unlink()
            except FileNotFoundError:
                pass
