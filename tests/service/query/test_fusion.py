"""Fusion invariants (Hypothesis) and hand-checked cases."""

from hypothesis import given, settings, strategies as st

from service.query.fusion import reciprocal_rank_fusion, weighted_score_fusion

ranked_list = st.lists(st.tuples(st.integers(0, 60), st.floats(-10, 10, allow_nan=False)), max_size=30, unique_by=lambda t: t[0]).map(
    lambda items: sorted(items, key=lambda t: -t[1])
)


def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]], k=60)
    scores = {f.id: f.score for f in fused}
    assert abs(scores[2] - (1 / 62 + 1 / 61)) < 1e-12
    assert abs(scores[1] - 1 / 61) < 1e-12
    assert abs(scores[3] - 1 / 62) < 1e-12
    assert [f.id for f in fused] == [2, 1, 3]
    assert fused[0].ranks == (2, 1)


def test_weighted_hand_computed():
    fused = weighted_score_fusion([[(1, 1.0), (2, 0.0)], [(2, 10.0), (3, 0.0)]], weights=[1.0, 2.0])
    scores = {f.id: f.score for f in fused}
    assert scores == {1: 1.0, 2: 2.0, 3: 0.0}


@settings(max_examples=300, deadline=None)
@given(ranked_list, ranked_list, st.integers(1, 100))
def test_rrf_is_a_ranking_of_the_union(a, b, k):
    fused = reciprocal_rank_fusion([a, b], k=k)
    ids = [f.id for f in fused]
    assert len(ids) == len(set(ids))
    assert set(ids) == {i for i, _ in a} | {i for i, _ in b}
    assert all(x.score >= y.score for x, y in zip(fused, fused[1:]))


@settings(max_examples=300, deadline=None)
@given(ranked_list, ranked_list)
def test_rrf_top_of_both_lists_wins(a, b):
    if not a or not b:
        return
    b = [(a[0][0], 99.0)] + [x for x in b if x[0] != a[0][0]]
    fused = reciprocal_rank_fusion([a, b])
    assert fused[0].id == a[0][0]


@settings(max_examples=200, deadline=None)
@given(ranked_list)
def test_single_list_order_is_kept(a):
    assert [f.id for f in reciprocal_rank_fusion([a])] == [i for i, _ in a]


@settings(max_examples=200, deadline=None)
@given(ranked_list, ranked_list)
def test_weighted_scores_bounded_by_weight_sum(a, b):
    for f in weighted_score_fusion([a, b], weights=[0.3, 0.7]):
        assert -1e-9 <= f.score <= 1.0 + 1e-9


@given(ranked_list, ranked_list, st.integers(0, 70))
def test_limit_is_the_head_of_the_full_ranking(a, b, limit):
    for fuse in (reciprocal_rank_fusion, weighted_score_fusion):
        assert fuse([a, b], limit=limit) == fuse([a, b])[:limit]


def test_a_list_votes_once_per_item_at_its_first_rank():
    fused = weighted_score_fusion([[(1, 3.0), (2, 2.0), (1, 1.0)], [(2, 5.0), (3, 5.0)]], limit=2)
    assert [(f.id, f.score, f.ranks, f.scores) for f in fused] == [(2, 1.5, (2, 1), (2.0, 5.0)), (1, 1.0, (1, None), (3.0, None))]
    fused = reciprocal_rank_fusion([[(1, 3.0), (1, 1.0), (2, 0.5)]], k=10)
    assert [(f.id, f.score, f.ranks) for f in fused] == [(1, 1 / 11, (1,)), (2, 1 / 13, (3,))]


_LISTS = st.lists(st.tuples(st.integers(0, 40), st.floats(-5, 5, allow_nan=False, width=32)), max_size=30)


@given(_LISTS, _LISTS, st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=41, max_size=41),
       st.sampled_from([None, 0, 3, 10]), st.booleans())
def test_the_array_fusion_matches_fusion_then_rescore_exactly(a, b, extra_by_id, limit, weighted):
    """Document-aware ranking fuses as arrays (service/query/retrieval.py); the result must be
    what fusing every candidate and re-scoring them one object at a time gives, bit for bit."""
    import numpy as np

    from dataclasses import replace

    from service.query.fusion import fused_arrays, reciprocal_contributions, weighted_contributions

    def rescore(fused, extra, limit):  # the object path it replaced: add, re-sort, cut
        items = [replace(f, score=f.score + float(x)) if x else f for f, x in zip(fused, extra.tolist())]
        items.sort(key=lambda f: (-f.score, min(r for r in f.ranks if r is not None), f.id))
        return items[:limit] if limit is not None else items

    a = sorted(a, key=lambda item: -item[1])
    b = sorted(b, key=lambda item: -item[1])
    weights = (0.7, 1.3)
    if weighted:
        reference = weighted_score_fusion([a, b], weights=weights)
        arrays = fused_arrays([a, b], weighted_contributions(weights))
    else:
        reference = reciprocal_rank_fusion([a, b], k=60, weights=weights)
        arrays = fused_arrays([a, b], reciprocal_contributions(weights, 60))
    extra_for = lambda ids: np.asarray([extra_by_id[int(i)] for i in ids], dtype=np.float64)  # noqa: E731
    expected = rescore(reference, extra_for([f.id for f in reference]), limit=limit)
    assert arrays.head(extra_for(arrays.ids), limit) == expected
