"""A deterministic, model-free embedder for tests that need vectors but not meaning.

Each word is hashed to a signed bucket, so texts sharing words get similar vectors and a query
still finds documents that contain its words, which is enough to exercise indexing, fusion and
ranking code in milliseconds and without model files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ingest.embedder import Embedder, combine_fingerprint

_WORD = re.compile(r"\w+")
_RECIPE_VERSION = "hash-embedder-v1"


class HashEmbedder(Embedder):
    device = "cpu"

    def __init__(
        self,
        *,
        model_name: str = "hash-embedder",
        dimension: int = 384,
        seed: int = 0,
        max_seq_length: int = 256,
    ):
        if dimension < 2:
            raise ValueError("dimension must be at least 2")
        self.model_name = model_name
        self.dimension = dimension
        self.max_seq_length = max_seq_length
        self._key = hashlib.sha256(f"{model_name}\x1f{seed}".encode()).digest()[:32]
        self.fingerprint = combine_fingerprint(_RECIPE_VERSION, model_name, str(seed), str(dimension), str(max_seq_length))
        self._buckets: dict[str, tuple[int, float]] = {}
        # Plays the part of a [CLS] token: keeps empty texts at a defined unit vector.
        self._anchor = self._bucket("\x00anchor")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def tokenizer_path(self) -> Path | None:
        return None

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        words_per_text = self.max_seq_length - 2  # room for the two special tokens a real model adds
        for row, text in enumerate(texts):
            index, sign = self._anchor
            out[row, index] += 0.5 * sign
            for word in _WORD.findall(text.lower())[:words_per_text]:
                index, sign = self._bucket(word)
                out[row, index] += sign
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def _bucket(self, word: str) -> tuple[int, float]:
        hit = self._buckets.get(word)
        if hit is None:
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8, key=self._key).digest()
            value = int.from_bytes(digest, "little")
            hit = (value % self.dimension, 1.0 if (value >> 63) & 1 else -1.0)
            if len(self._buckets) < 1_000_000:
                self._buckets[word] = hit
        return hit
