"""The contract every ``Embedder`` honours, run against each implementation and backend.

Indexing and retrieval code is tested with the fast ``HashEmbedder``; this suite is what makes
that substitution sound. Backends whose optional packages are missing are skipped.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

from ingest.embedder import Embedder, combine_fingerprint, pad_batch, plan_batches
from ingest.embedder_hash import HashEmbedder


@dataclass(frozen=True)
class Case:
    make: Callable[..., Embedder]
    real_model: bool  # has meaning, not just word overlap
    needs: tuple[str, ...] = ()


def _st(backend: str = "torch", quantization: str = "none") -> Callable[..., Embedder]:
    def make(cache_dir) -> Embedder:
        from ingest.embedder_st import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            "all-MiniLM-L6-v2", device="cpu", backend=backend, quantization=quantization, cache_dir=cache_dir
        )

    return make


CASES = {
    "hash": Case(lambda cache_dir: HashEmbedder(), real_model=False),
    "st-torch": Case(_st(), real_model=True, needs=("sentence_transformers",)),
    "st-onnx": Case(_st("onnx"), real_model=True, needs=("onnxruntime", "onnx")),
    "st-onnx-int8": Case(_st("onnx", "int8"), real_model=True, needs=("onnxruntime", "onnx")),
    "st-openvino": Case(_st("openvino"), real_model=True, needs=("openvino",)),
    "st-openvino-int8": Case(_st("openvino", "int8"), real_model=True, needs=("openvino", "nncf")),
}

MIXED_TEXTS = [
    "Short.",
    "",
    "   ",
    "A medium-length sentence about resetting a forgotten password from the login page.",
    "Ünïcödé text — with dashes, émojis 🙂 and 数字 mixed in.",
    " ".join(["A very long paragraph that keeps going and going."] * 60),
    "Two words",
    "The quarterly report shows revenue growth in every region except the north-west, "
    "where a supply shortage delayed two product launches into the next quarter.",
]


@pytest.fixture(scope="module")
def _instances(tmp_path_factory):
    made: dict[str, Embedder] = {}
    cache_dir = tmp_path_factory.mktemp("exported-models")

    def get(case_id: str, fresh: bool = False) -> Embedder:
        case = CASES[case_id]
        if fresh:
            return case.make(cache_dir)
        if case_id not in made:
            made[case_id] = case.make(cache_dir)
        return made[case_id]

    return get


def _missing(case: Case) -> list[str]:
    return [name for name in case.needs if importlib.util.find_spec(name) is None]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(case_id, marks=pytest.mark.skipif(bool(_missing(case)), reason=f"{case_id} needs {', '.join(_missing(case))}"))
        for case_id, case in CASES.items()
    ],
)
def case_id(request) -> str:
    return request.param


@pytest.fixture
def embedder(_instances, case_id) -> Embedder:
    return _instances(case_id)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@contextmanager
def _batching(embedder: Embedder, batch_size: int, batch_tokens: int):
    """Temporarily change batching on implementations that batch at all."""
    if not hasattr(embedder, "batch_size"):
        yield
        return
    saved = embedder.batch_size, embedder.batch_tokens
    embedder.batch_size, embedder.batch_tokens = batch_size, batch_tokens
    try:
        yield
    finally:
        embedder.batch_size, embedder.batch_tokens = saved


# --- the contract -------------------------------------------------------------------------


def test_satisfies_protocol(embedder):
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.model_name, str) and embedder.model_name
    assert isinstance(embedder.dimension, int) and embedder.dimension > 0
    assert isinstance(embedder.max_seq_length, int) and embedder.max_seq_length > 2
    assert isinstance(embedder.device, str) and embedder.device.split(":")[0] in {"cpu", "cuda"}
    assert len(embedder.fingerprint) == 64 and int(embedder.fingerprint, 16) >= 0


def test_submit_query_gives_the_query_vector(embedder):
    """The async-friendly entry the service's search awaits: same vector as embed_queries."""
    vector = embedder.submit_query("how many vacation days").result(timeout=60)
    np.testing.assert_allclose(vector, embedder.embed_queries(["how many vacation days"])[0], atol=1e-5)


def test_tokenizer_path_loads_a_tokenizer(embedder):
    path = embedder.tokenizer_path()
    if path is None:
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    assert len(tokenizer("two words")["input_ids"]) > 2


