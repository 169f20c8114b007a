"""The graph builder on a hand-made platform, and its invariants on a trained one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.graph import GraphConfig, GraphInputs, build_graph
from recsys.pipeline import train
from recsys.synth import generate_platform

IDS = np.array([f"a{i}" for i in range(9)], dtype=object)


def _inputs(**over) -> GraphInputs:
    """Two styles: a0-a3 (+ a8, one listener) and a4-a6; a7 is outside the pool."""
    rng = np.random.default_rng(0)
    d = 8
    vec = np.zeros((9, d), np.float32)
    vec[[0, 1, 2, 3, 8], 0] = 1.0
    vec[[4, 5, 6], 1] = 1.0
    vec[:7] += 0.05 * rng.standard_normal((7, d)).astype(np.float32)
    vec[8] += 0.05 * rng.standard_normal(d).astype(np.float32)
    users, artists, ts = [], [], []
    for u in range(30):
        group = [0, 1, 2, 3] if u < 15 else [4, 5, 6]
        for j, a in enumerate(group):  # one session per user, a minute apart
            users.append(u)
            artists.append(a)
            ts.append(u * 10**9 + j * 60_000)
    users.append(0)
    artists.append(8)
    ts.append(10_000)
    seeds = pd.DataFrame(
        {
            "artist_id": ["a0", "a0", "a2", "a3"],
            "similar_artist_id": ["a1", "a4", "a7", "a5"],
            "editor": "ed",
            "created_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    rejections = pd.DataFrame(
        {
            "artist_id": ["a5", "a1"],
            "similar_artist_id": ["a3", "a2"],
            "editor": "ed",
            "created_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    kw = dict(
        artist_ids=IDS,
        pool_artist=np.array([True] * 7 + [False, True]),
        artist_factors=vec,
        event_user=np.array(users),
        event_artist=np.array(artists),
        event_ts_ms=np.array(ts, dtype=np.int64),
        event_weight=None,
        seeds=seeds,
        rejections=rejections,
        reviewed=frozenset({("a4", "a0")}),
    )
    kw.update(over)
    return GraphInputs(**kw)


def _lists(rel: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    return {
        a: list(zip(g["similar_artist_id"], g["provenance"], strict=True))
        for a, g in rel.sort_values(["artist_id", "rank"]).groupby("artist_id")
    }


def test_editorial_first_with_provenance_and_rejections_never() -> None:
    g = build_graph(_inputs())
    rel = g.relations
    lists = _lists(rel)
    # Editorial (and reviewed) relations first, in both directions.
    assert {x for x, _ in lists["a0"][:2]} == {"a1", "a4"}
    assert dict(lists["a0"])["a1"] == "editorial"
    assert dict(lists["a0"])["a4"] == "learned, reviewed"
    assert lists["a4"][0] == ("a0", "learned, reviewed")
    assert lists["a1"][0] == ("a0", "editorial")
    # Learned neighbours follow, from the same style only.
    learned_a0 = [x for x, p in lists["a0"] if p == "learned"]
    assert learned_a0 and set(learned_a0) <= {"a2", "a3"}
    # Refused pairs never appear, whichever way round, seed or learned.
    pairs = set(zip(rel["artist_id"], rel["similar_artist_id"], strict=False))
    for a, b in [("a3", "a5"), ("a1", "a2")]:
        assert (a, b) not in pairs and (b, a) not in pairs
    # Relations point at pool artists only; an artist outside keeps its editorial ones.
    assert "a7" not in set(rel["similar_artist_id"])
    assert lists["a7"] == [("a2", "editorial")]
    # Learned relations need pool artists with enough listeners (a8 has one).
    learned = rel.loc[rel["provenance"] == "learned"]
    assert not {"a7", "a8"} & (set(learned["artist_id"]) | set(learned["similar_artist_id"]))
    # Ranks are 1..m per artist, and every relation carries its evidence.
    for _, grp in rel.groupby("artist_id"):
        assert grp["rank"].sort_values().tolist() == list(range(1, len(grp) + 1))
    assert rel.loc[rel["provenance"] == "learned", "shared_listeners"].min() >= 3
    summary = g.summary
    assert summary["relations"]["editorial"] == 3  # a0-a1 both ways, a7->a2 (not a2->a7)
    assert summary["relations"]["learned, reviewed"] == 2
    assert summary["editorial_pairs_rejected"] == 1
    assert g.artists.set_index("artist_id").loc["a0", "seeded"]


def test_learned_mode_ignores_editors_but_not_rejections() -> None:
    rel = build_graph(_inputs(), GraphConfig(mode="learned")).relations
    assert set(rel["provenance"]) == {"learned"}
    pairs = set(zip(rel["artist_id"], rel["similar_artist_id"], strict=False))
    assert ("a0", "a4") not in pairs  # no first-party evidence for the editors' pair
    assert ("a1", "a2") not in pairs and ("a2", "a1") not in pairs


def test_plays_data_and_empty_inputs() -> None:
    n = len(_inputs().event_user)
    inputs = _inputs(event_ts_ms=None, event_weight=np.ones(n))
    assert len(build_graph(inputs).relations) > 0
    empty = _inputs(
        event_user=np.zeros(0, int),
        event_artist=np.zeros(0, int),
        event_ts_ms=np.zeros(0, np.int64),
        seeds=pd.DataFrame(columns=["artist_id", "similar_artist_id", "editor", "created_at"]),
        rejections=pd.DataFrame(columns=["artist_id", "similar_artist_id", "editor", "created_at"]),
        reviewed=frozenset(),
    )
    g = build_graph(empty)
    assert g.relations.empty and g.summary["relations"]["learned"] == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    data = generate_platform(tmp_path_factory.mktemp("g") / "data", scale="tiny", seed=11).out_dir
    return data, train(data, tmp_path_factory.mktemp("a") / "art").path


def test_trained_graph_invariants(trained) -> None:
    data, art = trained
    rel = pd.read_parquet(art / "graph/relations.parquet")
    tracks = pd.read_parquet(art / "catalogue/tracks.parquet")
    pool = set(tracks.loc[tracks["in_pool"], "artist_id"])
    seeds = pd.read_parquet(data / "editorial_seeds.parquet")
    rej = pd.read_parquet(data / "editorial_rejections.parquet")
    refused = set(zip(rej["artist_id"], rej["similar_artist_id"], strict=False))
    refused |= {(b, a) for a, b in refused}
    pairs = set(zip(rel["artist_id"], rel["similar_artist_id"], strict=False))
    assert not pairs & refused
    assert set(rel["similar_artist_id"]) <= pool
    learned = rel.loc[rel["provenance"] == "learned"]
    assert set(learned["artist_id"]) <= pool
    for a, b in zip(seeds["artist_id"], seeds["similar_artist_id"], strict=True):
        for x, y in ((a, b), (b, a)):
            if (x, y) in refused or y not in pool:
                continue
            mine = rel.loc[rel["artist_id"] == x]
            row = mine.loc[mine["similar_artist_id"] == y]
            assert len(row) == 1 and row["provenance"].iloc[0] == "editorial"
            learned_ranks = mine.loc[mine["provenance"] == "learned", "rank"]
            assert row["rank"].iloc[0] < learned_ranks.min() if len(learned_ranks) else True
    manifest_graph = pd.read_json(art / "manifest.json", typ="series")["graph"]
    assert manifest_graph["relations"]["editorial"] == int((rel["provenance"] == "editorial").sum())
    assert manifest_graph["params"]["mode"] == "anchored"
