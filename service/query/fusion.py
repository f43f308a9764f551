"""Rank fusion of dense and keyword candidates (pure)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


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
