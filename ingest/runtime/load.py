"""Torch models built from local files only, in eval mode, in half precision on a GPU.

Both loaders take a directory that ``ingest.runtime.resolve`` has already found, so nothing
here looks anything up by name; ``local_files_only`` is a second guard against a download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.runtime.device import on_gpu
from ingest.runtime.offline import set_offline_environment
from ingest.runtime.resolve import ModelNotAvailable


def load_sentence_transformer(model_dir: Path, device: str, *, half_on_gpu: bool = True) -> Any:
    """sentence-transformers' ``SentenceTransformer`` (the embedder's module stack)."""
    set_offline_environment()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    model.eval()
    if half_on_gpu and on_gpu(device):
        model.half()
    return model


def load_cross_encoder(model_dir: Path, device: str, *, half_on_gpu: bool = True) -> Any:
    """sentence-transformers' ``CrossEncoder`` (the reranker); ``ModelNotAvailable`` when the
    directory's files cannot be loaded."""
    set_offline_environment()
    from sentence_transformers import CrossEncoder

    try:
        encoder = CrossEncoder(str(model_dir), device=device, local_files_only=True)
    except OSError as error:
        raise ModelNotAvailable(f"cannot load the model in {model_dir}: {error}") from error
    encoder.eval()
    if half_on_gpu and on_gpu(device):
        encoder.half()
    return encoder
