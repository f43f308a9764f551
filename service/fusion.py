"""Rank fusion of dense and keyword candidates (pure)."""

from __future__ import annotations

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
    return _combine(ranked_lists, lambda i, rank, _score, _lo, _hi: weights[i] / (k + rank), limit)


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

    def contribution(i: int, _rank: int, score: float, lo: float, hi: float) -> float:
        span = hi - lo
        return weights[i] * ((score - lo) / span if span > 0 else 1.0)

    return _combine(ranked_lists, contribution, limit)


def _combine(ranked_lists, contribution, limit: int | None = None) -> list[Fused]:
    totals: dict[int, float] = {}
    ranks: dict[int, list[int | None]] = {}
    scores: dict[int, list[float | None]] = {}
    best_rank: dict[int, int] = {}
    n = len(ranked_lists)
    for i, ranked in enumerate(ranked_lists):
        if not ranked:
            continue
        values = [float(s) for _, s in ranked]
        lo, hi = min(values), max(values)
        seen: set[int] = set()
        for rank, (item, score) in enumerate(ranked, start=1):
            if item in seen:  # a list may not vote twice for one item
                continue
            seen.add(item)
            score = float(score)
            totals[item] = totals.get(item, 0.0) + contribution(i, rank, score, lo, hi)
            if item not in ranks:
                ranks[item], scores[item], best_rank[item] = [None] * n, [None] * n, rank
            elif rank < best_rank[item]:
                best_rank[item] = rank
            ranks[item][i] = rank
            scores[item][i] = score
    # Ties broken by best rank anywhere, then id: deterministic output. Result objects are made
    # only for the head the caller keeps (retrieval keeps a few dozen of ~200 candidates).
    order = sorted(totals, key=lambda item: (-totals[item], best_rank[item], item))
    if limit is not None:
        order = order[:limit]
    return [Fused(item, totals[item], tuple(ranks[item]), tuple(scores[item])) for item in order]
