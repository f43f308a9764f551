"""Document-aware adjustments to fused chunk scores (pure).

Fusion ranks chunks by how well their own text matches the question. Two facts about a chunk's
document change what it is worth as evidence:

- the document the question names: a per-document score (``index.document_index``: how well
  the question's words name the document's title and context line), times a weight, is added
  to each of that document's chunks, so "NVIDIA's total net sales" prefers NVIDIA's table to
  Apple's with the same label;
- boilerplate: a chunk whose text recurs in at least ``min_documents`` documents (a legal
  notice, a social-media footer) loses a fixed penalty.

``spread_per_document`` then optionally caps how many of the first results one document may
take, for questions that span several documents or periods.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np


T = TypeVar("T")


@dataclass(frozen=True)
class DocumentAwareness:
    """The knobs, from settings: 0 weights switch a part off."""

    document_weight: float = 0.0
    document_floor: float = 0.0
    boilerplate_min_documents: int = 0
    boilerplate_penalty: float = 0.0
    document_max_named: int = 0
    document_names_only: bool = False

    @property
    def active(self) -> bool:
        return self.document_weight > 0 or (self.boilerplate_min_documents >= 2 and self.boilerplate_penalty > 0)


def per_chunk(chunk_documents: np.ndarray, document_scores: Mapping[int, float]) -> np.ndarray:
    """Each candidate's document's score (0 for a document not scored)."""
    return np.fromiter((document_scores.get(int(d), 0.0) for d in chunk_documents), dtype=np.float64,
                       count=len(chunk_documents))


def adjustments(
    chunk_documents: np.ndarray,
    chunk_shared: np.ndarray,
    document_scores: Mapping[int, float],
    awareness: DocumentAwareness,
) -> np.ndarray:
    """What to add to each candidate's fused score, given its document and how many documents
    share its text (arrays aligned with the candidates)."""
    out = np.zeros(len(chunk_documents), dtype=np.float64)
    if awareness.document_weight > 0 and document_scores:
        out += awareness.document_weight * per_chunk(chunk_documents, document_scores)
    if awareness.boilerplate_min_documents >= 2 and awareness.boilerplate_penalty > 0:
        out -= awareness.boilerplate_penalty * (np.asarray(chunk_shared) >= awareness.boilerplate_min_documents)
    return out


def spread_per_document(items: Sequence[T], document_of: Callable[[T], Hashable], max_per_document: int) -> list[T]:
    """Items in order, but no document gets more than ``max_per_document`` places until every
    other document's items are placed; the surplus follows in its own order (nothing is dropped,
    so a caller asking for k still gets k). 0 or less leaves the order alone."""
    if max_per_document <= 0:
        return list(items)
    placed: dict[Hashable, int] = {}
    head: list[T] = []
    tail: list[T] = []
    for item in items:
        document = document_of(item)
        count = placed.get(document, 0)
        (head if count < max_per_document else tail).append(item)
        placed[document] = count + 1
    return head + tail
