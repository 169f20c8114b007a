from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.contract.load import load_contract
from recsys.events import EventRules, aggregate, select_training_events
from recsys.pool import build_pool
from tests.helpers import minimal_tables, write_tables


def _data(tmp_path: Path):
    data = load_contract(write_tables(tmp_path / "d", minimal_tables()))
    pool = build_pool(data.tracks, data.artists, data.labels, data.opt_outs)
    return data, pool


def test_training_rule_known_answer(tmp_path: Path) -> None:
    data, pool = _data(tmp_path)
    events, report = select_training_events(data, pool.eligible)
    # streams: u1-t1 ok, u1-t3 ok, u2-t1 ok, u2-t2 short, u3-t1 no consent, u1-t5 not in pool
    assert report.dropped == {"short_play": 1, "no_consent": 1, "not_in_pool": 1, "fraud": 0}
    assert report.kept == 3 and report.input == 6
    users = data.users["user_id"].to_numpy()[events["user_idx"]]
    tracks = data.tracks["track_id"].to_numpy()[events["track_idx"]]
    assert sorted(zip(users, tracks, strict=True)) == [("u1", "t1"), ("u1", "t3"), ("u2", "t1")]


def test_filters_and_erasure_drop_rows(tmp_path: Path) -> None:
    data, pool = _data(tmp_path)

    class DropU2:
        name = "drop-u2"

        def __call__(self, data, events):
            return data.users["user_id"].to_numpy()[events["user_idx"]] == "u2"

    events, report = select_training_events(data, pool.eligible, filters=(DropU2(),))
    assert report.dropped["fraud"] == 1  # u2's short play is counted as short, not fraud
    assert report.filters == ("drop-u2",)
    erased = data.users["user_id"].isin(["u1"]).to_numpy()
    events, report = select_training_events(data, pool.eligible, erased_users=erased)
    assert report.dropped["erased_user"] == 3  # all of u1's streams, pool or not
    assert set(data.users["user_id"].to_numpy()[events["user_idx"]]) == {"u2"}


def test_aggregate_counts_and_compacts() -> None:
    events = pd.DataFrame(
        {
            "user_idx": np.array([4, 4, 4, 1, 1], np.int32),
            "track_idx": np.array([7, 7, 2, 7, 9], np.int32),
        }
    )
    inter = aggregate(events, n_users=5, n_tracks=10)
    assert list(inter.user_idx) == [1, 4] and list(inter.track_idx) == [2, 7, 9]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[0, 1, 1], [1, 2, 0]])
    capped = aggregate(events, n_users=5, n_tracks=10, rules=EventRules(max_plays_per_pair=1))
    assert capped.matrix.max() == 1


def test_aggregate_plays_sums() -> None:
    events = pd.DataFrame(
        {
            "user_idx": np.array([0, 0, 1], np.int32),
            "track_idx": np.array([3, 1, 3], np.int32),
            "plays": [5, 2, 7],
        }
    )
    inter = aggregate(events, n_users=2, n_tracks=4)
    np.testing.assert_array_equal(inter.matrix.toarray(), [[2, 5], [0, 7]])
