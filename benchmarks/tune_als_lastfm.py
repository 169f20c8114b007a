"""Tune implicit's ALS for NDCG@20 on the Last.fm HetRec 2K data.

Protocol (the one behind the reference figures in the data set's README):
80/20 random per-user holdout of user-artist pairs, users with >= 5 artists
evaluated, items seen in train excluded from the ranking, full catalogue
(17,632 artists), split seed = model seed. Metrics and split come from
``recsys.evaluation``; the model is ``implicit.cpu.als.AlternatingLeastSquares``
fed with a confidence matrix computed here (implicit's own ``alpha`` is 1).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/tune_als_lastfm.py          # small grid, minutes
    OPENBLAS_NUM_THREADS=1 python benchmarks/tune_als_lastfm.py --full   # wide grid

Stages: reference rows (popularity and the README's ALS settings, with three
recall definitions), the grid on ``--seed``, an iterations sweep for the grid's
winner, then the best setting of every weighting, :data:`RECOMMENDED` and the
README's log1p setting again on each ``--confirm-seeds`` seed, with mean and
standard deviation. Results and the chosen defaults: ``docs/als-defaults.md``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy / implicit load BLAS

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from recsys.contract.lastfm import read_hetrec_table  # noqa: E402
from recsys.evaluation import random_holdout, ranking_metrics, relevance_matrix  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/data/lastfm-hetrec2011-2k"


# --------------------------------------------------------------------------- weighting


def _with_data(x: sp.csr_matrix, data: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((data.astype(np.float32), x.indices, x.indptr), shape=x.shape)


def _row_max(x: sp.csr_matrix) -> np.ndarray:
    """Per-non-zero maximum of its row, shape (nnz,)."""
    n = np.diff(x.indptr)
    out = np.zeros(x.shape[0], dtype=np.float64)
    nz = n > 0
    out[nz] = np.maximum.reduceat(x.data, x.indptr[:-1][nz])
    return np.repeat(out, n)


def confidence(x: sp.csr_matrix, weighting: str, alpha: float, cap: float) -> sp.csr_matrix:
    """Confidence matrix handed to implicit (its ``alpha`` is 1).

    Parameters
    ----------
    x : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Play counts (> 0 where stored).
    weighting : str
        ``log1p``: ``alpha * log1p(p)``;
        ``1+log1p``: ``1 + alpha * log1p(p)``;
        ``log1p-user``: ``alpha * log1p(p) / log1p(max_u p)``, the user's most
        played item gets ``alpha`` whatever their total volume;
        ``log1p-cap``: ``alpha * log1p(min(p, cap))``;
        ``binary``: ``alpha``;
        ``linear``: ``alpha * p``;
        ``bm25``: ``alpha * bm25_weight(x, K1=100, B=0.8)`` (implicit's BM25,
        rows = users, as in ``recsys.models.confidence``).
    alpha, cap : float

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_users, n_items), float32
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    p = x.data
    if weighting == "log1p":
        return _with_data(x, alpha * np.log1p(p))
    if weighting == "1+log1p":
        return _with_data(x, 1.0 + alpha * np.log1p(p))
    if weighting == "log1p-user":
        return _with_data(x, alpha * np.log1p(p) / np.log1p(_row_max(x)))
    if weighting == "log1p-cap":
        return _with_data(x, alpha * np.log1p(np.minimum(p, cap)))
    if weighting == "binary":
        return _with_data(x, np.full_like(p, alpha))
    if weighting == "linear":
        return _with_data(x, alpha * p)
    if weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        w = sp.csr_matrix(bm25_weight(x, K1=100, B=0.8))
        w.sort_indices()
        return sp.csr_matrix(w * alpha, dtype=np.float32)
    raise ValueError(f"unknown weighting {weighting!r}")


WEIGHTINGS = ("log1p", "1+log1p", "log1p-user", "log1p-cap", "binary", "linear", "bm25")


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Config:
    """One ALS setting, or a baseline: ``weighting`` ``popularity`` (items ranked
    by number of train listeners) or ``popularity-plays`` (by train play volume)."""

    weighting: str
    alpha: float = 1.0
    factors: int = 64
    regularization: float = 0.01
    iterations: int = 15

    def label(self) -> str:
        if self.weighting.startswith("popularity"):
            return self.weighting
        return (
            f"{self.weighting} a={self.alpha:g} f={self.factors} "
            f"reg={self.regularization:g} it={self.iterations}"
        )


