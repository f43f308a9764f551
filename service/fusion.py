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
) -> list[Fused]:
    """Σ w / (k + rank): robust to incomparable score scales, the usual default."""
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise ValueError("one weight per ranked list")
    return _combine(ranked_lists, lambda i, rank, _score, _lo, _hi: weights[i] / (k + rank))


def weighted_score_fusion(
    ranked_lists: Sequence[Sequence[tuple[int, float]]],
    *,
    weights: Sequence[float] | None = None,
) -> list[Fused]:
    """Σ w · min-max-normalized score: uses how far ahead a candidate is, not only its rank."""
    weights = list(weights) if weights is not None else [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise ValueError("one weight per ranked list")

    def contribution(i: int, _rank: int, score: float, lo: float, hi: float) -> float:
        span = hi - lo
        return weights[i] * ((score - lo) / span if span > 0 else 1.0)

    return _combine(ranked_lists, contribution)


def _combine(ranked_lists, contribution) -> list[Fused]:
    totals: dict[int, float] = {}
    ranks: dict[int, list[int | None]] = {}
    scores: dict[int, list[float | None]] = {}
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
            totals[item] = totals.get(item, 0.0) + contribution(i, rank, float(score), lo, hi)
            ranks.setdefault(item, [None] * n)[i] = rank
            scores.setdefault(item, [None] * n)[i] = float(score)
    fused = [Fused(item, total, tuple(ranks[item]), tuple(scores[item])) for item, total in totals.items()]
    # Ties broken by best rank anywhere, then id: deterministic output.
    fused.sort(key=lambda f: (-f.score, min(r for r in f.ranks if r is not None), f.id))
    return fused
