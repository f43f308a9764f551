"""The embedding interface every backend implements, and the pieces they share.

Indexes record the ``fingerprint`` of the embedder that built them: vectors from two different
models (or from a quantized copy of one) live in different spaces, and comparing across them
gives confident nonsense instead of an error (``index.indexset`` refuses such an index).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """What ingestion and search need from a model. Implementations subclass it explicitly,
    which gives them the default ``submit_query``."""

    model_name: str
    dimension: int
    max_seq_length: int
    fingerprint: str
    device: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dimension), each row L2-normalized."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``embed_documents``; models with asymmetric prompts apply the query prompt."""
        ...

    def tokenizer_path(self) -> Path | None:
        """A local directory a Hugging Face tokenizer can be loaded from, for chunk budgeting."""
        ...

    def submit_query(self, text: str) -> Future[np.ndarray]:
        """One query's vector as a future, so that an async caller can wait for it without
        holding a thread. This default computes it now, on the caller's thread, into a done
        future; the server's batching embedder returns at once and fills it from its own thread."""
        future: Future[np.ndarray] = Future()
        try:
            future.set_result(self.embed_queries([text])[0])
        except Exception as exc:
            future.set_exception(exc)
        return future


def combine_fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; an all-zero row stays zero instead of NaN."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return matrix / norms


def plan_batches(lengths: Sequence[int] | np.ndarray, *, batch_size: int, batch_tokens: int) -> list[np.ndarray]:
    """Group input indices into batches of similar length, longest first.

    Padding is what makes naive batching slow: one long text pads a whole batch to its length.
    Sorting by length keeps padding small, and capping ``max_len * n`` by ``batch_tokens``
    keeps the memory of a batch of long texts bounded while short texts still travel in full
    batches. The longest batch comes first so an out-of-memory shows up at once. A text longer
    than the whole budget gets a batch of its own.
    """
    if batch_size < 1 or batch_tokens < 1:
        raise ValueError("batch_size and batch_tokens must be positive")
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    order = np.lexsort((np.arange(len(lengths)), -lengths))  # longest first, ties by position
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        take = max(1, min(batch_size, batch_tokens // longest, len(order) - start))
        batches.append(order[start : start + take])
        start += take
    return batches


def pad_batch(flat_ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention_mask), each int64 (n, max(lengths)), from rows laid end to end in ``flat_ids``."""
    width = int(lengths.max()) if len(lengths) else 0
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)
    ids[mask] = flat_ids  # boolean assignment fills row by row, so each row gets its own prefix
    return ids, mask.astype(np.int64)
