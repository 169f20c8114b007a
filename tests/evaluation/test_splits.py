"""Per-user random holdout: matrix and frame versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.evaluation import holdout_frame, random_holdout


def _random_matrix(n_users: int = 300, n_items: int = 200, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    # Users with 0..40 items, so both sides of min_items occur.
    sizes = rng.integers(0, 41, n_users)
    rows = np.repeat(np.arange(n_users), sizes)
    cols = np.concatenate([rng.choice(n_items, s, replace=False) for s in sizes])
    vals = rng.integers(1, 100, rows.size).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))


def _expected_n_test(n: np.ndarray, frac: float = 0.2, min_items: int = 5) -> np.ndarray:
    out = np.clip(np.floor(frac * n + 0.5), 1, np.maximum(n - 1, 1)).astype(int)
    out[n < min_items] = 0
    return out


def test_matrix_split_properties() -> None:
    x = _random_matrix()
    train, test = random_holdout(x, test_fraction=0.2, min_items=5, random_state=0)
    assert train.shape == test.shape == x.shape
    # disjoint, and the union gives back the input with its values
    assert train.multiply(test).nnz == 0
    assert abs(train + test - x).sum() == 0
    n = np.diff(x.indptr)
    n_test = np.diff(test.indptr)
    np.testing.assert_array_equal(n_test, _expected_n_test(n))
    assert (n_test[n < 5] == 0).all()
    assert (np.diff(train.indptr)[n >= 2] >= 1).all()  # every user keeps a train item
    frac = test.nnz / x[n >= 5].nnz
    assert 0.18 < frac < 0.22


def test_matrix_split_deterministic_by_seed() -> None:
    x = _random_matrix()
    a_train, a_test = random_holdout(x, random_state=7)
    b_train, b_test = random_holdout(x, random_state=7)
    assert (a_test != b_test).nnz == 0 and (a_train != b_train).nnz == 0
    _, c_test = random_holdout(x, random_state=8)
    assert (a_test != c_test).nnz > 0


def test_matrix_split_is_random_within_user() -> None:
    # One user with 10 items: over many seeds, every item is held out sometimes.
    x = sp.csr_matrix(np.ones((1, 10), dtype=np.float32))
    held = np.zeros(10)
    for seed in range(200):
        _, test = random_holdout(x, random_state=seed)
        assert test.nnz == 2
        held[test.indices] += 1
    assert (held > 15).all()


def test_matrix_split_small_users_and_explicit_zeros() -> None:
    x = sp.csr_matrix(
        (np.array([1.0, 2.0, 0.0, 3.0, 4.0]), ([0, 0, 0, 1, 1], [0, 1, 2, 0, 3])), shape=(2, 4)
    )
    train, test = random_holdout(x, min_items=2, test_fraction=0.5, random_state=0)
    assert test.nnz == 2 and train.nnz == 2  # the explicit zero is not an item
    train, test = random_holdout(x, min_items=3, random_state=0)
    assert test.nnz == 0 and train.nnz == 4


@pytest.mark.parametrize(
    "kwargs", [{"test_fraction": 0.0}, {"test_fraction": 1.0}, {"min_items": 1}]
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        random_holdout(_random_matrix(10, 10), **kwargs)


def test_frame_split_matches_rule() -> None:
    x = _random_matrix().tocoo()
    df = pd.DataFrame(
        {
            "user_id": [f"u{r}" for r in x.row],
            "track_id": [f"t{c}" for c in x.col],
            "plays": x.data,
        },
        index=pd.RangeIndex(1000, 1000 + x.nnz),
    )
    train, test = holdout_frame(df, "user_id", "track_id", random_state=0)
    assert len(train) + len(test) == len(df)
    assert train.index.intersection(test.index).empty
    assert list(train.columns) == list(df.columns)
    pd.testing.assert_frame_equal(pd.concat([train, test]).sort_index(), df)
    n = df.groupby("user_id").size()
    got = test.groupby("user_id").size().reindex(n.index, fill_value=0)
    np.testing.assert_array_equal(got.to_numpy(), _expected_n_test(n.to_numpy()))
    again, _ = holdout_frame(df, "user_id", "track_id", random_state=0)
    pd.testing.assert_frame_equal(train, again)
    other, _ = holdout_frame(df, "user_id", "track_id", random_state=1)
    assert not train.index.equals(other.index)
    with pytest.raises(KeyError):
        holdout_frame(df, "user", "track_id")
