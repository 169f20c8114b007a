"""Top-k metrics: hand-computed answers and agreement with implicit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.evaluation import (
    hit_ratio_at_k,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    random_holdout,
    ranking_metrics,
    recall_at_k,
    relevance_matrix,
)


def _test_matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


@pytest.fixture()
def tiny() -> tuple[np.ndarray, sp.csr_matrix]:
    """3 users, 6 items, k = 3.

    user 0: test {1, 4}, ranked [1, 2, 4]  -> hits at ranks 1 and 3
    user 1: test {0, 2, 3, 5}, ranked [5, -1, -1] -> hit at rank 1, list padded
    user 2: no test items -> not averaged
    """
    top = np.array([[1, 2, 4], [5, -1, -1], [0, 1, 2]])
    test = _test_matrix([[1, 4], [0, 2, 3, 5], []], 6)
    return top, test


def test_known_answers(tiny: tuple[np.ndarray, sp.csr_matrix]) -> None:
    top, test = tiny
    d = 1 / np.log2(np.arange(2, 5))  # discounts of ranks 1..3: 1, 0.631, 0.5
    # user 0: DCG = 1 + 1/log2(4); |T| = 2 so IDCG = 1 + 1/log2(3)
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])
    # user 1: DCG = 1; |T| = 4 > k so IDCG = sum of the 3 discounts
    ndcg1 = d[0] / d.sum()
    assert ndcg_at_k(top, test, 3) == pytest.approx((ndcg0 + ndcg1) / 2)
    assert ndcg0 == pytest.approx(1.5 / (1 + 1 / np.log2(3)))

    assert precision_at_k(top, test, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    # recall divides by min(k, |T|): 2/2 and 1/3
    assert recall_at_k(top, test, 3) == pytest.approx((1.0 + 1 / 3) / 2)
    assert hit_ratio_at_k(top, test, 3) == pytest.approx(1.0)
    # AP0 = (1/1 + 2/3) / 2, AP1 = (1/1) / 3
    assert map_at_k(top, test, 3) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)

    all_ = ranking_metrics(top, test, 3)
    assert all_["n_users"] == 2
    assert all_["ndcg"] == pytest.approx(ndcg_at_k(top, test, 3))
    assert all_["map"] == pytest.approx(map_at_k(top, test, 3))


def test_cutoff_uses_first_k_columns(tiny: tuple[np.ndarray, sp.csr_matrix]) -> None:
    top, test = tiny
    # k = 1: both users hit at rank 1, IDCG = 1, m_u = 1
    for fn in (ndcg_at_k, precision_at_k, recall_at_k, hit_ratio_at_k, map_at_k):
        assert fn(top, test, 1) == pytest.approx(1.0), fn.__name__
    # k = 2: user 0 hits [1, 0] with |T| = 2, user 1 hits [1, 0] with m = 2
    assert recall_at_k(top, test, 2) == pytest.approx(0.5)
    assert ndcg_at_k(top, test, 2) == pytest.approx(1 / (1 + 1 / np.log2(3)))


def test_misses_values_and_explicit_zeros() -> None:
    top = np.array([[3, 2], [0, 1]])
    # user 0's stored value 5 counts as relevant once; user 1's explicit zero does not count.
    test = sp.csr_matrix((np.array([5.0, 0.0, 1.0]), ([0, 1, 1], [3, 0, 2])), shape=(2, 4))
    rel, n_test = relevance_matrix(top, test, 2)
    assert rel.tolist() == [[True, False], [False, False]]
    assert n_test.tolist() == [1, 1]
    assert hit_ratio_at_k(top, test, 2) == pytest.approx(0.5)
    assert ndcg_at_k(top, test, 2) == pytest.approx(0.5)


def test_perfect_and_empty_rankings() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 20, 30, 5
    rows = [
        sorted(rng.choice(n_items, size=rng.integers(1, 9), replace=False)) for _ in range(n_users)
    ]
    test = _test_matrix(rows, n_items)
    top = np.full((n_users, k), -1)
    for u, items in enumerate(rows):
        top[u, : min(k, len(items))] = items[:k]
    m = ranking_metrics(top, test, k)
    assert m["ndcg"] == pytest.approx(1.0) and m["recall"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(1.0) and m["hit_ratio"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(np.mean([min(k, len(r)) / k for r in rows]))
    # no evaluated user at all
    assert ndcg_at_k(top, sp.csr_matrix((n_users, n_items)), k) == 0.0


def test_bad_inputs() -> None:
    test = sp.csr_matrix((2, 4))
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k(np.zeros((2, 3), dtype=int), test, 4)
    with pytest.raises(ValueError, match="rows"):
        ndcg_at_k(np.zeros((3, 3), dtype=int), test, 3)
    with pytest.raises(ValueError, match="2-D"):
        ndcg_at_k(np.zeros(3, dtype=int), test, 1)


def test_agrees_with_implicit_ranking_metrics() -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k

    rng = np.random.default_rng(3)
    n_users, n_items, k = 80, 50, 10
    dense = (rng.random((n_users, n_items)) < 0.25) * rng.integers(1, 20, (n_users, n_items))
    train, test = random_holdout(sp.csr_matrix(dense.astype(np.float32)), random_state=1)
    model = AlternatingLeastSquares(factors=8, iterations=5, random_state=0, num_threads=1)
    model.fit(train, show_progress=False)

    ref = ranking_metrics_at_k(model, train, test, K=k, show_progress=False)
    ids, _ = model.recommend(np.arange(n_users), train, N=k, filter_already_liked_items=True)
    ours = ranking_metrics(ids, test, k)
    assert ours["ndcg"] == pytest.approx(ref["ndcg"], rel=1e-9)
    assert ours["map"] == pytest.approx(ref["map"], rel=1e-9)
    # implicit's "precision" pools hits over sum_u min(k, |T_u|)
    rel, n_test = relevance_matrix(ids, test, k)
    pooled = rel[n_test > 0].sum() / np.minimum(k, n_test[n_test > 0]).sum()
    assert pooled == pytest.approx(ref["precision"], rel=1e-9)
