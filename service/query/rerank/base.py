"""The Reranker protocol and its one error.

Reranking is an optional quality step: when its model is missing, search still works on fused
first-stage scores. The implementations import this module; only ``factory`` imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from index.errors import ModelUnavailable


class RerankerUnavailable(ModelUnavailable, RuntimeError):
    """The configured reranker model cannot be loaded from local files."""


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text (float32, shape ``(len(texts),)``), higher = better."""
        ...
