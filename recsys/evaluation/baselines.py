"""Reference recommenders, fitted on the same training matrix as the engine.

Every figure the team reads comes with its comparison: these baselines see
exactly the engine's training data (first-party, consenting, non-fraudulent
streams on pool tracks, aggregated per user and track) and rank the same
items, seen ones excluded.

All share one small interface: ``fit(counts)`` on a user x item CSR of
counts, then ``recommend(user_rows, k)`` returning item columns, shape
(n, k), padded with -1.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.errors import ConfigError
from recsys.models import ALSModel

logger = logging.getLogger(__name__)


class Baseline(Protocol):
    name: str
    fit_time_s_: float

    def fit(self, counts: sp.csr_matrix) -> Baseline: ...

    def recommend(self, user_rows: np.ndarray, k: int) -> np.ndarray: ...


def _top_k_excluding_seen(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k columns of dense ``scores`` (n, n_items) with each row's seen items removed."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top[~np.isfinite(np.take_along_axis(scores, top, axis=1))] = -1
    return top


class _Dense:
    """Shared batching for baselines that score all items per user."""

    batch = 1024
    name = "dense"

    def _scores(self, user_rows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def recommend(self, user_rows: np.ndarray, k: int) -> np.ndarray:
        """Top-``k`` item columns per user, seen items excluded; shape (n, k)."""
        user_rows = np.asarray(user_rows, dtype=np.int64)
        out = np.full((len(user_rows), k), -1, dtype=np.int64)
        for start in range(0, len(user_rows), self.batch):
            rows = user_rows[start : start + self.batch]
            top = _top_k_excluding_seen(self._scores(rows), self._seen[rows], k)
            out[start : start + len(rows), : top.shape[1]] = top
        return out


class Popularity(_Dense):
    """Most-listened items (distinct listeners), the same list for everyone."""

    name = "popularity"

    def fit(self, counts: sp.csr_matrix) -> Popularity:
        t0 = time.perf_counter()
        self._seen = sp.csr_matrix(counts)
        self.popularity_ = np.diff(self._seen.tocsc().indptr).astype(np.float32)
        self.fit_time_s_ = time.perf_counter() - t0
        return self

    def _scores(self, user_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(user_rows), len(self.popularity_)))


class BareALS(_Dense):
    """implicit's ALS alone, on the same confidence weighting and parameters as the engine."""

    name = "implicit ALS"

    def __init__(self, **params) -> None:
        self.params = params

    def fit(self, counts: sp.csr_matrix) -> BareALS:
        self._seen = sp.csr_matrix(counts)
        model = ALSModel(**self.params).fit(self._seen)
        self.fit_time_s_ = model.fit_time_s_
        self._u, self._v = model.user_factors_, model.item_factors_
        return self

    def _scores(self, user_rows: np.ndarray) -> np.ndarray:
        return self._u[user_rows] @ self._v.T


class ItemKNN(_Dense):
    """Item-based nearest neighbours over BM25-weighted counts (implicit's BM25Recommender).

    Parameters
    ----------
    neighbours
        Neighbours kept per item (K).
    """

    name = "item-kNN"

    def __init__(self, *, neighbours: int = 100, bm25_k1: float = 1.2, bm25_b: float = 0.75):
        self.neighbours = neighbours
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b

    def fit(self, counts: sp.csr_matrix) -> ItemKNN:
        from implicit.nearest_neighbours import BM25Recommender

        self._seen = sp.csr_matrix(counts, dtype=np.float32)
        t0 = time.perf_counter()
        model = BM25Recommender(K=self.neighbours, K1=self.bm25_k1, B=self.bm25_b, num_threads=0)
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit converts its own BM25 weights to CSR and warns about it.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(self._seen, show_progress=False)
        self.fit_time_s_ = time.perf_counter() - t0
        self._similarity = sp.csr_matrix(model.similarity)
        return self

    def _scores(self, user_rows: np.ndarray) -> np.ndarray:
        return (self._seen[user_rows] @ self._similarity).toarray()


class EASE(_Dense):
    """EASE (Steck 2019): closed-form item-item regression with a zero diagonal.

    ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1``: a dense
    n_items x n_items inverse, so memory and time grow with the square and the
    cube of the catalogue; ``max_items`` refuses catalogues it cannot hold.

    Parameters
    ----------
    regularization
        lambda.
    max_items
        Largest catalogue it will invert.
    """

    name = "EASE"

    def __init__(self, *, regularization: float = 100.0, max_items: int = 40_000) -> None:
        self.regularization = regularization
        self.max_items = max_items

    def fit(self, counts: sp.csr_matrix) -> EASE:
        x = sp.csr_matrix(counts, dtype=np.float64)
        n = x.shape[1]
        if n > self.max_items:
            raise ConfigError(
                f"EASE needs a dense {n} x {n} inverse: above max_items={self.max_items}"
            )
        self._seen = sp.csr_matrix(counts)
        binary = x.copy()
        binary.data[:] = 1.0
        t0 = time.perf_counter()
        gram = (binary.T @ binary).toarray()
        gram[np.diag_indices(n)] += self.regularization
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices(n)] = 0.0
        self.fit_time_s_ = time.perf_counter() - t0
        self._b = b.astype(np.float32)
        self._x = binary.astype(np.float32).tocsr()
        return self

    def _scores(self, user_rows: np.ndarray) -> np.ndarray:
        return self._x[user_rows] @ self._b


def default_baselines(als_params: dict, *, with_ease: bool = True) -> list[Baseline]:
    """Popularity, item-kNN, bare ALS (same parameters as the engine) and, optionally, EASE."""
    out: list[Baseline] = [Popularity(), ItemKNN(), BareALS(**als_params)]
    if with_ease:
        out.append(EASE())
    return out


__all__ = ["EASE", "Baseline", "BareALS", "ItemKNN", "Popularity", "default_baselines"]
