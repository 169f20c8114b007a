"""Top-k ranking metrics with binary relevance, vectorised over users.

Every metric takes the same inputs:

``top_ids`` : np.ndarray, shape (n_users, k_max), int
    Row ``u`` is the ranked list recommended to user ``u`` (best first), as
    item column indices of ``test``. ``-1`` pads a list shorter than
    ``k_max`` and never counts as a hit. Items in a row are assumed distinct.
``test`` : scipy.sparse.csr_matrix, shape (n_users, n_items)
    Held-out interactions; any stored non-zero is a relevant item
    (binary relevance, values ignored).
``k`` : int
    Cut-off; only the first ``k`` columns of ``top_ids`` are used
    (``k <= k_max``).

Notation for user ``u``: ``T_u`` is the set of test items, ``rel_u(i)`` is 1
if the item at rank ``i`` (1-based) is in ``T_u`` else 0, ``hits_u`` is
``sum_{i<=k} rel_u(i)`` and ``m_u = min(k, |T_u|)``.

Every metric is the unweighted mean over the users with ``|T_u| >= 1``
(users without test items are skipped, as in
``implicit.evaluation.ranking_metrics_at_k``); 0.0 when no user qualifies.

* ``precision@k = hits_u / k``
* ``recall@k    = hits_u / m_u`` (the "truncated" recall: a perfect list
  scores 1 even when ``|T_u| > k``; this is also what the README figures of
  the shared Last.fm data use)
* ``hit_ratio@k = 1 if hits_u > 0 else 0``
* ``ndcg@k      = DCG_u / IDCG_u`` with ``DCG_u = sum_{i<=k} rel_u(i) / log2(i + 1)``
  and ``IDCG_u = sum_{i<=m_u} 1 / log2(i + 1)``
* ``map@k       = (1 / m_u) * sum_{i<=k} rel_u(i) * precision_u@i``

``ndcg@k`` and ``map@k`` equal implicit's ``ndcg`` and ``map``. implicit's
``precision`` is a different quantity, the pooled
``sum_u hits_u / sum_u m_u``; :func:`relevance_matrix` gives the per-user
pieces to compute it (or any other variant) without re-ranking.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = [
    "hit_ratio_at_k",
    "map_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "relevance_matrix",
]


def relevance_matrix(
    top_ids: np.ndarray, test: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Binary relevance of each recommended slot and the test-set sizes.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
        Ranked item indices per user, ``-1`` padded.
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Held-out interactions (non-zero = relevant).
    k : int
        Cut-off, ``1 <= k <= k_max``.

    Returns
    -------
    rel : np.ndarray, shape (n_users, k), bool
        ``rel[u, i]`` is true when ``top_ids[u, i]`` is a test item of ``u``.
    n_test : np.ndarray, shape (n_users,), int64
        ``|T_u|``, the number of distinct test items of each user.
    """
    top = np.asarray(top_ids)
    if top.ndim != 2:
        raise ValueError(f"top_ids must be 2-D (n_users, k), got shape {top.shape}")
    if not 1 <= k <= top.shape[1]:
        raise ValueError(f"k must be in [1, {top.shape[1]}], got {k}")
    test = sp.csr_matrix(test)
    if top.shape[0] != test.shape[0]:
        raise ValueError(f"top_ids has {top.shape[0]} rows but test has {test.shape[0]} users")
    # Drop explicit zeros and duplicates so stored values cannot leak in.
    t = test.copy()
    t.eliminate_zeros()
    t.sum_duplicates()
    t.sort_indices()
    n_test = np.diff(t.indptr).astype(np.int64)

    top = top[:, :k].astype(np.int64, copy=False)
    n_users, n_items = t.shape
    # Membership test via sorted linear keys user * n_items + item: CSR with
    # sorted indices already yields them in increasing order, so a single
    # searchsorted answers every (user, slot) at once.
    test_keys = np.repeat(np.arange(n_users, dtype=np.int64), n_test) * n_items + t.indices
    valid = (top >= 0) & (top < n_items)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.where(valid, top, 0)
    rel = np.zeros(top.shape, dtype=bool)
    if test_keys.size:
        pos = np.minimum(np.searchsorted(test_keys, query), test_keys.size - 1)
        rel = valid & (test_keys[pos] == query)
    return rel, n_test


def _per_user(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Per-user values of every metric, for the users with a test item.

    Returns
    -------
    dict of str to np.ndarray, each shape (n_eval_users,), float64
        Keys ``precision``, ``recall``, ``hit_ratio``, ``ndcg``, ``map``.
    """
    rel, n_test = relevance_matrix(top_ids, test, k)
    keep = n_test > 0
    rel = rel[keep].astype(np.float64)
    n_test = n_test[keep]
    if rel.shape[0] == 0:
        empty = np.zeros(0)
        return {m: empty for m in ("precision", "recall", "hit_ratio", "ndcg", "map")}

    m = np.minimum(k, n_test).astype(np.float64)
    hits = rel.sum(axis=1)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    # IDCG_u is the cumulative discount up to m_u (all relevant items first).
    idcg = np.cumsum(discount)[m.astype(np.int64) - 1]
    precision_at_i = np.cumsum(rel, axis=1) / ranks
    return {
        "precision": hits / k,
        "recall": hits / m,
        "hit_ratio": (hits > 0).astype(np.float64),
        "ndcg": (rel @ discount) / idcg,
        "map": (rel * precision_at_i).sum(axis=1) / m,
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def ranking_metrics(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> dict[str, float]:
    """All metrics of this module at once (one relevance lookup).

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    dict of str to float
        ``precision``, ``recall``, ``hit_ratio``, ``ndcg``, ``map`` (as defined
        in the module docstring) and ``n_users``, the number of users averaged.
    """
    per_user = _per_user(top_ids, test, k)
    out = {name: _mean(v) for name, v in per_user.items()}
    out["n_users"] = float(per_user["ndcg"].size)
    return out


def precision_at_k(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> float:
    """Mean over evaluated users of ``hits_u / k``.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    float
    """
    return _mean(_per_user(top_ids, test, k)["precision"])


def recall_at_k(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> float:
    """Mean over evaluated users of ``hits_u / min(k, |T_u|)``.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    float
    """
    return _mean(_per_user(top_ids, test, k)["recall"])


def hit_ratio_at_k(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> float:
    """Fraction of evaluated users with at least one test item in their top ``k``.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    float
    """
    return _mean(_per_user(top_ids, test, k)["hit_ratio"])


def ndcg_at_k(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> float:
    """Mean over evaluated users of ``DCG_u / IDCG_u`` (binary gains, log2 discount).

    ``DCG_u = sum_{i=1..k} rel_u(i) / log2(i + 1)``;
    ``IDCG_u = sum_{i=1..min(k, |T_u|)} 1 / log2(i + 1)``.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    float
    """
    return _mean(_per_user(top_ids, test, k)["ndcg"])


def map_at_k(top_ids: np.ndarray, test: sp.csr_matrix, k: int) -> float:
    """Mean over evaluated users of ``AP_u@k``.

    ``AP_u@k = (1 / min(k, |T_u|)) * sum_{i=1..k} rel_u(i) * hits_u(i) / i``
    where ``hits_u(i)`` counts the hits in the first ``i`` ranks.

    Parameters
    ----------
    top_ids : np.ndarray, shape (n_users, k_max), int
    test : scipy.sparse.csr_matrix, shape (n_users, n_items)
    k : int

    Returns
    -------
    float
    """
    return _mean(_per_user(top_ids, test, k)["map"])
