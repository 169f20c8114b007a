"""``recsys evaluate``: the engine against baselines on the same split, over seeds.

For each seed: split the contract directory with a protocol, train the whole
engine on the training part (``recsys.pipeline.train``), rebuild exactly the
matrix it trained on, fit the baselines on that matrix, and score everyone's
top-k for the same users against the held-out pairs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.artifact.loaded import Artifact
from recsys.config import TrainConfig
from recsys.evaluation.baselines import Baseline, default_baselines
from recsys.evaluation.beyond import (
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    pool_compliance,
)
from recsys.evaluation.metrics import ranking_metrics
from recsys.evaluation.protocols import split_contract_protocol
from recsys.pipeline import prepare_training, train
from recsys.surfaces.recommend import Recommender

logger = logging.getLogger(__name__)

ENGINE = "engine"
METRICS = ("ndcg", "recall", "map", "hit_ratio", "coverage", "compliance", "diversity", "novelty")


@dataclass
class EvaluationReport:
    """One row per (method, seed) with every metric and the fit time."""

    protocol: str
    k: int
    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation across seeds, one row per method (engine first)."""
        cols = [*METRICS, "fit_s"]
        g = self.rows.groupby("method", sort=False)[cols]
        mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
        out = mean.join(sd.add_suffix("_sd"))
        return out[[c for m in cols for c in (m, f"{m}_sd")]]

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "k": self.k,
            "seeds": sorted(int(s) for s in self.rows["seed"].unique()),
            "summary": self.summary().reset_index().to_dict(orient="records"),
            "rows": self.rows.to_dict(orient="records"),
            "notes": self.notes,
        }

    def table(self) -> str:
        """A plain-text table of means (and spread) for the terminal."""
        s = self.summary()
        lines = [
            f"protocol={self.protocol} k={self.k} seeds={sorted(int(s) for s in self.rows['seed'].unique())}",
            f"{'method':<16}{'NDCG':>16}{'Recall':>16}{'MAP':>9}{'HR':>8}{'cover':>8}"
            f"{'pool':>6}{'div':>7}{'novel':>7}{'fit s':>9}",
        ]
        for method, r in s.iterrows():
            lines.append(
                f"{method:<16}{r['ndcg']:>9.4f}±{r['ndcg_sd']:.4f}{r['recall']:>9.4f}±{r['recall_sd']:.4f}"
                f"{r['map']:>9.4f}{r['hit_ratio']:>8.3f}{r['coverage']:>8.3f}{r['compliance']:>6.2f}"
                f"{r['diversity']:>7.3f}{r['novelty']:>7.2f}{r['fit_s']:>9.2f}"
            )
        return "\n".join(lines)


def training_matrix(data_dir: Path, config: TrainConfig):
    """The exact interactions the pipeline trains on (the same stages, shared with it)."""
    prepared = prepare_training(data_dir, config)
    inter = prepared.interactions
    user_ids = prepared.data.users["user_id"].to_numpy()[inter.user_idx]
    return inter, user_ids


def _score(
    name: str,
    seed: int,
    top: np.ndarray,
    truth: sp.csr_matrix,
    art: Artifact,
    k: int,
    fit_s: float,
    vectors: np.ndarray,
) -> dict:
    m = ranking_metrics(top, truth, k)
    in_pool = art.tracks["in_pool"].to_numpy(dtype=bool)
    listeners = art.tracks["listeners"].to_numpy()
    return {
        "method": name,
        "seed": seed,
        "ndcg": m["ndcg"],
        "recall": m["recall"],
        "map": m["map"],
        "hit_ratio": m["hit_ratio"],
        "coverage": catalogue_coverage(top, int(in_pool.sum())),
        "compliance": pool_compliance(top, in_pool),
        "diversity": intra_list_diversity(top, vectors),
        "novelty": novelty(top, listeners, len(art.user_ids)),
        "fit_s": fit_s,
        "users": int(m["n_users"]),
    }


def evaluate(
    data_dir: str | Path,
    *,
    protocol: str = "random",
    seeds: Sequence[int] = (0,),
    k: int = 20,
    config: TrainConfig | None = None,
    baselines: Sequence[Baseline] | None = None,
    with_ease: bool = True,
    work_dir: str | Path | None = None,
) -> EvaluationReport:
    """Train and score the engine and the baselines on the same splits.

    Parameters
    ----------
    data_dir
        Contract directory.
    protocol
        ``random``, ``last`` or ``users`` (see :mod:`recsys.evaluation.protocols`).
    seeds
        One split (and one set of fits) per seed.
    baselines
        Defaults to popularity, item-kNN, bare ALS and (``with_ease``) EASE.
    """
    config = config or TrainConfig()
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="recsys-eval-"))
    rows, notes = [], []
    try:
        for seed in seeds:
            split = split_contract_protocol(
                data_dir, work / f"split-{seed}", protocol, random_state=seed
            )
            t0 = time.perf_counter()
            result = train(split.train_dir, work / f"artifact-{seed}", config)
            engine_fit = result.manifest["training"]["fit_time_s"]
            logger.info("engine trained in %.2fs", time.perf_counter() - t0)
            art = Artifact.load(result.path)
            rec = Recommender(art)
            vectors = np.zeros((len(art.tracks), art.item_factors.shape[1]), dtype=np.float32)
            vectors[art.item_track] = art.item_unit

            if protocol == "users":
                assert split.query is not None
                users = sorted(set(split.test["user_id"]) & set(split.query["user_id"]))
                q = split.query.groupby("user_id")
                answers = [
                    rec.for_history(
                        list(q.get_group(u)["track_id"]), list(q.get_group(u)["plays"]), k
                    )
                    for u in users
                ]
            else:
                users = sorted(set(split.test["user_id"]) & set(art.user_ids))
                answers = rec.for_users(users, k)
            top = np.full((len(users), k), -1, dtype=np.int64)
            for i, a in enumerate(answers):
                r = art.track_rows([it.track_id for it in a.items])
                top[i, : len(r)] = r
            sub = split.test.loc[split.test["user_id"].isin(users)]
            u = pd.Index(users).get_indexer(sub["user_id"])
            t = art.track_rows(sub["track_id"].to_numpy())
            ok = t >= 0
            truth = sp.csr_matrix(
                (np.ones(int(ok.sum()), np.float32), (u[ok], t[ok])),
                shape=(len(users), len(art.tracks)),
            )
            rows.append(_score(ENGINE, seed, top, truth, art, k, engine_fit, vectors))

            if protocol == "users":
                if seed == seeds[0]:
                    notes.append("baselines are not run for held-out users (they need fold-in)")
                continue
            inter, model_users = training_matrix(split.train_dir, config)
            urow = pd.Index(model_users).get_indexer(users)
            chosen = (
                list(baselines)
                if baselines is not None
                else default_baselines(config.als, with_ease=with_ease)
            )
            for b in chosen:
                try:
                    b.fit(inter.matrix)
                except ValueError as exc:  # e.g. EASE refusing a catalogue too large to invert
                    notes.append(f"{b.name} skipped: {exc}")
                    continue
                cols = b.recommend(urow, k)
                btop = np.where(cols >= 0, inter.track_idx[np.maximum(cols, 0)], -1)
                rows.append(_score(b.name, seed, btop, truth, art, k, b.fit_time_s_, vectors))
                logger.info("%s: NDCG@%d %.4f", b.name, k, rows[-1]["ndcg"])
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return EvaluationReport(protocol, k, pd.DataFrame(rows), notes)
