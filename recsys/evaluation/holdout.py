"""Contract-level holdout: split a ``plays`` directory, train the engine, score its answers.

This evaluates the engine as it runs (the whole pipeline and the served
recommender, seen tracks excluded), not a bare model.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.artifact.loaded import Artifact
from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.splits import holdout_frame
from recsys.surfaces.recommend import Recommender

logger = logging.getLogger(__name__)


def split_contract(
    contract: str | Path,
    out: str | Path,
    *,
    test_fraction: float = 0.2,
    min_items: int = 5,
    random_state: int = 0,
) -> pd.DataFrame:
    """Write ``out``: a copy of ``contract`` whose ``plays`` lack a per-user holdout.

    Parameters
    ----------
    contract
        Contract directory with a ``plays`` table (Parquet).
    out
        Destination directory (replaced).

    Returns
    -------
    pandas.DataFrame
        The held-out ``plays`` rows (``user_id``, ``track_id``, ``plays``).
    """
    contract, out = Path(contract), Path(out)
    plays_path = contract / "plays.parquet"
    if not plays_path.exists():
        raise ValueError(f"{contract} has no plays.parquet: holdout needs aggregated plays")
    plays = pd.read_parquet(plays_path)
    train, test = holdout_frame(
        plays,
        "user_id",
        "track_id",
        test_fraction=test_fraction,
        min_items=min_items,
        random_state=random_state,
    )
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(contract, out, ignore=shutil.ignore_patterns("plays.parquet", "_truth"))
    train.to_parquet(out / "plays.parquet", index=False)
    return test.reset_index(drop=True)


@dataclass
class HoldoutResult:
    """Metrics over the evaluated users and each user's returned track ids."""

    metrics: dict[str, float]
    top: dict[str, list[str]]
    personalized_share: float


def evaluate_artifact(
    artifact: str | Path | Artifact,
    test: pd.DataFrame,
    *,
    k: int = 20,
    users: list[str] | None = None,
) -> HoldoutResult:
    """Ask the served recommender for each test user's top ``k`` and score it.

    Parameters
    ----------
    artifact
        Artifact path or a loaded artifact.
    test
        Held-out pairs (``user_id``, ``track_id``).
    users
        Users to evaluate (default: every user with held-out pairs).
    """
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    rec = Recommender(art)
    users = users if users is not None else sorted(test["user_id"].unique())
    answers = rec.for_users(users, k)
    top = np.full((len(users), k), -1, dtype=np.int64)
    lists: dict[str, list[str]] = {}
    for i, a in enumerate(answers):
        ids = [it.track_id for it in a.items]
        lists[a.user_id] = ids
        rows = art.track_rows(ids)
        top[i, : len(rows)] = rows
    sub = test.loc[test["user_id"].isin(users)]
    u = pd.Index(users).get_indexer(sub["user_id"])
    t = art.track_rows(sub["track_id"].to_numpy())
    ok = t >= 0  # a held-out track missing from the catalogue can never be hit
    truth = sp.csr_matrix(
        (np.ones(int(ok.sum()), dtype=np.float32), (u[ok], t[ok])),
        shape=(len(users), len(art.tracks)),
    )
    metrics = ranking_metrics(top, truth, k)
    share = float(np.mean([a.personalized for a in answers])) if answers else 0.0
    return HoldoutResult(metrics=metrics, top=lists, personalized_share=share)