def test_shape_and_dtype(embedder):
    for embed in (embedder.embed_documents, embedder.embed_queries):
        vectors = embed(["first text", "second, longer text with more words in it"])
        assert vectors.shape == (2, embedder.dimension)
        assert vectors.dtype == np.float32
        assert np.isfinite(vectors).all()


def test_rows_are_unit_length(embedder):
    for embed in (embedder.embed_documents, embedder.embed_queries):
        norms = np.linalg.norm(embed(MIXED_TEXTS), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@pytest.mark.parametrize("method", ["embed_documents", "embed_queries"])
def test_empty_input_gives_empty_matrix(embedder, method):
    vectors = getattr(embedder, method)([])
    assert vectors.shape == (0, embedder.dimension)
    assert vectors.dtype == np.float32


def test_order_preserved_with_mixed_lengths(embedder):
    together = embedder.embed_documents(MIXED_TEXTS)
    permutation = list(range(len(MIXED_TEXTS)))
    random.Random(3).shuffle(permutation)
    shuffled = embedder.embed_documents([MIXED_TEXTS[i] for i in permutation])
    assert _cosines(shuffled, together[permutation]).min() > 1 - 1e-5


def test_vectors_do_not_depend_on_batching(embedder):
    with _batching(embedder, batch_size=64, batch_tokens=16384):
        large = embedder.embed_documents(MIXED_TEXTS)
    with _batching(embedder, batch_size=1, batch_tokens=16384):
        single = embedder.embed_documents(MIXED_TEXTS)
    with _batching(embedder, batch_size=64, batch_tokens=300):  # the token budget splits batches
        budgeted = embedder.embed_documents(MIXED_TEXTS)
    one_by_one = np.vstack([embedder.embed_documents([text]) for text in MIXED_TEXTS])
    for other in (single, budgeted, one_by_one):
        assert _cosines(large, other).min() > 1 - 1e-5


def test_deterministic(embedder):
    first = embedder.embed_documents(MIXED_TEXTS)
    second = embedder.embed_documents(MIXED_TEXTS)
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_text_beyond_the_sequence_limit_is_ignored(embedder):
    head = " ".join(f"word{i}" for i in range(embedder.max_seq_length + 50))
    vectors = embedder.embed_documents([head, head + " an entirely different ending about volcanoes"])
    assert _cosines(vectors[:1], vectors[1:]).min() > 1 - 1e-5


def test_fingerprint_stable_across_instances(_instances, case_id, embedder):
    again = _instances(case_id, fresh=True)
    assert again.fingerprint == embedder.fingerprint
    np.testing.assert_allclose(again.embed_documents(MIXED_TEXTS[:3]), embedder.embed_documents(MIXED_TEXTS[:3]), atol=1e-6)


def test_fingerprint_differs_for_a_different_model(embedder):
    others = {HashEmbedder(seed=1).fingerprint, HashEmbedder(model_name="other-hash").fingerprint,
              HashEmbedder(dimension=embedder.dimension + 1).fingerprint}
    assert embedder.fingerprint not in others


def test_fingerprint_records_quantization(embedder):
    quantization = getattr(embedder, "quantization", "none")
    weights = getattr(embedder, "weights_fingerprint", embedder.fingerprint)
    assert (embedder.fingerprint == weights) == (quantization == "none")


LEXICAL = [
    ("how do I reset my password",
     "To reset your password, open the account page and choose reset password.",
     "The cafeteria serves lunch from noon until two on weekdays."),
    ("quarterly revenue growth",
     "Revenue growth this quarter came mostly from new subscriptions.",
     "The hiking trail closes after heavy snowfall in the mountains."),
]
SEMANTIC = [
    ("what should I feed my cat", "Nutrition guide for feline pets: choosing the right food.",
     "The central bank raised interest rates by half a point."),
    ("symptoms of the flu", "Influenza typically causes fever, aches, cough and fatigue.",
     "Our office will be closed on the public holiday."),
]


def test_relevant_document_ranks_above_irrelevant(embedder, case_id):
    cases = LEXICAL + (SEMANTIC if CASES[case_id].real_model else [])
    for query, relevant, irrelevant in cases:
        q = embedder.embed_queries([query])[0]
        docs = embedder.embed_documents([relevant, irrelevant])
        scores = docs @ q
        assert scores[0] > scores[1], (query, scores)


# --- sentence-transformers specifics ------------------------------------------------------


def test_missing_backend_packages_give_a_clear_error(monkeypatch):
    pytest.importorskip("sentence_transformers")
    from ingest import embedder_st

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in {"onnxruntime", "onnx", "openvino", "nncf"} else real_find_spec(name, *a))
    with pytest.raises(embedder_st.BackendUnavailable, match="onnxruntime"):
        embedder_st.SentenceTransformerEmbedder(backend="onnx", device="cpu")
    with pytest.raises(embedder_st.BackendUnavailable, match="openvino"):
        embedder_st.SentenceTransformerEmbedder(backend="openvino", device="cpu")


