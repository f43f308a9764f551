"""Rank fusion of dense and keyword candidates (pure)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fused:
    id: int
    score: float
    ranks: tuple[int | None, ...]   # 1-based rank in each input list, None where absent
    scores: tuple[float | None, ...]


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[tuple[int, float]]],
    *,
    k: int = 60,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Σ w / (k + rank): robust to incomparable score scales, the usual default."""
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise ValueError("one weight per ranked list")
    return _combine(ranked_lists, lambda i, values: [weights[i] / (k + rank) for rank in range(1, len(values) + 1)], limit)


def weighted_score_fusion(
    ranked_lists: Sequence[Sequence[tuple[int, float]]],
    *,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Σ w · min-max-normalized score: uses how far ahead a candidate is, not only its rank."""
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise ValueError("one weight per ranked list")

    def contributions(i: int, values: list[float]) -> list[float]:
        lo, hi = min(values), max(values)
        span, weight = hi - lo, weights[i]
        if span > 0:
            return [weight * ((score - lo) / span) for score in values]
        return [weight * 1.0] * len(values)

    return _combine(ranked_lists, contributions, limit)


def _combine(ranked_lists, contributions, limit: int | None = None) -> list[Fused]:
    """``contributions(i, scores)`` gives list ``i``'s vote at each position. On the query path
    for every search (about 200 candidates): votes are computed a list at a time and each
    candidate is one dict entry, because per-candidate calls and lookups were most of its cost."""
    n = len(ranked_lists)
    entries: dict[int, list] = {}  # item -> [total, best rank, ranks, scores]
    for i, ranked in enumerate(ranked_lists):
        if not ranked:
            continue
        values = [float(s) for _, s in ranked]
        gains = contributions(i, values)
        seen: set[int] = set()
        for rank, ((item, _), score, gain) in enumerate(zip(ranked, values, gains), start=1):
            if item in seen:  # a list may not vote twice for one item
                continue
            seen.add(item)
            entry = entries.get(item)
            if entry is None:
                entry = entries[item] = [0.0, rank, [None] * n, [None] * n]
            elif rank < entry[1]:
                entry[1] = rank
            entry[0] += gain
            entry[2][i] = rank
            entry[3][i] = score
    # Ties broken by best rank anywhere, then id: deterministic output. Result objects are made
    # only for the head the caller keeps (retrieval keeps a few dozen of ~200 candidates).
    key = lambda item: (-entries[item][0], entries[item][1], item)  # noqa: E731
    if limit is not None and 0 <= limit < len(entries):
        order = heapq.nsmallest(limit, entries, key=key)  # same as sorted()[:limit], without sorting the tail
    else:
        order = sorted(entries, key=key)[:limit]
    return [Fused(item, entry[0], tuple(entry[2]), tuple(entry[3])) for item in order for entry in (entries[item],)]


@dataclass(frozen=True)
class FusedArrays:
    """Every fused candidate as arrays (a row per distinct id, ids ascending): what a caller
    that adjusts all scores before cutting needs, without an object per candidate. Ranks are
    1-based, 0 where the candidate is absent from a list."""

    ids: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray  # (lists, candidates)
    list_scores: np.ndarray  # (lists, candidates), NaN where absent

    def head(self, extra: np.ndarray, limit: int | None) -> list[Fused]:
        """The first ``limit`` candidates by score + ``extra``, ties by best rank then id (as
        ``_combine`` orders them), as Fused objects."""
        total = self.scores + extra if extra is not None else self.scores
        present = np.where(self.ranks > 0, self.ranks, np.iinfo(np.int64).max)
        best = present.min(axis=0) if len(self.ranks) else np.zeros(len(self.ids), dtype=np.int64)
        order = np.lexsort((self.ids, best, -total))
        if limit is not None:
            order = order[: max(limit, 0)]
        out = []
        for j in order.tolist():
            ranks = tuple(int(r) if r else None for r in self.ranks[:, j].tolist())
            scores = tuple(None if v != v else float(v) for v in self.list_scores[:, j].tolist())
            out.append(Fused(int(self.ids[j]), float(total[j]), ranks, scores))
        return out


def fused_arrays(ranked_lists: Sequence[Sequence[tuple[int, float]]], contributions: Callable[[int, np.ndarray], np.ndarray]) -> FusedArrays:
    """The sums ``_combine`` computes, in numpy: used when every candidate's score is adjusted
    before the cut (document-aware ranking), where one object per candidate of a few thousand
    cost more than the rest of the search. Sums are taken in list order, as ``_combine`` does,
    so scores are bit-identical."""
    n = len(ranked_lists)
    parts = []
    for i, ranked in enumerate(ranked_lists):
        if not ranked:
            continue
        ids = np.fromiter((item for item, _ in ranked), dtype=np.int64, count=len(ranked))
        values = np.fromiter((float(s) for _, s in ranked), dtype=np.float64, count=len(ranked))
        gains = np.asarray(contributions(i, values), dtype=np.float64)
        _, first = np.unique(ids, return_index=True)  # a list may not vote twice for one item
        parts.append((i, ids[first], values[first], gains[first], first + 1))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FusedArrays(empty, np.zeros(0), np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0)))
    every = np.concatenate([p[1] for p in parts])
    ids, inverse = np.unique(every, return_inverse=True)
    scores = np.zeros(len(ids), dtype=np.float64)
    ranks = np.zeros((n, len(ids)), dtype=np.int64)
    list_scores = np.full((n, len(ids)), np.nan)
    offset = 0
    for i, _ids, values, gains, rank in parts:
        at = inverse[offset : offset + len(_ids)]
        offset += len(_ids)
        scores[at] += gains  # each list adds at most once per id, in list order
        ranks[i, at] = rank
        list_scores[i, at] = values
    return FusedArrays(ids, scores, ranks, list_scores)


def weighted_contributions(weights: Sequence[float]) -> Callable[[int, np.ndarray], np.ndarray]:
    """``weighted_score_fusion``'s votes, over an array."""

    def contributions(i: int, values: np.ndarray) -> np.ndarray:
        lo, hi = float(values.min()), float(values.max())
        span, weight = hi - lo, weights[i]
        if span > 0:
            return weight * ((values - lo) / span)
        return np.full(len(values), weight * 1.0)

    return contributions


def reciprocal_contributions(weights: Sequence[float], k: int) -> Callable[[int, np.ndarray], np.ndarray]:
    """``reciprocal_rank_fusion``'s votes, over an array."""
    return lambda i, values: weights[i] / (k + np.arange(1, len(values) + 1, dtype=np.float64))
