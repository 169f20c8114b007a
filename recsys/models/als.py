"""Implicit-feedback matrix factorisation (implicit's ALS) with a confidence weighting.

Follows implicit's and scikit-learn's conventions: hyperparameters are
keyword-only and stored unchanged, validation happens in :meth:`fit`, fitted
state lives in attributes ending in ``_``.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.errors import ConfigError

logger = logging.getLogger(__name__)

Weighting = Literal["log1p_user", "log1p", "linear", "bm25"]
WEIGHTINGS = ("log1p_user", "log1p", "linear", "bm25")


def confidence(
    counts: sp.csr_matrix,
    *,
    weighting: Weighting = "log1p_user",
    alpha: float = 15.0,
    bm25_k1: float = 100.0,
    bm25_b: float = 0.8,
) -> sp.csr_matrix:
    """Turn play counts into ALS confidences (Hu, Koren and Volinsky 2008).

    Parameters
    ----------
    counts
        CSR, shape (n_users, n_items): plays per pair (> 0 where present).
    weighting
        ``log1p_user``: ``alpha * log1p(count) / log1p(max count of that user)``:
        log damping, and every user's most-played track maps to ``alpha``
        whatever their volume, so heavy listeners do not dominate the item
        factors and the useful ``alpha`` does not depend on how plays are
        counted (the default; see ``docs/als-defaults.md``);
        ``log1p``: ``alpha * log1p(count)``, which damps heavy repeat listening
        (one track looped 500 times is not 500x the evidence);
        ``linear``: ``alpha * count``; ``bm25``: implicit's BM25 weighting,
        scaled by ``alpha``.

    Returns
    -------
    scipy.sparse.csr_matrix
        float32, same shape and sparsity as ``counts``.
    """
    counts = sp.csr_matrix(counts, dtype=np.float32)
    if weighting == "log1p_user":
        out = counts.copy()
        logs = np.log1p(out.data.astype(np.float64))
        lengths = np.diff(out.indptr)
        row_max = np.zeros(out.shape[0])
        nonempty = lengths > 0
        if nonempty.any():
            row_max[nonempty] = np.maximum.reduceat(logs, out.indptr[:-1][nonempty])
        per_entry = np.repeat(row_max, lengths)
        out.data = (alpha * logs / np.where(per_entry > 0, per_entry, 1.0)).astype(np.float32)
    elif weighting == "log1p":
        out = counts.copy()
        out.data = (alpha * np.log1p(out.data)).astype(np.float32)
    elif weighting == "linear":
        out = counts * np.float32(alpha)
    elif weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        out = sp.csr_matrix(bm25_weight(counts, K1=bm25_k1, B=bm25_b), dtype=np.float32)
        out.data *= np.float32(alpha)
    else:
        raise ConfigError(f"unknown weighting {weighting!r}: use one of {WEIGHTINGS}")
    return out


class ALSModel:
    """Alternating least squares over a confidence-weighted user x item matrix.

    Parameters
    ----------
    factors
        Latent dimension.
    regularization
        L2 penalty on the factors.
    alpha
        Confidence scale (see :func:`confidence`).
    iterations
        ALS sweeps.
    weighting
        Confidence function of the counts.
    bm25_k1, bm25_b
        BM25 parameters when ``weighting="bm25"``.
    use_cg
        Conjugate-gradient solver (faster, as accurate in practice).
    num_threads
        Threads for implicit (0: all cores).
    random_state
        Seed of the factor initialisation.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, factors), float32
    item_factors_ : ndarray of shape (n_items, factors), float32
    fit_time_s_ : float
        Seconds spent in implicit's fit.
    """

    def __init__(
        self,
        *,
        factors: int = 128,
        regularization: float = 45.0,
        alpha: float = 15.0,
        iterations: int = 15,
        weighting: Weighting = "log1p_user",
        bm25_k1: float = 100.0,
        bm25_b: float = 0.8,
        use_cg: bool = True,
        num_threads: int = 0,
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.use_cg = use_cg
        self.num_threads = num_threads
        self.random_state = random_state

    def get_params(self) -> dict[str, object]:
        """Hyperparameters as given (scikit-learn convention)."""
        return {
            k: getattr(self, k)
            for k in (
                "factors",
                "regularization",
                "alpha",
                "iterations",
                "weighting",
                "bm25_k1",
                "bm25_b",
                "use_cg",
                "num_threads",
                "random_state",
            )
        }

    def _validate(self) -> None:
        if not isinstance(self.factors, int) or self.factors <= 0:
            raise ConfigError(f"factors must be a positive int, got {self.factors!r}")
        if not isinstance(self.iterations, int) or self.iterations <= 0:
            raise ConfigError(f"iterations must be a positive int, got {self.iterations!r}")
        if self.regularization < 0:
            raise ConfigError(f"regularization must be >= 0, got {self.regularization!r}")
        if self.alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha!r}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown weighting {self.weighting!r}")

    def implicit_model(self):  # -> implicit.cpu.als.AlternatingLeastSquares
        """The bare implicit model with this object's hyperparameters."""
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=1.0,  # the confidence is computed here, already scaled by alpha
            iterations=self.iterations,
            use_cg=self.use_cg,
            calculate_training_loss=False,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def fit(self, counts: sp.csr_matrix, *, show_progress: bool = False) -> ALSModel:
        """Fit on a user x item count matrix.

        Parameters
        ----------
        counts
            CSR, shape (n_users, n_items), plays per pair.
        """
        self._validate()
        counts = sp.csr_matrix(counts)
        if counts.shape[0] == 0 or counts.shape[1] == 0 or counts.nnz == 0:
            raise ConfigError("cannot fit on an empty interaction matrix")
        conf = confidence(
            counts,
            weighting=self.weighting,
            alpha=self.alpha,
            bm25_k1=self.bm25_k1,
            bm25_b=self.bm25_b,
        )
        t0 = time.perf_counter()
        # implicit's own threads do the work; BLAS threads on top of them only contend
        # (implicit checks this when the model is built, hence both inside the limit).
        with threadpool_limits(1, "blas"):
            model = self.implicit_model()
            model.fit(conf, show_progress=show_progress)
        self.fit_time_s_ = time.perf_counter() - t0
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.n_users_, self.n_items_ = counts.shape
        logger.info(
            "ALS fit: %d users x %d items, %d pairs, %d factors, %d iterations in %.2fs",
            counts.shape[0],
            counts.shape[1],
            counts.nnz,
            self.factors,
            self.iterations,
            self.fit_time_s_,
        )
        return self


def artist_vectors(
    item_factors: np.ndarray,
    item_artist: np.ndarray,
    n_artists: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Artist vectors as the weighted mean of their tracks' item vectors.

    Parameters
    ----------
    item_factors
        Shape (n_items, d).
    item_artist
        Artist row of each item, shape (n_items,).
    n_artists
        Number of artist rows in the output.
    weights
        Per-item weight, shape (n_items,), e.g. listeners; default uniform.

    Returns
    -------
    ndarray
        Shape (n_artists, d), float32; zero rows for artists without items.
    """
    n_items = len(item_factors)
    w = np.ones(n_items) if weights is None else np.asarray(weights, dtype=np.float64)
    # A sparse (artist x item) weight matrix turns the group-by into one product.
    membership = sp.csr_matrix((w, (item_artist, np.arange(n_items))), shape=(n_artists, n_items))
    total = np.asarray(membership.sum(axis=1)).ravel()
    out = membership @ item_factors.astype(np.float64)
    nz = total > 0
    out[nz] /= total[nz, None]
    return out.astype(np.float32)
