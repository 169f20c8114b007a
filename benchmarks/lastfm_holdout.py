"""The engine end to end on the real Last.fm data: 80/20 per-user holdout, NDCG@20.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/lastfm_holdout.py [--seeds 0 1 2]

For each seed: map the HetRec data to the contract (one track per artist, a
``plays`` table, everything verified), hold out 20 % of each user's pairs
(users with >= 5 artists), write the remaining 80 % as a contract directory,
run the whole training pipeline on it (``recsys.pipeline.train``, what
``recsys train`` runs), ask the served recommender for each test user's top 20
(seen tracks excluded, the full catalogue as the pool) and score the held-out
pairs. The reference of the data README is NDCG@20 0.229 for tuned implicit ALS.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from recsys.config import TrainConfig, config_from_dict  # noqa: E402
from recsys.contract.lastfm import convert_lastfm  # noqa: E402
from recsys.evaluation.holdout import evaluate_artifact, split_contract  # noqa: E402
from recsys.pipeline import train  # noqa: E402

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared/data/lastfm-hetrec2011-2k"


def evaluate_seed(contract: Path, work: Path, seed: int, config: TrainConfig, k: int) -> dict:
    """Split, train through the pipeline, recommend, score. Returns the metrics."""
    split = work / f"train-{seed}"
    test = split_contract(contract, split, random_state=seed)
    t0 = time.perf_counter()
    result = train(split, work / f"artifact-{seed}", config)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = evaluate_artifact(result.path, test, k=k)
    m = dict(out.metrics)
    m.update(
        seed=seed,
        train_s=train_s,
        fit_s=result.manifest["training"]["fit_time_s"],
        recommend_s=time.perf_counter() - t0,
        personalized=out.personalized_share,
    )
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--factors", type=int, help="override the ALS default")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not (args.src / "user_artists.dat").exists():
        raise SystemExit(f"Last.fm data not found at {args.src}")
    config = config_from_dict({"als": {"factors": args.factors}} if args.factors else {})

    work = Path(tempfile.mkdtemp(prefix="lastfm-holdout-"))
    try:
        contract = work / "contract"
        convert_lastfm(args.src, contract)
        rows = [evaluate_seed(contract, work, s, config, args.k) for s in args.seeds]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"engine defaults: {config.als}")
    print(
        f"{'seed':>4} {'NDCG@' + str(args.k):>9} {'Recall':>8} {'MAP':>8} {'HR':>8}"
        f" {'train s':>8} {'fit s':>7} {'users':>6}"
    )
    for r in rows:
        print(
            f"{r['seed']:>4} {r['ndcg']:>9.4f} {r['recall']:>8.4f} {r['map']:>8.4f}"
            f" {r['hit_ratio']:>8.4f} {r['train_s']:>8.2f} {r['fit_s']:>7.2f} {int(r['n_users']):>6}"
        )
    nd = np.array([r["ndcg"] for r in rows])
    print(f"mean NDCG@{args.k} {nd.mean():.4f} (sd {nd.std(ddof=1) if len(nd) > 1 else 0:.4f})")
    print("reference (data README): tuned implicit ALS 0.229, EASE 0.278")


if __name__ == "__main__":
    main()
