"""The cross-encoder reranker with its transformer run by OpenVINO on the CPU.

Tokenization, truncation and the model's score activation stay those of sentence-transformers'
``CrossEncoder``, so a score means what it means on the torch path; only the forward pass is
exported. The export is made once per model fingerprint from local files (no optimum, no
network), checked against torch before it is trusted, and kept in the export cache
(``ingest.runtime``, as the embedder's are).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.runtime.export_cache import cached_export, export_dir
from ingest.runtime.load import load_cross_encoder
from ingest.runtime.openvino import OpenVinoRequest, convert_from_torch, save_graph
from ingest.runtime.resolve import RERANKER_MODEL, resolve_model
from service.query.rerank.base import RerankerUnavailable
from service.query.rerank.cross_encoder import DEFAULT_BATCH_SIZE

log = logging.getLogger(__name__)

# Bump when the export procedure changes, so older exports are rebuilt rather than reused.
_EXPORT_RECIPE = "ov-cross-encoder-1"
# Largest |logit difference| to torch accepted at export (in f32), relative to the logits' spread.
_MAX_PROBE_DEVIATION = 0.001
_PROBE_PAIRS = [
    ("how many days of annual leave", "Employees accrue 25 days of paid annual leave per calendar year."),
    ("how many days of annual leave", "Hotels are reimbursed up to EUR 180 per night."),
    ("rotate the vpn certificate", "The VPN certificate is valid for 90 days and must be rotated before it expires."),
    ("database failover", "x"),
    ("database failover", "The failover procedure: promote the replica, check replication lag, repoint clients. " * 6),
]


def _export_complete(directory: Path) -> bool:
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return manifest.get("recipe") == _EXPORT_RECIPE and (directory / "model.xml").is_file()


def _pairs_features(encoder: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    queries, texts = zip(*pairs, strict=True)
    limit = getattr(encoder, "max_seq_length", None) or encoder.max_length  # renamed in sentence-transformers 6
    encoded = encoder.tokenizer(list(queries), list(texts), padding=True, truncation="longest_first",
                                max_length=limit, return_tensors="np")
    return {name: np.asarray(value, dtype=np.int64) for name, value in encoded.items()}


def _run(request: OpenVinoRequest, features: dict[str, np.ndarray]) -> np.ndarray:
    """Logits for tokenized pairs; tokenizers may emit inputs (token types) a model lacks."""
    return request({name: value for name, value in features.items() if name in request.input_names})


def _export(encoder: Any, staging: Path) -> None:
    import torch

    features = _pairs_features(encoder, _PROBE_PAIRS)  # padded: the mask must be traced in
    example = {name: torch.from_numpy(value) for name, value in features.items()}
    hf_model = encoder.model.eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    save_graph(convert_from_torch(Logits(hf_model).eval(), example), staging / "model.xml")

    with torch.inference_mode():
        reference = hf_model(**example).logits.float().numpy()
    # In f32 the graph must compute torch's function; run time then takes the CPU's native
    # precision (bf16 where it has it: 1.8x faster here, scores within about 1e-4).
    exported = _run(OpenVinoRequest(staging / "model.xml", 0, precision="f32"), features)
    spread = max(float(np.ptp(reference)), 1e-6)
    deviation = float(np.abs(exported - reference).max()) / spread
    if deviation > _MAX_PROBE_DEVIATION:
        raise RuntimeError(f"exported cross-encoder disagrees with torch (max deviation {deviation:.4f} of the score spread)")
    (staging / "manifest.json").write_text(json.dumps({"recipe": _EXPORT_RECIPE, "probe_deviation": deviation}, indent=2))


class OpenVinoCrossEncoderReranker:
    """Scores (query, passage) pairs jointly, the transformer on OpenVINO, length-sorted batches."""

    def __init__(self, encoder: Any, engine: OpenVinoRequest, name: str, batch_size: int = DEFAULT_BATCH_SIZE):
        import torch

        self._torch = torch
        self._encoder = encoder
        self._engine = engine
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, model: str, *, cache_dir: Path, batch_size: int = DEFAULT_BATCH_SIZE, threads: int = 0) -> OpenVinoCrossEncoderReranker:
        directory = resolve_model(model, RERANKER_MODEL)
        encoder = load_cross_encoder(directory, "cpu")
        try:
            target = export_dir(cache_dir, directory, "reranker-openvino")

            def build(staging: Path) -> None:
                log.info("exporting reranker %s to %s (one time)", model, target)
                started = time.perf_counter()
                _export(encoder, staging)
                log.info("reranker export done in %.1fs", time.perf_counter() - started)

            engine = OpenVinoRequest(cached_export(target, build, _export_complete) / "model.xml", threads)
        except Exception as error:
            raise RerankerUnavailable(
                f"cannot run {model!r} on OpenVINO ({error}); set GROUNDWORK_RERANKER_BACKEND=torch"
            ) from error
        return cls(encoder, engine, name=f"cross-encoder:{model}", batch_size=batch_size)

    @property
    def device(self) -> str:
        return "cpu"

    def rerank(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        logits = np.empty(len(texts), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            features = _pairs_features(self._encoder, [(query, texts[i]) for i in batch])
            logits[batch] = _run(self._engine, features).reshape(len(batch), -1)[:, 0]
        activation = getattr(self._encoder, "activation_fn", None)
        if activation is None:
            return logits
        with self._torch.inference_mode():
            return activation(self._torch.from_numpy(logits)).numpy().astype(np.float32)
