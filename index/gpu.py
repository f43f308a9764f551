"""Optional faiss GPU acceleration.

faiss-cpu is the default dependency; the ``gpu`` extra swaps in a CUDA build. Everything here
degrades to "no GPU" instead of raising, so one code path serves both builds: callers ask
``gpu_enabled()`` and, when it says yes, search a GPU clone of the CPU index they keep as the
source of truth (HNSW has no GPU implementation, so only flat and IVF indexes are cloned).
"""

from __future__ import annotations

import logging
import threading

import faiss

log = logging.getLogger(__name__)

_notice_lock = threading.Lock()
_cpu_notice_logged = False
_resources = None


def gpu_count() -> int:
    """GPUs faiss can use: 0 for a faiss-cpu build, a GPU build on a machine without GPUs, or a
    broken CUDA runtime."""
    if not hasattr(faiss, "StandardGpuResources") or not hasattr(faiss, "get_num_gpus"):
        return 0
    try:
        return max(0, int(faiss.get_num_gpus()))
    except Exception:  # a GPU build whose driver is missing must not take the service down
        log.warning("faiss GPU build could not query devices; using CPU", exc_info=True)
        return 0


def _log_cpu_once() -> None:
    global _cpu_notice_logged
    with _notice_lock:
        if not _cpu_notice_logged:
            _cpu_notice_logged = True
            log.info("faiss GPU support not available; using CPU")


def gpu_enabled(use_gpu: bool) -> bool:
    """Whether to put indexes on GPU; says once per process why not when the answer is no."""
    if not use_gpu:
        return False
    if gpu_count() == 0:
        _log_cpu_once()
        return False
    return True


def _shared_resources():
    """One set of GPU resources (temporary memory, streams) per process, as faiss recommends."""
    global _resources
    with _notice_lock:
        if _resources is None:
            _resources = faiss.StandardGpuResources()
        return _resources


def clone_to_gpu(index: faiss.Index) -> faiss.Index:
    """A GPU copy of a flat or IVF index; sharded over every GPU when there are several, so a
    corpus too large for one card still fits."""
    count = gpu_count()
    if count <= 0:
        raise RuntimeError("no GPU available for faiss")
    if count == 1:
        return faiss.index_cpu_to_gpu(_shared_resources(), 0, index)
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def clustering_index(dim: int) -> faiss.Index | None:
    """A GPU inner-product index for k-means assignment during IVF training (the expensive part
    of building an IVF index), or None on CPU."""
    if gpu_count() <= 0:
        return None
    return faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
