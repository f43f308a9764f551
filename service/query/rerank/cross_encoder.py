"""Cross-encoder reranking on torch with sentence-transformers, strictly from local files.

The model is found by ``ingest.runtime.resolve`` (a local directory or the Hugging Face cache,
never downloaded) and loaded by ``ingest.runtime.load`` (fp16 on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.runtime.device import pick_device
from ingest.runtime.load import load_cross_encoder
from ingest.runtime.resolve import RERANKER_MODEL, resolve_model

DEFAULT_BATCH_SIZE = 32


class CrossEncoderReranker:
    """Scores (query, passage) pairs jointly; fp16 on GPU, batched."""

    def __init__(self, model, name: str, batch_size: int = DEFAULT_BATCH_SIZE):
        self._model = model
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, model: str, *, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> CrossEncoderReranker:
        directory = resolve_model(model, RERANKER_MODEL)
        encoder = load_cross_encoder(directory, pick_device(device, "torch"))
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
