"""A stream farm co-listening a target artist with popular artists must not enter their lists.

The fake accounts come from :func:`recsys.evaluation.attacks.inject_attack` (a
``farm``: accounts sharing a list of popular tracks, each streaming the
target's tracks heavily). The served engine resists through fraud detection
(the farm's near-identical track sets) and the graph's own defences (per-account
caps, minimum listeners, the vector floor, the anchoring to editorial relations);
the control run turns all of them off and shows the attack gets through.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.config import TrainConfig
from recsys.evaluation.attacks import FAKE_PREFIX, Attack, inject_attack
from recsys.graph import GraphConfig
from recsys.pipeline import train
from recsys.synth import generate_platform

TOP = 20


def _lists(artifact: Path) -> dict[str, list[str]]:
    rel = pd.read_parquet(artifact / "graph/relations.parquet")
    rel = rel.loc[rel["rank"] <= TOP]
    return {a: list(g["similar_artist_id"]) for a, g in rel.groupby("artist_id")}


def _entered(clean: dict, attacked: dict, target: str, popular: set[str]) -> list[str]:
    return sorted(
        p for p in popular if target in attacked.get(p, []) and target not in clean.get(p, [])
    )


@pytest.mark.parametrize("seed", [1, 3])
def test_farm_does_not_enter_popular_artists_lists(seed: int, tmp_path: Path) -> None:
    data = generate_platform(tmp_path / "data", scale="tiny", seed=seed).out_dir
    clean = train(data, tmp_path / "clean").path
    tracks = pd.read_parquet(clean / "catalogue/tracks.parquet")
    streams = pd.read_parquet(data / "streams.parquet")
    pool = tracks.loc[tracks["in_pool"]]
    listeners = (
        streams.merge(pool[["track_id", "artist_id"]], on="track_id")
        .groupby("artist_id")["user_id"]
        .nunique()
    )
    # A modestly popular target, as promotion targets are.
    band = sorted(listeners[(listeners >= 8) & (listeners <= 25)].index)
    target = band[np.random.default_rng(seed).integers(len(band))]
    target_tracks = pool.loc[pool["artist_id"] == target].nlargest(2, "listeners")["track_id"]
    attack = Attack(
        kind="farm",
        share=0.05,  # 11 accounts: about a third of a popular tiny-platform artist's audience
        targets=tuple(target_tracks),
        filler=30,
        popular_pool=40,
        target_plays=30,
        random_state=seed,
    )
    inject_attack(data, tmp_path / "attacked", attack)
    fake = pd.read_parquet(tmp_path / "attacked/streams.parquet")
    fake = fake.loc[fake["user_id"].str.startswith(FAKE_PREFIX)]
    popular = set(tracks.set_index("track_id").loc[fake["track_id"].unique(), "artist_id"])
    popular.discard(target)

    attacked = train(tmp_path / "attacked", tmp_path / "att").path
    assert _entered(_lists(clean), _lists(attacked), target, popular) == []

    # The attack is real: learned similarity without the defences lets the target in.
    base = TrainConfig()
    bare = replace(
        base,
        events=replace(base.events, detect_fraud=False),
        graph=GraphConfig(mode="learned", min_vector_similarity=-1.0),
    )
    before = train(data, tmp_path / "bare-clean", bare).path
    after = train(tmp_path / "attacked", tmp_path / "bare-att", bare).path
    assert _entered(_lists(before), _lists(after), target, popular)
