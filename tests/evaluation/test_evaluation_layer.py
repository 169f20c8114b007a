"""Baselines, protocols, beyond-accuracy metrics, exposure and the evaluate runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.artifact.loaded import Artifact
from recsys.evaluation.baselines import EASE, BareALS, ItemKNN, Popularity
from recsys.evaluation.beyond import (
    catalogue_coverage,
    intra_list_diversity,
    novelty,
    pool_compliance,
)
from recsys.evaluation.exposure import exposure_report
from recsys.evaluation.protocols import split_contract_protocol
from recsys.evaluation.runner import evaluate
from recsys.pipeline import train
from recsys.synth import generate_platform


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_platform(tmp_path_factory.mktemp("ev") / "data", scale="tiny", seed=8).out_dir


def test_ease_known_answer() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.float32))
    model = EASE(regularization=1.0).fit(x)
    g = x.T @ x
    p = np.linalg.inv(g.toarray() + np.eye(3))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(model._b, b, rtol=1e-5)
    top = model.recommend(np.array([0]), 3)
    assert list(top[0]) == [2, -1, -1]  # only the unseen item can come back


def test_baselines_exclude_seen_and_rank_sensibly() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 30)) < 0.2).astype(np.float32)
    dense[:, 0] = 1  # item 0 is heard by everyone
    dense[0, 0] = 0
    x = sp.csr_matrix(dense)
    pop = Popularity().fit(x)
    assert pop.recommend(np.array([0]), 1)[0, 0] == 0
    for model in (pop, ItemKNN(neighbours=10), BareALS(factors=4, iterations=3), EASE()):
        model.fit(x)
        top = model.recommend(np.arange(40), 5)
        for u in range(40):
            assert not set(top[u][top[u] >= 0]) & set(x[u].indices)
        assert model.fit_time_s_ >= 0


def test_beyond_accuracy_known_answers() -> None:
    top = np.array([[0, 1, -1], [1, 2, 3]])
    assert catalogue_coverage(top, 8) == 0.5
    in_pool = np.array([True, True, False, True])
    assert pool_compliance(top, in_pool) == pytest.approx(4 / 5)
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    # list 1: one pair, cosine 1 -> distance 0; list 2: pairs (1,2)=0,(1,3)=0,(2,3)=1 -> 1 - 1/3
    assert intra_list_diversity(top, vectors) == pytest.approx((0 + 2 / 3) / 2)
    listeners = np.array([8, 4, 2, 1])
    assert novelty(top, listeners, 8) == pytest.approx(np.mean([0, 1, 1, 2, 3]))


def test_protocols_partition_the_data(tiny: Path, tmp_path: Path) -> None:
    streams = pd.read_parquet(tiny / "streams.parquet")
    for protocol in ("random", "last", "users"):
        split = split_contract_protocol(tiny, tmp_path / protocol, protocol, random_state=1)
        train_streams = pd.read_parquet(split.train_dir / "streams.parquet")
        assert not (split.train_dir / "_truth").exists()
        test_pairs = set(zip(split.test["user_id"], split.test["track_id"], strict=True))
        train_pairs = set(zip(train_streams["user_id"], train_streams["track_id"], strict=True))
        assert test_pairs and not (test_pairs & train_pairs)
        assert len(train_streams) < len(streams)
        if protocol == "last":
            # Nothing a user heard after their cut-off is in training.
            first_test = (
                split.test.merge(streams, on=["user_id", "track_id"]).groupby("user_id")["ts"].min()
            )
            last_train = train_streams.groupby("user_id")["ts"].max()
            common = first_test.index.intersection(last_train.index)
            assert (last_train[common] < first_test[common]).all()
        if protocol == "users":
            held = set(split.test["user_id"])
            assert not held & set(train_streams["user_id"])
            assert set(split.query["user_id"]) == held


def test_exposure_shares(tiny: Path, tmp_path: Path) -> None:
    art = Artifact.load(train(tiny, tmp_path / "a").path)
    top = np.array([[art.item_track[0], art.item_track[1]], [art.item_track[0], -1]])
    report = exposure_report(art, top)
    for frame in report.tables().values():
        assert frame["recommendations"].sum() == pytest.approx(1.0)
        assert frame["streams"].sum() == pytest.approx(1.0)
    assert report.summary["recommendations"] == 3
    assert report.summary["pool_compliance"] == 1.0
    assert set(report.by_label_size["group"]) <= {"major", "independent", "small"}


def test_evaluate_engine_against_baselines(tiny: Path) -> None:
    report = evaluate(tiny, protocol="random", seeds=(0, 1), k=10, with_ease=True)
    s = report.summary()
    assert list(s.index) == ["engine", "popularity", "item-kNN", "implicit ALS", "EASE"]
    assert (s["compliance"] == 1.0).all()
    assert s.loc["engine", "ndcg"] > s.loc["popularity", "ndcg"]
    assert len(report.rows) == 10 and report.to_dict()["seeds"] == [0, 1]
