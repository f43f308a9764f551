"""Optional faiss GPU acceleration.

faiss-cpu is the default dependency; the ``gpu`` extra swaps in a CUDA build. Everything here
degrades to "no GPU" instead of raising, so one code path serves both builds: callers ask
``gpu_enabled()`` and, when it says yes, search a GPU clone of the CPU index they keep as the
source of truth (HNSW has no GPU implementation, so only flat and IVF indexes are cloned).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import faiss

log = logging.getLogger(__name__)

_notice_lock = threading.Lock()
_cpu_notice_logged = False
_resources = None
_kernels_run: bool | None = None

# A one-vector search on the GPU, run in a child process (see ``gpu_runs``).
_PROBE_CODE = (
    "import faiss, numpy as np; x = np.eye(8, dtype='float32'); "
    "index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, faiss.IndexFlatIP(8)); "
    "index.add(x); assert index.search(x[:1], 1)[1][0, 0] == 0"
)
# The probe imports faiss and starts CUDA: seconds, never minutes, on a working machine.
_PROBE_TIMEOUT_S = 120


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


def gpu_runs() -> bool:
    """Whether this faiss build can run its kernels on this GPU, checked once per process.

    A build without code for the card's architecture (seen: faiss-gpu-cu12 1.14 on an H100,
    "no kernel image is available") fails a faiss assertion on its first search, and that
    aborts the whole process rather than raising. So the first search runs in a child process,
    and the service stays on the CPU if the child dies."""
    global _kernels_run
    with _notice_lock:
        if _kernels_run is None:
            try:
                probe = subprocess.run([sys.executable, "-c", _PROBE_CODE], capture_output=True, text=True,
                                       timeout=_PROBE_TIMEOUT_S)
                _kernels_run = probe.returncode == 0
                reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            except (OSError, subprocess.TimeoutExpired) as exc:
                _kernels_run, reason = False, str(exc)
            if not _kernels_run:
                log.warning("faiss sees a GPU but cannot search on it (%s); using CPU", reason)
        return _kernels_run


def gpu_enabled(use_gpu: bool) -> bool:
    """Whether to put indexes on GPU; says once per process why not when the answer is no."""
    if not use_gpu:
        return False
    if gpu_count() == 0:
        _log_cpu_once()
        return False
    return gpu_runs()


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
