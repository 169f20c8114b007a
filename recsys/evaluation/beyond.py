"""Beyond accuracy: coverage, pool compliance, diversity and novelty of top-k lists.

Lists are catalogue track rows, shape (n_users, k), padded with -1.
"""

from __future__ import annotations

import numpy as np


def _valid(top: np.ndarray) -> np.ndarray:
    return top[top >= 0]


def catalogue_coverage(top: np.ndarray, pool_size: int) -> float:
    """Distinct tracks recommended to anyone, as a share of the pool."""
    return float(len(np.unique(_valid(top))) / pool_size) if pool_size else 0.0


def pool_compliance(top: np.ndarray, in_pool: np.ndarray) -> float:
    """Share of recommended items inside the trusted pool (must be 1.0)."""
    items = _valid(top)
    return float(in_pool[items].mean()) if len(items) else 1.0


def intra_list_diversity(top: np.ndarray, track_vectors: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance between their items.

    Parameters
    ----------
    track_vectors
        Unit vectors per catalogue track, shape (n_tracks, d) (zero rows for
        tracks without one: they count as orthogonal).
    """
    values = []
    for row in top:
        items = row[row >= 0]
        if len(items) < 2:
            continue
        v = track_vectors[items]
        sim = v @ v.T
        n = len(items)
        mean_sim = (sim.sum() - np.trace(sim)) / (n * (n - 1))
        values.append(1.0 - mean_sim)
    return float(np.mean(values)) if values else 0.0


def novelty(top: np.ndarray, listeners: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(p)`` of recommended items, ``p`` = share of users who heard it."""
    items = _valid(top)
    if not len(items) or n_users <= 0:
        return 0.0
    p = np.maximum(listeners[items], 1) / n_users
    return float(np.mean(-np.log2(p)))
