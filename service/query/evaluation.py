"""Retrieval metrics (pure): nDCG@k, recall@k, MRR@k over per-query rankings.

Admins run these on their own labelled queries, so they follow the standard definitions
(trec_eval / BEIR): graded gains, log2 discount, ideal DCG from the judged documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    if not relevant:
        return 0.0
    seen: set[str] = set()
    gains = []
    for doc in ranking:
        if doc in seen:
            continue
        seen.add(doc)
        gains.append(float(relevant.get(doc, 0.0)))
        if len(gains) == k:
            break
    ideal = sorted((float(g) for g in relevant.values() if g > 0), reverse=True)[:k]
    best = dcg(ideal)
    return dcg(gains) / best if best > 0 else 0.0


def recall_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    positives = {d for d, g in relevant.items() if g > 0}
    if not positives:
        return 0.0
    return len(positives.intersection(list(dict.fromkeys(ranking))[:k])) / len(positives)


def mrr_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    for i, doc in enumerate(list(dict.fromkeys(ranking))[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]], *, ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10) -> dict[str, float]:
    """Mean metrics over the judged queries (queries without judgements are skipped, as in BEIR)."""
    judged = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    if not judged:
        return {f"ndcg@{ndcg_k}": 0.0, f"recall@{recall_k}": 0.0, f"mrr@{mrr_k}": 0.0, "queries": 0}
    totals = {"ndcg": 0.0, "recall": 0.0, "mrr": 0.0}
    for q in judged:
        ranking = runs.get(q, [])
        totals["ndcg"] += ndcg_at_k(ranking, qrels[q], ndcg_k)
        totals["recall"] += recall_at_k(ranking, qrels[q], recall_k)
        totals["mrr"] += mrr_at_k(ranking, qrels[q], mrr_k)
    n = len(judged)
    return {f"ndcg@{ndcg_k}": totals["ndcg"] / n, f"recall@{recall_k}": totals["recall"] / n, f"mrr@{mrr_k}": totals["mrr"] / n, "queries": n}