def top_k_popularity(
    train: sp.csr_matrix, users: np.ndarray, k: int, *, by_plays: bool = False
) -> np.ndarray:
    """Most popular unseen items, shape (len(users), k).

    Popularity is the number of train listeners, or the train play volume with
    ``by_plays``.
    """
    listeners = np.diff(train.tocsc().indptr)
    pop = np.asarray(train.sum(axis=0)).ravel() if by_plays else listeners
    order = np.argsort(-pop, kind="stable")
    longest = int(np.diff(train.indptr)[users].max(initial=0))
    cand = order[: k + longest]  # enough candidates to leave k unseen for everyone
    seen = train[users][:, cand].toarray() > 0
    # stable argsort of the seen flags puts each row's unseen candidates first, in rank order
    first = np.argsort(seen, axis=1, kind="stable")[:, :k]
    return cand[first]


def top_k_als(model, train: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """implicit's ranking with the user's train items filtered out, shape (len(users), k)."""
    out = np.full((users.size, k), -1, dtype=np.int64)
    for start in range(0, users.size, 1000):
        batch = users[start : start + 1000]
        ids, _ = model.recommend(batch, train[batch], N=k, filter_already_liked_items=True)
        out[start : start + batch.size] = ids
    return out


def evaluate(
    cfg: Config,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    k: int,
    seed: int,
    threads: int,
    cap: float,
) -> dict[str, float]:
    """Fit ``cfg`` on ``train`` and score its top ``k`` against ``test``."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    fit_s = 0.0
    if cfg.weighting.startswith("popularity"):
        top_users = top_k_popularity(train, users, k, by_plays=cfg.weighting == "popularity-plays")
    else:
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=1.0,
            iterations=cfg.iterations,
            calculate_training_loss=False,
            num_threads=threads,
            random_state=seed,
        )
        conf = confidence(train, cfg.weighting, cfg.alpha, cap)
        t0 = time.perf_counter()
        model.fit(conf, show_progress=False)
        fit_s = time.perf_counter() - t0
        top_users = top_k_als(model, train, users, k)
    top = np.full((train.shape[0], k), -1, dtype=np.int64)
    top[users] = top_users
    out = ranking_metrics(top, test, k)
    # Other recall definitions, to compare with the README: hits / |T_u| per
    # user, and hits pooled over users (sum hits / sum |T_u|).
    rel, n_test = relevance_matrix(top, test, k)
    hits, n_test = rel[n_test > 0].sum(axis=1), n_test[n_test > 0]
    out["recall_full"] = float(np.mean(hits / n_test))
    out["recall_pooled"] = float(hits.sum() / n_test.sum())
    out["fit_s"] = fit_s
    return out


# --------------------------------------------------------------------------- grids


REFERENCES = (
    Config("popularity"),
    Config("log1p", alpha=10, factors=64, regularization=0.01),  # README: log1p, alpha 10
    Config("bm25", alpha=1, factors=64, regularization=0.01),  # README: bm25 weights
    # the other readings of the README rows
    Config("popularity-plays"),
    Config("1+log1p", alpha=10, factors=64, regularization=0.01),
)

#: The setting docs/als-defaults.md recommends as the engine's default; always confirmed.
RECOMMENDED = Config("log1p-user", alpha=15, factors=128, regularization=45, iterations=15)


def small_grid() -> list[Config]:
    """A few minutes: every weighting at two alphas and three regularisations
    (64 factors), then the neighbourhood of :data:`RECOMMENDED` (regularisation,
    alpha along and across the ridge alpha ~ reg / 3, factors). Iterations are
    swept afterwards for whichever setting wins."""
    per_weighting = {
        "log1p": (1, 1.5),
        "1+log1p": (1, 2),
        "log1p-user": (10, 15),
        "log1p-cap": (1, 1.5),
        "binary": (4, 8),
        "bm25": (0.1, 0.3),
    }
    grid = [
        Config(w, alpha=a, regularization=r)
        for w, alphas in per_weighting.items()
        for a, r in itertools.product(alphas, (1, 30, 45))
    ]
    base = RECOMMENDED
    grid += [replace(base, regularization=r) for r in (0.01, 20, 30, 60, 100)]
    grid += [replace(base, alpha=a) for a in (5, 10, 20)]
    grid += [replace(base, alpha=20, regularization=60), replace(base, alpha=30, regularization=90)]
    grid += [replace(base, factors=f) for f in (64, 256)]
    return [c for c in grid if c != base] + [base]


def full_grid() -> list[Config]:
    """Weighting x alpha x regularisation x factors, then iterations for the best ones."""
    alphas = {
        "log1p": (0.5, 1, 1.5, 3),
        "1+log1p": (0.5, 1, 2),
        "log1p-user": (5, 10, 15, 20),
        "log1p-cap": (1, 1.5, 3),
        "binary": (2, 4, 8),
        "linear": (0.01, 0.1),
        "bm25": (0.1, 0.3, 1),
    }
    regs = (1, 10, 20, 30, 45, 60)
    return [
        Config(w, alpha=a, factors=f, regularization=r)
        for w, alist in alphas.items()
        for a, r, f in itertools.product(alist, regs, (64, 128, 256))
    ]


# --------------------------------------------------------------------------- output


COLUMNS = ("ndcg", "recall", "map", "precision", "hit_ratio", "fit_s")


def print_header(k: int) -> None:
    names = [f"{c}@{k}" if c != "fit_s" else "fit_s" for c in COLUMNS]
    print(f"{'setting':<46}" + "".join(f"{n:>13}" for n in names), flush=True)


def print_row(cfg: Config, m: dict[str, float]) -> None:
    print(f"{cfg.label():<46}" + "".join(f"{m[c]:>13.4f}" for c in COLUMNS), flush=True)


def run_all(
    configs: Iterable[Config],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    args: argparse.Namespace,
    seed: int,
    sink: Callable[[Config, int, dict[str, float]], None],
) -> list[tuple[Config, dict[str, float]]]:
    rows = []
    for cfg in configs:
        m = evaluate(cfg, train, test, k=args.k, seed=seed, threads=args.threads, cap=args.cap)
        print_row(cfg, m)
        sink(cfg, seed, m)
        rows.append((cfg, m))
    return rows


def load_matrix(data: Path) -> sp.csr_matrix:
    """User x artist play counts, shape (1892, 17632) on the real data."""
    ua = read_hetrec_table(data, "user_artists")
    users, _ = pd.factorize(ua["userID"], sort=True)
    items, _ = pd.factorize(ua["artistID"], sort=True)
    return sp.csr_matrix(
        (ua["weight"].to_numpy(np.float32), (users, items)),
        shape=(users.max() + 1, items.max() + 1),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="HetRec directory (default: %(default)s)"
    )
    ap.add_argument(
        "--seed", type=int, default=0, help="split and model seed of the grid (default 0)"
    )
    ap.add_argument(
        "--confirm-seeds",
        type=int,
        nargs="*",
        default=[1, 2],
        help="seeds re-run for the best settings",
    )
    ap.add_argument("--k", type=int, default=20, help="cut-off (default 20)")
    ap.add_argument("--threads", type=int, default=1, help="implicit threads (default 1)")
    ap.add_argument(
        "--cap", type=float, default=1000.0, help="play cap of log1p-cap (default 1000)"
    )
    ap.add_argument("--full", action="store_true", help="the wide grid (tens of minutes)")
    ap.add_argument("--csv", type=Path, help="also write every measured row here")
    args = ap.parse_args(argv)

    if not args.data.is_dir():
        print(f"Last.fm data not found at {args.data} (use --data)", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    x = load_matrix(args.data)
    splits = {args.seed: random_holdout(x, test_fraction=0.2, min_items=5, random_state=args.seed)}
    train, test = splits[args.seed]
    print(
        f"{x.shape[0]} users x {x.shape[1]} artists, {x.nnz} pairs; seed {args.seed}: "
        f"{train.nnz} train / {test.nnz} test pairs, "
        f"{int((np.diff(test.indptr) > 0).sum())} users evaluated; threads={args.threads}"
    )

    records: list[dict[str, object]] = []

    def sink(cfg: Config, seed: int, m: dict[str, float]) -> None:
        records.append({**asdict(cfg), "seed": seed, **m})

    print("\n== references")
    print_header(args.k)
    refs = run_all(REFERENCES, train, test, args, args.seed, sink)
    print(
        f"\n{'recall@' + str(args.k) + ' definitions':<46}{'min(k,|T|)':>13}{'|T|':>13}{'pooled':>13}"
    )
    for cfg, m in refs:
        print(
            f"{cfg.label():<46}{m['recall']:>13.4f}{m['recall_full']:>13.4f}{m['recall_pooled']:>13.4f}"
        )

    grid = full_grid() if args.full else small_grid()
    print(f"\n== grid ({len(grid)} settings, {'full' if args.full else 'small'})")
    print_header(args.k)
    rows = run_all(grid, train, test, args, args.seed, sink)

    best = max(rows, key=lambda r: r[1]["ndcg"])[0]
    iters = [replace(best, iterations=i) for i in (5, 10, 30, 50) if i != best.iterations]
    print(f"\n== iterations for the best setting of the grid ({best.label()})")
    print_header(args.k)
    rows += run_all(iters, train, test, args, args.seed, sink)

    print(f"\n== top 10 by ndcg@{args.k}")
    print_header(args.k)
    ranked = sorted(rows, key=lambda r: -r[1]["ndcg"])
    for cfg, m in ranked[:10]:
        print_row(cfg, m)

    if args.confirm_seeds:
        best_per_weighting: dict[str, tuple[Config, dict[str, float]]] = {}
        for cfg, m in ranked:
            best_per_weighting.setdefault(cfg.weighting, (cfg, m))
        to_confirm = list(best_per_weighting.values())
        measured = dict(rows)
        if RECOMMENDED not in measured:
            m = evaluate(
                RECOMMENDED,
                train,
                test,
                k=args.k,
                seed=args.seed,
                threads=args.threads,
                cap=args.cap,
            )
            sink(RECOMMENDED, args.seed, m)
            measured[RECOMMENDED] = m
        if all(cfg != RECOMMENDED for cfg, _ in to_confirm):
            to_confirm.append((RECOMMENDED, measured[RECOMMENDED]))
        to_confirm.append(refs[1])
        seeds = [args.seed, *args.confirm_seeds]
        print(
            f"\n== confirmation on seeds {seeds}: best setting of each weighting, "
            "the recommended default and the README reference"
        )
        for s in args.confirm_seeds:
            splits[s] = random_holdout(x, test_fraction=0.2, min_items=5, random_state=s)
        summary = []
        for cfg, m0 in to_confirm:
            ndcgs, fits = [m0["ndcg"]], [m0["fit_s"]]
            for s in args.confirm_seeds:
                m = evaluate(cfg, *splits[s], k=args.k, seed=s, threads=args.threads, cap=args.cap)
                sink(cfg, s, m)
                ndcgs.append(m["ndcg"])
                fits.append(m["fit_s"])
            summary.append((cfg, ndcgs, fits))
        width = max(len(c.label()) for c, _, _ in summary)
        print(
            f"{'setting':<{width}}"
            + "".join(f"{'seed ' + str(s):>10}" for s in seeds)
            + f"{'mean':>10}{'sd':>9}{'fit_s':>9}"
        )
        for cfg, ndcgs, fits in sorted(summary, key=lambda r: -np.mean(r[1])):
            print(
                f"{cfg.label():<{width}}"
                + "".join(f"{v:>10.4f}" for v in ndcgs)
                + f"{np.mean(ndcgs):>10.4f}{np.std(ndcgs, ddof=1) if len(ndcgs) > 1 else 0.0:>9.4f}"
                + f"{np.mean(fits):>9.2f}"
            )

        print(f"recommended default: {RECOMMENDED.label()}")

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")

    if args.csv:
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        print(f"\nwrote {len(records)} rows to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