@pytest.mark.parametrize(
    ("backend", "quantization", "device", "installed", "expected"),
    [
        ("auto", "none", "cuda", {"openvino", "onnx"}, ("torch", "none")),
        ("auto", "none", "cpu", set(), ("torch", "none")),
        ("auto", "none", "cpu", {"openvino", "onnx"}, ("openvino", "none")),
        ("auto", "none", "cpu", {"onnx"}, ("onnx", "none")),
        ("auto", "int8", "cpu", {"onnx"}, ("onnx", "int8")),
        ("auto", "int8", "cpu", set(), ("openvino", "int8")),  # then fails naming the packages
        ("onnx", "int8", "cpu", {"onnx"}, ("onnx", "int8")),
        ("torch", "none", "cpu", {"openvino"}, ("torch", "none")),
    ],
)
def test_resolve_backend(monkeypatch, backend, quantization, device, installed, expected):
    from ingest import embedder_st
    from ingest.runtime import device as runtime_device

    monkeypatch.setattr(runtime_device, "backend_installed", lambda name, quant="none": name in installed)
    assert embedder_st.resolve_backend(backend, quantization, device) == expected


@pytest.mark.parametrize(("backend", "device"), [("torch", "cpu"), ("auto", "cuda"), ("onnx", "cuda:0")])
def test_int8_is_a_cpu_option_of_exported_backends(backend, device):
    from ingest.embedder_st import resolve_backend

    with pytest.raises(ValueError, match="int8"):
        resolve_backend(backend, "int8", device)


def test_gpu_takes_its_own_batch_limits():
    from ingest.embedder_st import batch_limits

    assert batch_limits("cuda", 64, 16384, 512, 131072) == (512, 131072)
    assert batch_limits("cuda:1", 64, 16384, None, None) == (64, 16384)
    assert batch_limits("cpu", 64, 16384, 512, 131072) == (64, 16384)


# --- shared helpers -----------------------------------------------------------------------


def test_plan_batches_covers_every_input_once_within_caps():
    rng = random.Random(5)
    lengths = np.array([rng.randint(1, 300) for _ in range(500)])
    batches = plan_batches(lengths, batch_size=32, batch_tokens=2048)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 32
        assert len(batch) == 1 or lengths[batch].max() * len(batch) <= 2048
    maxima = [lengths[batch].max() for batch in batches]
    assert maxima == sorted(maxima, reverse=True)


def test_plan_batches_gives_an_oversized_input_its_own_batch():
    batches = plan_batches([10, 5000, 10], batch_size=8, batch_tokens=1000)
    assert [b.tolist() for b in batches] == [[1], [0, 2]]


def test_pad_batch_lays_rows_out_left_aligned():
    ids, mask = pad_batch(np.array([7, 8, 9, 4, 5]), np.array([3, 2]), pad_id=0)
    assert ids.tolist() == [[7, 8, 9], [4, 5, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_combine_fingerprint_is_order_sensitive():
    assert combine_fingerprint("a", "b") != combine_fingerprint("b", "a")
    assert combine_fingerprint("a", "b") == combine_fingerprint("a", "b")


def test_tokenizing_text_by_text_gives_the_batch_ids():
    """A one-thread embedder (the server's query model) tokenizes text by text instead of
    fanning out to a thread pool; the ids must be the same."""
    from ingest.embedder_st import _FastTokenizer
    from ingest.runtime.resolve import resolve_model

    texts = ["What is the API rate limit?", "Ünïcödé and emoji 🚀 survive", "x " * 600, ""]
    tokenizer = _FastTokenizer.from_file(resolve_model("all-MiniLM-L6-v2") / "tokenizer.json", 0, 256)
    parallel = tokenizer.encode(texts)
    tokenizer.parallel = False
    sequential = tokenizer.encode(texts)
    assert all(np.array_equal(a, b) for a, b in zip(sequential[:2], parallel[:2])) and sequential[2] == parallel[2] == 1
