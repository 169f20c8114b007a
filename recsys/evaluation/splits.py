"""Per-user random holdout splits for offline evaluation.

Both functions apply the same rule, one to a sparse user x item matrix and one
to the rows of a ``plays``-like table:

* a user with at least ``min_items`` items gets
  ``n_test = clip(floor(test_fraction * n + 0.5), 1, n - 1)`` of them, chosen
  uniformly at random without replacement, moved to the test side;
* a user with fewer than ``min_items`` items keeps everything in train (they
  still help the model learn item factors but are not evaluated).

The draw is vectorised: every interaction gets one uniform random key, the
interactions are sorted by (user, key), and the first ``n_test`` of each user
go to test. No Python loop over users, so it scales to millions of rows.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["holdout_frame", "random_holdout"]


def _n_test(counts: np.ndarray, test_fraction: float, min_items: int) -> np.ndarray:
    """Number of held-out items per user.

    Parameters
    ----------
    counts : np.ndarray, shape (n_users,), int
        Items per user.
    test_fraction, min_items
        See :func:`random_holdout`.

    Returns
    -------
    np.ndarray, shape (n_users,), int64
        0 for users below ``min_items``; otherwise the rounded fraction, kept
        in ``[1, n - 1]`` so every evaluated user has a test item and keeps at
        least one train item (a user with no train items has no profile).
    """
    counts = np.asarray(counts, dtype=np.int64)
    # floor(x + 0.5) rather than np.rint: round-half-up is easier to state
    # than numpy's round-half-to-even.
    n = np.floor(test_fraction * counts + 0.5).astype(np.int64)
    n = np.clip(n, 1, np.maximum(counts - 1, 1))
    n[(counts < min_items) | (counts < 2)] = 0
    return n


def _holdout_mask(
    user_codes: np.ndarray,
    n_users: int,
    *,
    test_fraction: float,
    min_items: int,
    random_state: int | np.random.Generator | None,
) -> np.ndarray:
    """Boolean mask over interactions: ``True`` where the row goes to test.

    Parameters
    ----------
    user_codes : np.ndarray, shape (n_rows,), int
        Dense user index in ``[0, n_users)`` of each interaction.
    n_users : int
        Number of users (length of the count vector).
    test_fraction, min_items, random_state
        See :func:`random_holdout`.

    Returns
    -------
    np.ndarray, shape (n_rows,), bool
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if min_items < 2:
        raise ValueError(
            f"min_items must be >= 2 (a test user needs a train item), got {min_items}"
        )
    rng = np.random.default_rng(random_state)
    user_codes = np.asarray(user_codes, dtype=np.int64)
    counts = np.bincount(user_codes, minlength=n_users)
    n_test = _n_test(counts, test_fraction, min_items)

    # One random key per interaction; sorting by (user, key) shuffles the rows
    # of each user independently in one pass.
    keys = rng.random(user_codes.shape[0])
    order = np.lexsort((keys, user_codes))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sorted_users = user_codes[order]
    rank = np.arange(order.shape[0]) - starts[sorted_users]
    mask = np.zeros(user_codes.shape[0], dtype=bool)
    mask[order] = rank < n_test[sorted_users]
    return mask


def random_holdout(
    user_items: sp.csr_matrix,
    *,
    test_fraction: float = 0.2,
    min_items: int = 5,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split the non-zeros of a user x item matrix into train and test, per user.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Interactions (any values; explicit zeros are dropped first).
    test_fraction : float, default 0.2
        Fraction of each eligible user's items held out, rounded half up, at
        least 1 and at most ``n - 1``.
    min_items : int, default 5
        Users with fewer non-zeros than this keep all of them in train and get
        an empty test row.
    random_state : int, numpy Generator or None, default 0
        Seed for :func:`numpy.random.default_rng`; the same seed and input
        give the same split.

    Returns
    -------
    train, test : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Disjoint, with ``train + test == user_items``; values are carried over
        unchanged, indices sorted.
    """
    x = sp.csr_matrix(user_items, copy=True)
    x.eliminate_zeros()
    x.sum_duplicates()
    x.sort_indices()
    n_users = x.shape[0]
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(x.indptr))
    mask = _holdout_mask(
        rows,
        n_users,
        test_fraction=test_fraction,
        min_items=min_items,
        random_state=random_state,
    )

    def part(m: np.ndarray) -> sp.csr_matrix:
        out = sp.csr_matrix((x.data[m], (rows[m], x.indices[m])), shape=x.shape, dtype=x.dtype)
        out.sort_indices()
        return out

    train, test = part(~mask), part(mask)
    logger.debug(
        "holdout: %d train / %d test non-zeros, %d users evaluated",
        train.nnz,
        test.nnz,
        int((np.diff(test.indptr) > 0).sum()),
    )
    return train, test


def holdout_frame(
    df: pd.DataFrame,
    user_col: str,
    item_col: str,
    *,
    test_fraction: float = 0.2,
    min_items: int = 5,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the rows of an interaction table per user, like :func:`random_holdout`.

    Parameters
    ----------
    df : pandas.DataFrame, shape (n_rows, n_cols)
        One row per (user, item) pair, e.g. the contract's ``plays`` table.
        Rows are assumed unique on ``(user_col, item_col)``; a user's item
        count is their number of rows.
    user_col, item_col : str
        Column names of the user and item ids. ``item_col`` is only checked
        for presence; the draw is over rows.
    test_fraction, min_items, random_state
        As in :func:`random_holdout`. The same seed gives the same split of
        the same frame (not necessarily the same split as the matrix version).

    Returns
    -------
    train, test : pandas.DataFrame
        Row subsets of ``df`` (original index and column order kept); every
        row is in exactly one of them.
    """
    for col in (user_col, item_col):
        if col not in df.columns:
            raise KeyError(f"column {col!r} not in frame")
    codes, uniques = pd.factorize(df[user_col], sort=True)
    if (codes < 0).any():
        raise ValueError(f"column {user_col!r} has missing user ids")
    mask = _holdout_mask(
        codes,
        len(uniques),
        test_fraction=test_fraction,
        min_items=min_items,
        random_state=random_state,
    )
    return df.loc[~mask], df.loc[mask]
