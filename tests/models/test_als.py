from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.errors import ConfigError
from recsys.models import ALSModel, artist_vectors, confidence


def _blocks() -> sp.csr_matrix:
    """Two taste groups: users 0-3 play items 0-3, users 4-7 play items 4-7, one item each held out."""
    dense = np.zeros((8, 8), dtype=np.float32)
    dense[:4, :4] = 3
    dense[4:, 4:] = 3
    dense[0, 3] = 0
    dense[4, 7] = 0
    return sp.csr_matrix(dense)


def test_confidence_log1p_known_answer() -> None:
    m = sp.csr_matrix(np.array([[0, 1], [3, 0]], dtype=np.float32))
    c = confidence(m, weighting="log1p", alpha=10)
    np.testing.assert_allclose(c.toarray(), [[0, 10 * np.log(2)], [10 * np.log(4), 0]], rtol=1e-6)
    np.testing.assert_allclose(
        confidence(m, weighting="linear", alpha=2).toarray(), [[0, 2], [6, 0]]
    )


def test_als_recovers_block_structure() -> None:
    model = ALSModel(factors=4, iterations=20, regularization=0.01, random_state=1).fit(_blocks())
    scores = model.user_factors_ @ model.item_factors_.T
    # The held-out item of each user's own block outranks every item of the other block.
    assert scores[0, 3] > scores[0, 4:].max()
    assert scores[4, 7] > scores[4, :4].max()
    assert model.user_factors_.shape == (8, 4) and model.item_factors_.dtype == np.float32


def test_hyperparameters_stored_unchanged_and_validated_in_fit() -> None:
    model = ALSModel(factors=-3)
    assert model.get_params()["factors"] == -3  # stored as given, not validated yet
    with pytest.raises(ConfigError, match="factors"):
        model.fit(_blocks())
    with pytest.raises(ConfigError, match="weighting"):
        ALSModel(weighting="nope").fit(_blocks())
    with pytest.raises(ConfigError, match="empty"):
        ALSModel().fit(sp.csr_matrix((3, 3), dtype=np.float32))


def test_random_state_makes_fits_reproducible() -> None:
    a = ALSModel(factors=4, iterations=3, random_state=7, num_threads=1).fit(_blocks())
    b = ALSModel(factors=4, iterations=3, random_state=7, num_threads=1).fit(_blocks())
    np.testing.assert_allclose(a.item_factors_, b.item_factors_)


def test_artist_vectors_weighted_mean() -> None:
    items = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], dtype=np.float32)
    out = artist_vectors(items, np.array([0, 0, 2]), 3, weights=np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(out, [[2.5, 1.5], [0, 0], [5, 5]])


def test_confidence_log1p_user_known_answer() -> None:
    m = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [0, 7, 7]], dtype=np.float32))
    c = confidence(m, weighting="log1p_user", alpha=15).toarray()
    # Each user's most-played track maps to alpha; the others scale by log1p.
    np.testing.assert_allclose(c[0], [15 * np.log(2) / np.log(4), 15, 0], rtol=1e-6)
    np.testing.assert_allclose(c[1], [0, 0, 0])
    np.testing.assert_allclose(c[2], [0, 15, 15], rtol=1e-6)
