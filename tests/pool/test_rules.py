from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.contract.schema import AI_DISCLOSURES, LABEL_STATUSES, TRACK_STATUSES
from recsys.pool import REASONS, PoolRules, Takedowns, build_pool


def _catalogue(draw_labels, draw_artists, draw_tracks):
    labels = pd.DataFrame(
        {
            "label_id": [f"l{i}" for i in range(len(draw_labels))],
            "name": None,
            "status": draw_labels,
        }
    )
    artists = pd.DataFrame(
        {
            "artist_id": [f"a{i}" for i in range(len(draw_artists))],
            "name": None,
            "label_id": [f"l{lab}" for lab, _ in draw_artists],
            "verified": [v for _, v in draw_artists],
        }
    )
    tracks = pd.DataFrame(
        {
            "track_id": [f"t{i}" for i in range(len(draw_tracks))],
            "artist_id": [f"a{a}" for a, *_ in draw_tracks],
            "ai_disclosure": [d for _, d, _, _ in draw_tracks],
            "ai_score": [s for _, _, s, _ in draw_tracks],
            "status": [st_ for *_, st_ in draw_tracks],
        }
    )
    return labels, artists, tracks


@st.composite
def catalogues(draw):
    n_labels = draw(st.integers(1, 4))
    label_status = draw(
        st.lists(st.sampled_from(LABEL_STATUSES), min_size=n_labels, max_size=n_labels)
    )
    n_artists = draw(st.integers(1, 6))
    artists = draw(
        st.lists(
            st.tuples(st.integers(0, n_labels - 1), st.booleans()),
            min_size=n_artists,
            max_size=n_artists,
        )
    )
    tracks = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_artists - 1),
                st.sampled_from(AI_DISCLOSURES),
                st.one_of(st.none(), st.floats(0, 1)),
                st.sampled_from(TRACK_STATUSES),
            ),
            min_size=0,
            max_size=25,
        )
    )
    opt = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("artist"), st.integers(0, n_artists - 1).map(lambda i: f"a{i}")),
                st.tuples(st.just("label"), st.integers(0, n_labels - 1).map(lambda i: f"l{i}")),
            ),
            max_size=3,
        )
    )
    take = draw(st.lists(st.integers(0, 30).map(lambda i: f"t{i}"), max_size=3))
    return _catalogue(label_status, artists, tracks), opt, take


def _rule(track, artist, label_status, opted, taken_down) -> bool:
    """The contract's rule, written out row by row as an independent oracle."""
    score = track["ai_score"]
    return (
        track["status"] == "active"
        and track["track_id"] not in taken_down
        and track["ai_disclosure"] != "generated"
        and (score is None or (isinstance(score, float) and math.isnan(score)) or score < 0.5)
        and bool(artist["verified"])
        and label_status in ("verified", "trusted_partner")
        and ("artist", artist["artist_id"]) not in opted
        and ("label", artist["label_id"]) not in opted
    )


@settings(max_examples=200, deadline=None)
@given(catalogues())
def test_pool_matches_contract_rule(case) -> None:
    (labels, artists, tracks), opt, take = case
    opt_outs = pd.DataFrame(opt, columns=["entity_type", "entity_id"])
    pool = build_pool(
        tracks, artists, labels, opt_outs, takedowns=Takedowns(track_ids=frozenset(take))
    )
    a_by_id = artists.set_index("artist_id")
    status = labels.set_index("label_id")["status"]
    for i, t in tracks.iterrows():
        a = a_by_id.loc[t["artist_id"]]
        a = {"artist_id": t["artist_id"], "verified": a["verified"], "label_id": a["label_id"]}
        expected = _rule(t, a, status[a["label_id"]], set(opt), set(take))
        assert pool.eligible[i] == expected
        # Every excluded track has at least one reason, an eligible one none.
        assert pool.reasons[i].any() == (not expected)
    assert pool.size + len(pool.exclusions()) == len(tracks)


def test_reason_codes_known_answer() -> None:
    labels = pd.DataFrame(
        {"label_id": ["l1", "l2"], "name": None, "status": ["verified", "unverified"]}
    )
    artists = pd.DataFrame(
        {
            "artist_id": ["a1", "a2", "a3"],
            "name": None,
            "label_id": ["l1", "l2", "l1"],
            "verified": [True, True, False],
        }
    )
    tracks = pd.DataFrame(
        {
            "track_id": ["ok", "down", "gen", "score", "lab", "unv", "opt", "edge"],
            "artist_id": ["a1", "a1", "a1", "a1", "a2", "a3", "a1", "a1"],
            "ai_disclosure": [
                "none",
                "none",
                "generated",
                "assisted",
                "none",
                "none",
                "none",
                "none",
            ],
            "ai_score": [0.1, None, None, 0.7, None, None, None, 0.5],
            "status": [
                "active",
                "taken_down",
                "active",
                "active",
                "active",
                "active",
                "active",
                "active",
            ],
        }
    )
    pool = build_pool(
        tracks,
        artists,
        labels,
        pd.DataFrame({"entity_type": [], "entity_id": []}),
        takedowns=Takedowns(track_ids=frozenset({"opt"})),
    )
    ex = pool.exclusions().set_index("track_id")["reasons"].to_dict()
    assert ex == {
        "down": "track_taken_down",
        "gen": "ai_generated_declared",
        "score": "ai_score_high",
        "lab": "label_untrusted",
        "unv": "artist_unverified",
        "opt": "takedown_track",
        "edge": "ai_score_high",  # the threshold itself is excluded: "below 0.5" is allowed
    }
    assert list(pool.track_ids[pool.eligible]) == ["ok"]
    assert pool.summary()["excluded_by_reason"]["ai_score_high"] == 2
    assert set(pool.counts()) <= set(REASONS)


def test_threshold_is_a_setting() -> None:
    labels = pd.DataFrame({"label_id": ["l1"], "name": None, "status": ["verified"]})
    artists = pd.DataFrame(
        {"artist_id": ["a1"], "name": None, "label_id": ["l1"], "verified": [True]}
    )
    tracks = pd.DataFrame(
        {
            "track_id": ["t"],
            "artist_id": ["a1"],
            "ai_disclosure": ["none"],
            "ai_score": [0.6],
            "status": ["active"],
        }
    )
    assert not build_pool(tracks, artists, labels).eligible[0]
    assert build_pool(tracks, artists, labels, rules=PoolRules(ai_score_threshold=0.7)).eligible[0]
    assert np.all(build_pool(tracks.iloc[:0], artists, labels).eligible == np.array([], dtype=bool))
