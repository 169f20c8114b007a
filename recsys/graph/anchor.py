"""Anchoring learned relations to the editorial graph.

Two measures of how close an artist sits to what editors chose:

``walk_scores``
    A truncated personalised PageRank from each source artist over the walk
    graph: editorial relations plus the learned k-nearest-neighbour graph.
    From an artist with editorial relations, half the walk (a setting)
    follows them, so the mass lands on the editors' choices for the artist,
    on their choices for those, and on what those artists are learned to be
    close to. A learned neighbour that the editorial neighbourhood also
    reaches is anchored; one that only the source's own learned edge
    reaches is not.
``seed_distance``
    Hops from the nearest editorially seeded artist along the walk graph's
    edges, in the direction they point. Learned edges point from an artist
    to the neighbours *it* chose, so an artist is reached only through
    other artists' evidence, never through its own: a promoted artist whose
    listening was made to look like popular artists' does not thereby get
    close to the seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

#: Sources processed at once by the walk (bounds the sparse temporaries).
WALK_CHUNK = 2048


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def walk_matrix(
    editorial: sp.csr_matrix, learned: sp.csr_matrix, editorial_share: float
) -> sp.csr_matrix:
    """Row-stochastic transition matrix of the anchoring walk.

    Parameters
    ----------
    editorial
        Editorial adjacency, shape (n, n), symmetric, 1 per relation.
    learned
        Learned k-NN graph, shape (n, n): row ``a`` holds the learned scores
        of the neighbours ``a`` chose.
    editorial_share
        Probability of following an editorial edge from an artist that has
        both kinds (an artist with one kind follows it with probability 1).

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape (n, n); rows without any edge are all zero (the walk stops).
    """
    e = _row_normalise(editorial.tocsr().astype(np.float64))
    lr = _row_normalise(learned.tocsr().astype(np.float64))
    has_e = np.diff(e.indptr) > 0
    has_l = np.diff(lr.indptr) > 0
    w_e = np.where(has_l, editorial_share, 1.0) * has_e
    w_l = np.where(has_e, 1.0 - editorial_share, 1.0) * has_l
    m = sp.diags(w_e) @ e + sp.diags(w_l) @ lr
    return sp.csr_matrix(m)


def _prune(x: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest entries of each row."""
    x = x.tocsr()
    x.sum_duplicates()
    counts = np.diff(x.indptr)
    if counts.max(initial=0) <= keep:
        return x
    rows = np.repeat(np.arange(x.shape[0]), counts)
    # One float sort on "row, then descending value" (values are in [0, 1]):
    # several times faster than a two-key lexsort on millions of entries.
    top = float(x.data.max()) if x.nnz else 1.0
    order = np.argsort(rows * 4.0 - x.data / top)
    rank = np.arange(len(order)) - np.repeat(x.indptr[:-1], counts)
    sel = order[rank < keep]
    return sp.csr_matrix((x.data[sel], (rows[sel], x.indices[sel])), shape=x.shape)


def walk_scores(
    transition: sp.csr_matrix,
    sources: np.ndarray,
    *,
    steps: int = 3,
    decay: float = 0.5,
    keep: int = 300,
    first_step: int = 1,
) -> sp.csr_matrix:
    """Truncated personalised PageRank from each source.

    ``p_a = sum_{t=first_step..steps} decay^(t-1) * e_a M^t``, pruned to the ``keep``
    largest entries per source after every step (so memory stays
    ``O(len(sources) * keep * degree)``); the source's own entry is removed.

    Parameters
    ----------
    transition
        Row-stochastic matrix, shape (n, n) (:func:`walk_matrix`).
    sources
        Artist rows to walk from, shape (m,).
    steps, decay, keep
        Walk length, per-step decay, entries kept per source.
    first_step
        First step that counts: 2 leaves out the source's own edges, so that
        only corroboration through other artists (its editorial neighbours
        first) scores.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape (m, n): row ``i`` is the walk score of every artist from
        ``sources[i]``.
    """
    n = transition.shape[0]
    out = []
    for lo in range(0, len(sources), WALK_CHUNK):
        src = sources[lo : lo + WALK_CHUNK]
        m = len(src)
        x = sp.csr_matrix((np.ones(m), (np.arange(m), src)), shape=(m, n))
        acc = sp.csr_matrix((m, n))
        w = 1.0
        for step in range(1, steps + 1):
            x = _prune(x @ transition, keep)
            if step >= first_step:
                acc = acc + w * x
            w *= decay
        acc = acc.tocsr()
        row_of = np.repeat(np.arange(m), np.diff(acc.indptr))
        acc.data[acc.indices == src[row_of]] = 0.0  # an artist is not its own neighbour
        acc.eliminate_zeros()
        out.append(acc)
    if not out:
        return sp.csr_matrix((0, n))
    return sp.csr_matrix(sp.vstack(out))


def seed_distance(adjacency: sp.csr_matrix, seeded: np.ndarray, max_hops: int) -> np.ndarray:
    """Hops from the nearest seeded artist along directed edges.

    Parameters
    ----------
    adjacency
        Shape (n, n): an entry at (a, b) is an edge a -> b.
    seeded
        Boolean mask, shape (n,): artists with an editorial relation.
    max_hops
        Search depth; artists further away get -1 (a negative value: no limit).

    Returns
    -------
    numpy.ndarray
        Shape (n,), int64: 0 for seeded artists, -1 where unreachable within
        ``max_hops``.
    """
    n = adjacency.shape[0]
    dist = np.full(n, -1, dtype=np.int64)
    frontier = np.flatnonzero(seeded)
    dist[frontier] = 0
    a = adjacency.tocsr()
    a = sp.csr_matrix((np.ones_like(a.data), a.indices, a.indptr), shape=a.shape)
    for hop in range(1, (max_hops if max_hops >= 0 else n) + 1):
        if len(frontier) == 0:
            break
        reach = np.flatnonzero(np.asarray(a[frontier].sum(axis=0)).ravel() > 0)
        frontier = reach[dist[reach] < 0]
        dist[frontier] = hop
    return dist
