"""Metrics against hand-computed values: admins trust these numbers."""

import math

import pytest

from service.query.evaluation import evaluate, mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_perfect_and_zero():
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a": 1}, 10) == 0.0


def test_ndcg_hand_computed():
    # relevant at ranks 2 and 4 out of 2 relevant docs
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(dcg / idcg)


def test_ndcg_graded_and_cutoff():
    # graded: ideal puts grade 2 first
    got = ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10)
    expected = (1 / 1 + 2 / math.log2(3)) / (2 / 1 + 1 / math.log2(3))
    assert got == pytest.approx(expected)
    # relevant doc beyond the cutoff contributes nothing
    assert ndcg_at_k(["x", "a"], {"a": 1}, 1) == 0.0


def test_duplicates_in_ranking_count_once():
    assert ndcg_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert recall_at_k(["a", "a"], {"a": 1, "b": 1}, 1) == 0.5


def test_recall_and_mrr():
    assert recall_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1, "c": 1}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(["x", "a", "y", "b"], {"a": 1, "b": 1, "c": 1}, 100) == pytest.approx(2 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0


def test_evaluate_means_over_judged_queries():
    runs = {"q1": ["a"], "q2": ["x"], "q3": ["z"]}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {}}
    m = evaluate(runs, qrels, ndcg_k=10, recall_k=100, mrr_k=10)
    assert m["queries"] == 2
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["recall@100"] == pytest.approx(0.5)
    assert m["mrr@10"] == pytest.approx(0.5)
