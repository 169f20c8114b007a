"""Sort helpers of the graph code, and the chunked cosines of the builder."""

from __future__ import annotations

import numpy as np
import pytest

import recsys.graph.build as build
from recsys.graph._arrays import stable_order, unique, unique_counts, unique_inverse


@pytest.mark.parametrize("n_keys", [1, 7, 1 << 16, (1 << 16) + 1, 1_000_003])
def test_stable_order_is_a_stable_sort(n_keys: int) -> None:
    # Both paths (16-bit radix, counting sort) and heavy ties: equal keys keep input order.
    rng = np.random.default_rng(n_keys)
    key = rng.integers(0, n_keys, 5000) // 3 * 3 % n_keys
    got = stable_order(key, n_keys)
    assert got.dtype == np.int64
    assert got.tolist() == np.argsort(key, kind="stable").tolist()
    assert stable_order(np.zeros(0, np.int64), n_keys).size == 0


def test_set_helpers_on_a_known_array() -> None:
    a = np.array([5, 1, 5, 3, 1, 5])
    assert unique(a).tolist() == [1, 3, 5]
    values, counts = unique_counts(a)
    assert values.tolist() == [1, 3, 5] and counts.tolist() == [2, 1, 3]
    values, inverse = unique_inverse(a)
    assert values[inverse].tolist() == a.tolist()


def test_chunked_cosines_round_like_one_einsum(monkeypatch) -> None:
    # Relations compare scores to thresholds: chunking must not change a single bit.
    rng = np.random.default_rng(0)
    unit = build._normalised(rng.standard_normal((50, 16)).astype(np.float32))
    a, b = rng.integers(0, 50, 1001), rng.integers(0, 50, 1001)
    want = np.einsum("ij,ij->i", unit[a], unit[b]).astype(np.float64)
    monkeypatch.setattr(build, "_DOT_CHUNK", 64)
    got = build._row_dots(unit, a, b)
    assert got.dtype == np.float64
    assert got.tobytes() == want.tobytes()
