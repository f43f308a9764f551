"""Cross-encoder reranking with sentence-transformers, strictly from local files.

Models are never downloaded at run time: the model must be a local directory or already sit
in the Hugging Face cache. The cache is checked with a file lookup before anything is loaded,
so a missing model is reported at once instead of after network timeouts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from service.query.rerank.base import RerankerUnavailable

DEFAULT_BATCH_SIZE = 32


def resolve_model_dir(model: str) -> Path:
    """The local directory holding ``model`` (a path, or a repo id in the local HF cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RerankerUnavailable(f"{str(path)!r} has no config.json; it is not a model directory")
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # effective when huggingface_hub is not imported yet
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except HFValidationError:
        raise RerankerUnavailable(
            f"{model!r} is neither a local model directory nor a Hugging Face model id"
        ) from None
    if not isinstance(cached, str):
        raise RerankerUnavailable(
            f"model {model!r} is not a local directory and is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); models are never downloaded at run time, so copy it "
            "there or set GROUNDWORK_RERANKER_MODEL to a local path"
        )
    return Path(cached).parent


def load_cross_encoder(model: str, directory: Path, device: str):
    """sentence-transformers' ``CrossEncoder`` from local files only, in eval mode."""
    from sentence_transformers import CrossEncoder

    try:
        encoder = CrossEncoder(str(directory), device=device, local_files_only=True)
    except OSError as error:
        raise RerankerUnavailable(f"cannot load {model!r} from {directory}: {error}") from error
    return encoder.eval()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class CrossEncoderReranker:
    """Scores (query, passage) pairs jointly; fp16 on GPU, batched."""

    def __init__(self, model, name: str, batch_size: int = DEFAULT_BATCH_SIZE):
        self._model = model
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, model: str, *, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> CrossEncoderReranker:
        device = device or default_device()
        encoder = load_cross_encoder(model, resolve_model_dir(model), device)
        if device.startswith("cuda"):
            encoder.half()
        return cls(encoder, name=f"cross-encoder:{model}", batch_size=batch_size)

    @property
    def device(self) -> str:
        return str(self._model.device)

    def rerank(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = self._model.predict(
            [(query, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))
