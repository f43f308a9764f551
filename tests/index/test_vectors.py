"""The vector index: correctness per kind, filtering, persistence and crash safety."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index import gpu
from index import vectors as vectors_module
from index.atomic import read_json
from index.vectors import (
    MANIFEST_NAME,
    IndexCorrupt,
    IndexMissing,
    VectorIndex,
    VectorParams,
    ideal_nlist,
    preferred_kind,
    read_manifest,
    top_k_exact,
)

KINDS = ["flat", "hnsw", "ivf"]
DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clustered(n: int, dim: int, *, centers: int = 50, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = unit(rng.standard_normal((centers, dim)))
    return unit(middle[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim) * 3)


def params(**overrides) -> VectorParams:
    base = dict(vector_use_gpu=False, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64, ivf_nprobe=16)
    base.update(overrides)
    return VectorParams(**base)


def make(kind: str, n: int = 600, dim: int = DIM, seed: int = 0, **overrides) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    x = clustered(n, dim, seed=seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 10
    index = VectorIndex.create(dim, model="test-model", model_fingerprint="fp1", kind=kind,
                               expected_size=n, params=params(**overrides))
    index.add(ids, x)
    return index, ids, x


def exact(queries: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return top_k_exact(queries, x, ids, k)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


# --- per kind basics ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_add_search_remove_readd(kind):
    index, ids, x = make(kind)
    assert index.kind == kind and index.live_count == len(ids)
    scores, found = index.search(x[:20], 5)
    assert found.shape == (20, 5) and scores.dtype == np.float32
    assert (found[:, 0] == ids[:20]).all()  # each vector is its own nearest neighbour
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)

    gone = ids[:10]
    index.remove(gone)
    assert index.live_count == len(ids) - 10
    _, found = index.search(x[:20], 10)
    assert not np.isin(found, gone).any()
    assert (found[10:, 0] == ids[10:20]).all()
    assert ids[0] not in index and ids[10] in index

    index.add(gone[:3], x[:3])
    _, found = index.search(x[:3], 1)
    assert (found[:, 0] == gone[:3]).all()
    assert index.live_count == len(ids) - 7


@pytest.mark.parametrize("kind", KINDS)
def test_readding_an_id_replaces_its_vector(kind):
    index, ids, x = make(kind)
    index.add(ids[:1], x[-1:])  # id 0 now carries the last vector
    assert index.live_count == len(ids)
    _, found = index.search(x[:1], 10)
    assert ids[0] not in found[0][:1]
    scores, found = index.search(x[-1:], 2)
    assert set(found[0]) == {ids[0], ids[-1]}
    assert np.allclose(scores[0], 1.0, atol=1e-4)
    assert len(index.live_ids()) == len(np.unique(index.live_ids()))


def test_batch_with_repeated_id_keeps_last_vector():
    index = VectorIndex.create(DIM, model="m", model_fingerprint="f", kind="flat", params=params())
    x = clustered(3, DIM)
    index.add(np.array([5, 5, 6]), x)
    assert index.live_count == 2
    _, found = index.search(x[1:2], 1)
    assert found[0, 0] == 5


def test_invalid_input_is_rejected():
    index = VectorIndex.create(DIM, model="m", model_fingerprint="f", kind="flat", params=params())
    with pytest.raises(ValueError):
        index.add(np.array([1, 2]), np.zeros((2, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add(np.array([-1]), np.zeros((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError):
        index.search(np.zeros((1, DIM), dtype=np.float32), 0)
    with pytest.raises(ValueError):
        VectorParams(vector_index_kind="annoy")


@pytest.mark.parametrize("kind", KINDS)
def test_empty_index_and_short_results_are_padded(kind):
    index = VectorIndex.create(DIM, model="m", model_fingerprint="f", kind=kind, params=params())
    scores, found = index.search(clustered(2, DIM), 4)
    assert (found == -1).all() and np.isneginf(scores).all()
    x = clustered(3, DIM)
    index.add(np.array([1, 2, 3]), x)
    scores, found = index.search(x[:1], 5)
    assert sorted(found[0][:3]) == [1, 2, 3] and (found[0][3:] == -1).all()
    assert np.isneginf(scores[0][3:]).all()
    _, found = index.search(x[:1], 5, allowed_ids=np.array([], dtype=np.int64))
    assert (found == -1).all()


# --- filtering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exact_max", [0, 10_000])
def test_filtered_search_returns_k_allowed_results(kind, exact_max):
    """Both filter strategies: the in-search selector (exact_max=0) and brute force."""
    index, ids, x = make(kind, n=1000, vector_filter_exact_max=exact_max)
    index.remove(ids[::7])
    live = np.setdiff1d(ids, ids[::7])
    allowed = live[::40]  # 2.5%: few qualify, where approximate filtered search struggles
    _, found = index.search(x[:30], 10, allowed_ids=np.concatenate([allowed, ids[::7], [99_999]]))
    assert np.isin(found, allowed).all()  # tombstoned and unknown allowed ids never come back
    assert ((found >= 0).sum(axis=1) == 10).all()
    allowed_x = x[np.isin(ids, allowed)]
    _, truth = exact(x[:30], allowed_x, ids[np.isin(ids, allowed)], 10)
    assert recall(found, truth) >= 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_filter_smaller_than_k_returns_all_allowed(kind):
    index, ids, x = make(kind, vector_filter_exact_max=0)
    allowed = ids[[3, 50, 400]]
    scores, found = index.search(x[:4], 10, allowed_ids=allowed)
    assert all(set(row[row >= 0]) == set(allowed) for row in found)
    assert (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


vector_sets = st.integers(min_value=0, max_value=2**31 - 1).flatmap(
    lambda seed: st.tuples(
        st.just(seed),
        st.integers(min_value=1, max_value=120),  # corpus size
        st.floats(min_value=0.0, max_value=1.0),  # share allowed
        st.floats(min_value=0.0, max_value=0.6),  # share removed
        st.integers(min_value=1, max_value=15),  # k
        st.sampled_from([0, 25, 10_000]),  # brute-force threshold: selector, mixed, brute force
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=vector_sets, kind=st.sampled_from(KINDS), filtered=st.booleans())
def test_property_results_allowed_live_and_exact_for_flat(case, kind, filtered):
    seed, n, allowed_share, removed_share, k, exact_max = case
    rng = np.random.default_rng(seed)
    dim = 8
    ids = rng.choice(10_000, size=n, replace=False).astype(np.int64)
    x = unit(rng.standard_normal((n, dim)))
    index = VectorIndex.create(dim, model="m", model_fingerprint="f", kind=kind, expected_size=n,
                               params=params(vector_filter_exact_max=exact_max))
    index.add(ids, x)
    removed = ids[rng.random(n) < removed_share]
    index.remove(removed)
    readded = rng.random(n) < 0.2  # some removed, some live: both must end up live, replaced
    x[readded] = unit(rng.standard_normal((int(readded.sum()), dim)))
    index.add(ids[readded], x[readded])
    removed = np.setdiff1d(removed, ids[readded])
    live_mask = ~np.isin(ids, removed)
    assert (index.live_ids() == np.sort(ids[live_mask])).all()
    allowed = ids[rng.random(n) < allowed_share] if filtered else None
    queries = unit(rng.standard_normal((4, dim)))

    scores, found = index.search(queries, k, allowed_ids=allowed)

    eligible = live_mask if allowed is None else live_mask & np.isin(ids, allowed)
    assert not np.isin(found, removed).any()
    if allowed is not None:
        assert np.isin(found[found >= 0], allowed).all()
    for row in found:
        returned = row[row >= 0]
        assert len(returned) == len(set(returned)) == min(k, int(eligible.sum()))
        assert (row[len(returned):] == -1).all()
    if kind == "flat":
        truth_scores, _ = exact(queries, x[eligible], ids[eligible], k)
        assert np.allclose(scores, truth_scores, atol=1e-5)  # equal up to ties among ids
        by_id = dict(zip(ids.tolist(), x))
        for q, row, row_scores in zip(queries, found, scores):
            for chunk_id, score in zip(row[row >= 0], row_scores):
                assert abs(float(by_id[int(chunk_id)] @ q) - score) < 1e-5


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10(kind):
    n, dim = 5000, 64
    x = clustered(n, dim, centers=100, seed=1)
    rng = np.random.default_rng(7)
    queries = unit(x[rng.choice(n, 200, replace=False)] + 0.05 * rng.standard_normal((200, dim)))
    ids = np.arange(n, dtype=np.int64)
    index = VectorIndex.create(dim, model="m", model_fingerprint="f", kind=kind, expected_size=n,
                               params=params(hnsw_m=16, hnsw_ef_search=64, ivf_nprobe=16))
    index.add(ids, x)
    _, found = index.search(queries, 10)
    _, truth = exact(queries, x, ids, 10)
    assert recall(found, truth) >= 0.9


# --- persistence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, kind, mmap):
    index, ids, x = make(kind)
    index.remove(ids[:5])
    allowed = ids[::3]
    before = index.search(x[:25], 8), index.search(x[:25], 8, allowed_ids=allowed)
    manifest = index.save(tmp_path, position=42)
    assert manifest.position == 42 and manifest.vector_count == len(ids) - 5
    assert manifest.kind == kind and manifest.dim == DIM and manifest.metric == "ip"
    assert read_manifest(tmp_path) == manifest

    loaded = VectorIndex.load(tmp_path, params=params(), mmap=mmap)
    assert (loaded.position, loaded.model, loaded.model_fingerprint, loaded.kind) == (42, "test-model", "fp1", kind)
    assert loaded.live_count == index.live_count and loaded.tombstones == index.tombstones
    after = loaded.search(x[:25], 8), loaded.search(x[:25], 8, allowed_ids=allowed)
    for (s0, i0), (s1, i1) in zip(before, after):
        assert (i0 == i1).all() and np.allclose(s0, s1)


@pytest.mark.parametrize("kind", KINDS)
def test_mmap_loaded_index_copies_before_writing(tmp_path, kind):
    index, ids, x = make(kind)
    index.save(tmp_path, position=1)
    file_bytes = (tmp_path / read_manifest(tmp_path).index_file).read_bytes()
    loaded = VectorIndex.load(tmp_path, params=params(), mmap=True)
    loaded.remove(ids[:2])
    loaded.add(np.array([10_000_000]), x[5:6])
    _, found = loaded.search(x[5:6], 2)
    assert set(found[0]) == {10_000_000, ids[5]}
    assert (tmp_path / read_manifest(tmp_path).index_file).read_bytes() == file_bytes
    again = VectorIndex.load(tmp_path, params=params())
    assert again.live_count == len(ids)


def _saved(tmp_path: Path, kind: str = "hnsw") -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    index, ids, x = make(kind)
    index.save(tmp_path, position=7)
    return index, ids, x


def test_flipped_bytes_in_index_file_raise_index_corrupt(tmp_path):
    _saved(tmp_path)
    path = tmp_path / read_manifest(tmp_path).index_file
    data = bytearray(path.read_bytes())
    for offset in (len(data) // 3, len(data) // 2):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum"):
        VectorIndex.load(tmp_path, params=params())


@pytest.mark.parametrize("field, value", [("checksum", "0" * 64), ("vector_count", 3), ("dim", 16),
                                          ("kind", "flat"), ("format_version", 99), ("index_file", "../x.faiss")])
def test_manifest_mismatch_raises_index_corrupt(tmp_path, field, value):
    _saved(tmp_path)
    manifest = read_json(tmp_path / MANIFEST_NAME)
    manifest[field] = value
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(tmp_path, params=params())


def test_garbled_missing_and_unreadable_files_raise(tmp_path):
    with pytest.raises(IndexMissing):
        VectorIndex.load(tmp_path, params=params())
    _saved(tmp_path)
    index_file = tmp_path / read_manifest(tmp_path).index_file

    good_manifest = (tmp_path / MANIFEST_NAME).read_bytes()
    (tmp_path / MANIFEST_NAME).write_bytes(good_manifest[: len(good_manifest) // 2])
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(tmp_path, params=params())
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(tmp_path, params=params())

    (tmp_path / MANIFEST_NAME).write_bytes(good_manifest)
    index_file.write_bytes(b"not a faiss index")  # consistent checksum, unreadable content
    manifest = read_json(tmp_path / MANIFEST_NAME)
    manifest["checksum"] = vectors_module.sha256_file(index_file)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="faiss"):
        VectorIndex.load(tmp_path, params=params())

    index_file.unlink()
    with pytest.raises(IndexCorrupt):
        VectorIndex.load(tmp_path, params=params())


def test_garbage_temp_file_from_interrupted_save_is_ignored_then_cleaned(tmp_path):
    index, ids, x = _saved(tmp_path)
    leftover = tmp_path / ".vectors-000000000008-deadbeef.faiss.abc123.tmp"
    leftover.write_bytes(b"\x00garbage" * 100)
    leftover_manifest = tmp_path / f".{MANIFEST_NAME}.xyz789.tmp"
    leftover_manifest.write_text('{"format_version": ')
    loaded = VectorIndex.load(tmp_path, params=params())
    assert loaded.position == 7 and loaded.live_count == len(ids)
    index.save(tmp_path, position=9)
    assert not leftover.exists() and not leftover_manifest.exists()
    assert len(list(tmp_path.glob("vectors-*.faiss"))) == 1


def test_crash_between_index_file_and_manifest_keeps_previous_version(tmp_path, monkeypatch):
    index, ids, x = _saved(tmp_path)
    before = index.search(x[:10], 5)
    index.remove(ids[:50])

    def crash(*_args, **_kwargs):
        raise OSError("killed before the manifest was written")

    monkeypatch.setattr(vectors_module, "atomic_write_json", crash)
    with pytest.raises(OSError):
        index.save(tmp_path, position=8)
    assert len(list(tmp_path.glob("vectors-*.faiss"))) == 2  # the orphan is beside the old one

    loaded = VectorIndex.load(tmp_path, params=params())
    assert loaded.position == 7 and loaded.live_count == len(ids)
    after = loaded.search(x[:10], 5)
    assert (before[1] == after[1]).all()

    monkeypatch.undo()
    index.save(tmp_path, position=8)
    assert len(list(tmp_path.glob("vectors-*.faiss"))) == 1
    assert VectorIndex.load(tmp_path, params=params()).live_count == len(ids) - 50


def test_load_retries_when_a_new_generation_lands_while_opening(tmp_path, monkeypatch):
    index, ids, _ = _saved(tmp_path)
    stale = read_manifest(tmp_path)
    index.remove(ids[:10])
    index.save(tmp_path, position=8)  # deletes the file the stale manifest names
    answers = iter([stale])
    current = vectors_module.read_manifest
    monkeypatch.setattr(vectors_module, "read_manifest", lambda d: next(answers, None) or current(d))
    loaded = VectorIndex.load(tmp_path, params=params())
    assert loaded.position == 8 and loaded.live_count == len(ids) - 10


def test_new_generation_does_not_disturb_a_reader_of_the_old_one(tmp_path):
    index, ids, x = _saved(tmp_path, kind="flat")
    reader = VectorIndex.load(tmp_path, params=params(), mmap=True)
    index.remove(ids[:100])
    index.save(tmp_path, position=8)  # deletes the file the reader maps
    _, found = reader.search(x[:3], 1)
    assert (found[:, 0] == ids[:3]).all()


# --- compaction and kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_compaction_after_many_tombstones(kind):
    index, ids, x = make(kind, compact_tombstone_ratio=0.2)
    index.remove(ids[:100])
    assert not index.needs_compaction()
    index.remove(ids[100:200])
    assert index.needs_compaction() and index.tombstones == 200
    before = index.search(x[200:230], 5)
    index.compact()
    assert index.tombstones == 0 and index.live_count == len(ids) - 200
    assert not index.needs_compaction()
    after = index.search(x[200:230], 5)
    assert (before[1][:, 0] == after[1][:, 0]).all()
    assert not np.isin(after[1], ids[:200]).any()


def test_compaction_can_take_vectors_from_the_caller():
    index, ids, x = make("hnsw")
    index.remove(ids[:300])
    by_id = dict(zip(ids.tolist(), x))
    requested: list[np.ndarray] = []

    def fetch(live: np.ndarray) -> np.ndarray:
        requested.append(live)
        return np.stack([by_id[int(i)] for i in live])

    index.compact(fetch)
    assert (requested[0] == np.sort(ids[300:])).all()
    _, found = index.search(x[300:310], 1)
    assert (found[:, 0] == ids[300:310]).all()


def test_auto_kind_follows_corpus_size():
    small = params(vector_exact_max=200)
    index = VectorIndex.create(DIM, model="m", model_fingerprint="f", expected_size=10, params=small)
    assert index.kind == "flat" and index.requested_kind == "auto"
    x = clustered(400, DIM)
    ids = np.arange(400, dtype=np.int64)
    index.add(ids, x)
    assert index.needs_compaction()
    index.compact()
    assert index.kind == vectors_module.LARGE_CORPUS_KIND
    index.remove(ids[:350])
    index.compact()
    assert index.kind == "flat" and index.live_count == 50
    assert preferred_kind(150, small, "hnsw") == "hnsw"  # hysteresis between 100 and 200
    assert preferred_kind(150, params(vector_index_kind="ivf")) == "ivf"
    forced = VectorIndex.create(DIM, model="m", model_fingerprint="f", params=params(vector_index_kind="hnsw"))
    assert forced.kind == "hnsw"


def test_ivf_trained_on_a_small_first_batch_asks_to_be_rebuilt():
    index = VectorIndex.create(DIM, model="m", model_fingerprint="f", kind="ivf", params=params())
    x = clustered(3000, DIM)
    ids = np.arange(3000, dtype=np.int64)
    index.add(ids[:100], x[:100])
    assert index.build_info["nlist"] == ideal_nlist(100)
    index.add(ids[100:], x[100:])
    assert index.needs_compaction()
    index.compact()
    assert index.build_info["nlist"] == ideal_nlist(3000)
    _, found = index.search(x[:5], 1)
    assert (found[:, 0] == ids[:5]).all()


def test_params_from_settings():
    from index.settings import Settings

    loaded = VectorParams.from_settings(Settings(hnsw_ef_search=77, vector_index_kind="ivf"))
    assert loaded.hnsw_ef_search == 77 and loaded.vector_index_kind == "ivf"
    assert loaded.vector_filter_exact_max == VectorParams().vector_filter_exact_max


def test_params_defaults_are_the_settings_defaults():
    """VectorParams repeats the vector settings' defaults: one changed in one place must be
    changed in the other."""
    import dataclasses

    from index.settings import Settings

    for field in dataclasses.fields(VectorParams):
        assert field.default == Settings.model_fields[field.name].default, field.name


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_concurrent_searches_alongside_a_writer(kind):
    index, ids, x = make(kind, n=2000)
    stable = ids[:500]  # never touched by the writer
    errors: list[BaseException] = []

    def searcher():
        try:
            for _ in range(30):
                _, found = index.search(x[:500][::25], 1, allowed_ids=stable)
                assert (found[:, 0] == stable[::25]).all()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for round_ in range(10):
        batch = ids[500 + round_ * 100: 600 + round_ * 100]
        index.remove(batch)
        index.add(batch, x[500 + round_ * 100: 600 + round_ * 100])
    for thread in threads:
        thread.join()
    assert not errors


# --- GPU ------------------------------------------------------------------------------------------


def test_cpu_path_logs_once_and_works(caplog, monkeypatch):
    monkeypatch.setattr(gpu, "_cpu_notice_logged", False)
    monkeypatch.setattr(gpu, "gpu_count", lambda: 0)
    with caplog.at_level(logging.INFO, logger="index.gpu"):
        index, ids, x = make("flat", vector_use_gpu=True)
        index.search(x[:2], 3)
        index.search(x[:2], 3)
        ivf, _, _ = make("ivf", vector_use_gpu=True)
        ivf.search(x[:2], 3)
    notices = [r for r in caplog.records if "GPU support not available" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.INFO
    assert gpu.clustering_index(DIM) is None


def test_gpu_count_is_zero_without_gpu_support(monkeypatch):
    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
    assert gpu.gpu_count() == 0
    assert gpu.gpu_enabled(True) is False
    assert gpu.gpu_enabled(False) is False


def test_a_gpu_build_that_cannot_run_its_kernels_falls_back_to_cpu(caplog, monkeypatch):
    # Regression: faiss-gpu-cu12 1.14 has no kernels for an H100, and its first GPU search
    # aborted the process. The probe runs in a child, so only the child dies.
    monkeypatch.setattr(gpu, "gpu_count", lambda: 1)
    monkeypatch.setattr(gpu, "_kernels_run", None)
    monkeypatch.setattr(gpu, "_PROBE_CODE", "import os; os.abort()")
    with caplog.at_level(logging.WARNING, logger="index.gpu"):
        assert gpu.gpu_enabled(True) is False
        assert gpu.gpu_enabled(True) is False
    warnings = [r for r in caplog.records if "cannot search on it" in r.getMessage()]
    assert len(warnings) == 1  # probed once per process
    index, ids, x = make("flat", vector_use_gpu=True)
    assert index.search(x[:2], 3)[1].shape == (2, 3)
    assert index._gpu_index is None


def test_a_gpu_that_runs_the_probe_is_used(monkeypatch):
    monkeypatch.setattr(gpu, "gpu_count", lambda: 1)
    monkeypatch.setattr(gpu, "_kernels_run", None)
    monkeypatch.setattr(gpu, "_PROBE_CODE", "pass")
    assert gpu.gpu_enabled(True) is True
    assert gpu.gpu_enabled(False) is False


@pytest.mark.skipif(gpu.gpu_count() == 0, reason="faiss has no GPU support or no GPU is present")
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_search_matches_cpu(kind):
    cpu_index, ids, x = make(kind, vector_use_gpu=False)
    gpu_index, _, _ = make(kind, vector_use_gpu=True)
    cpu_scores, cpu_ids = cpu_index.search(x[:50], 10)
    gpu_scores, gpu_ids = gpu_index.search(x[:50], 10)
    assert gpu_index._gpu_index is not None
    assert np.allclose(cpu_scores, gpu_scores, atol=1e-4)
    assert recall(gpu_ids, cpu_ids) >= 0.99


def test_single_query_threads_leave_other_threads_all_cores():
    import threading

    import faiss

    from index.vectors import serve_single_queries_on_this_thread

    before = faiss.omp_get_max_threads()
    seen: list[int] = []

    def search_thread() -> None:
        serve_single_queries_on_this_thread()
        serve_single_queries_on_this_thread()  # idempotent
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=search_thread)
    thread.start()
    thread.join()
    assert seen == [1]
    assert faiss.omp_get_max_threads() == before  # index builds elsewhere keep their threads
