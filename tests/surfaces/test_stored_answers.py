"""Recommendations and artist radios from stored answers: the live answers, takedowns respected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from recsys.artifact.loaded import Artifact
from recsys.artifact.publish import compute_stored_answers
from recsys.config import RetrievalConfig
from recsys.pool.rules import Takedowns
from recsys.retrieval import VectorIndex
from recsys.state import StateSnapshot
from recsys.surfaces.engine import Engine
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact

SPEC = SyntheticSpec(n_pool_tracks=3000, n_artists=120, n_users=200, factors=16, n_styles=5, seed=3)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Artifact:
    dest = tmp_path_factory.mktemp("answers") / "a"
    # HNSW indexes, as a large pool gets them.
    publish_synthetic_artifact(dest, SPEC, retrieval=RetrievalConfig(exact_threshold=0))
    return Artifact.load(dest)


def _live(artifact: Artifact) -> Artifact:
    """The same artifact without stored answers: every request searches the index."""
    return dataclasses.replace(artifact, user_answers=None, artist_answers=None)


def _same(a, b) -> bool:
    return [(i.track_id, i.reason) for i in a] == [(i.track_id, i.reason) for i in b] and (
        np.allclose([i.score for i in a], [i.score for i in b], rtol=1e-5, atol=1e-6)
    )


@pytest.fixture
def count_searches(monkeypatch) -> dict[str, int]:
    """Counts graph searches by index metric."""
    calls = {"ip": 0, "cosine": 0}
    search = VectorIndex.search

    def counted(self, *args, **kwargs):
        calls[self.metric] += 1
        return search(self, *args, **kwargs)

    monkeypatch.setattr(VectorIndex, "search", counted)
    return calls


def test_artifact_stores_answers_for_users_and_artists(artifact: Artifact) -> None:
    assert artifact.user_answers.ids.shape == (SPEC.n_users, 50)
    with_vector = np.linalg.norm(artifact.artist_factors, axis=1) > 0
    assert artifact.artist_answers.rows.tolist() == np.flatnonzero(with_vector).tolist()
    assert artifact.artist_answers.n_queries == len(artifact.artists)
    assert artifact.artist_answers.depth == 100
    assert artifact.manifest["retrieval"]["stored_answers"]["users"] == {
        "stored": SPEC.n_users,
        "depth": 50,
    }
    assert artifact.manifest["retrieval"]["user_track"]["kind"] == "hnsw"


def test_only_the_most_active_users_get_answers(artifact: Artifact, count_searches) -> None:
    a = artifact
    users, _ = compute_stored_answers(
        a.user_index,
        a.item_index,
        a.user_factors,
        a.seen,
        a.artist_factors,
        users_depth=20,
        artists_depth=0,
        max_users=50,
    )
    heard = np.diff(a.seen.indptr)
    assert users.n_stored == 50 and users.n_queries == SPEC.n_users
    assert heard[users.rows].min() >= np.sort(heard)[-50]  # the 50 most active
    capped = dataclasses.replace(a, user_answers=users)
    stored, live = Engine(capped).recommender, Engine(_live(a)).recommender
    count_searches["ip"] = 0
    for row in range(SPEC.n_users):
        user = str(a.user_ids[row])
        assert _same(stored.for_user(user, 10).items, live.for_user(user, 10).items)
    # The live engine searched for everyone, the capped one for the 150 others.
    assert count_searches["ip"] == SPEC.n_users + (SPEC.n_users - 50)


def test_recommendations_from_stored_answers_are_the_live_ones(artifact, count_searches) -> None:
    stored, live = Engine(artifact).recommender, Engine(_live(artifact)).recommender
    for user in artifact.user_ids.tolist():
        for k in (1, 20, 50):
            assert _same(stored.for_user(user, k).items, live.for_user(user, k).items), (user, k)
    # Each live call searched once; the stored ones never did.
    assert count_searches["ip"] == 3 * SPEC.n_users
    # Deeper than stored, or with the caller's exclusions: live again.
    user = str(artifact.user_ids[0])
    assert _same(stored.for_user(user, 60).items, live.for_user(user, 60).items)
    first = stored.for_user(user, 5).items[0].track_id
    out = stored.for_user(user, 5, exclude_track_ids=[first]).items
    assert first not in {i.track_id for i in out}
    assert _same(out, live.for_user(user, 5, exclude_track_ids=[first]).items)
    assert count_searches["ip"] == 3 * SPEC.n_users + 4


def test_artist_radios_from_stored_answers_are_the_live_ones(artifact, count_searches) -> None:
    stored, live = Engine(artifact).listening, Engine(_live(artifact)).listening
    for artist in artifact.artists["artist_id"].tolist():
        assert _same(stored.artist_radio(artist, 50).items, live.artist_radio(artist, 50).items)
    assert count_searches["cosine"] == len(artifact.artists)  # the live engine's only
    # Track radios and personalised radios search live.
    track = str(artifact.tracks.loc[artifact.tracks["in_pool"], "track_id"].iloc[0])
    stored.track_radio(track, 20)
    user = str(artifact.user_ids[0])
    stored.artist_radio(artifact.artists["artist_id"].iloc[0], 20, user_id=user)
    assert count_searches["cosine"] == len(artifact.artists) + 2


def test_a_takedown_in_a_stored_answer_sends_the_request_live(
    artifact, count_searches, tmp_path: Path
) -> None:
    user = str(artifact.user_ids[3])
    engine = Engine(artifact)
    top = [i.track_id for i in engine.recommender.for_user(user, 20).items]
    radio = engine.listening.artist_radio(str(artifact.artists["artist_id"].iloc[5]), 50)
    from_search = [i.track_id for i in radio.items if i.reason.text.startswith("Sounds like")]
    assert count_searches["ip"] == 0 and count_searches["cosine"] == 0
    gone = [top[4], from_search[0]]
    state = StateSnapshot(1, Takedowns(track_ids=frozenset(gone)), frozenset())
    after = engine.with_state(state)
    recs = after.recommender.for_user(user, 20).items
    assert count_searches["ip"] == 1  # the stored answer holds a taken-down track
    assert top[4] not in {i.track_id for i in recs} and len(recs) == 20
    live = Engine(_live(artifact), state=state)
    assert _same(recs, live.recommender.for_user(user, 20).items)
    again = after.listening.artist_radio(str(artifact.artists["artist_id"].iloc[5]), 50)
    assert from_search[0] not in {i.track_id for i in again.items}
    assert count_searches["cosine"] == 1
    # A takedown outside a user's stored prefix leaves the stored answer in use.
    rows = artifact.track_rows(gone)
    gone_items = artifact.tracks["model_row"].to_numpy()[rows]
    stored = artifact.user_answers  # every user's (fewer than answer_max_users)
    clear = ~np.isin(stored.ids[:, :3], gone_items).any(axis=1)
    other = str(artifact.user_ids[stored.rows[np.flatnonzero(clear)[0]]])
    assert not set(gone) & {i.track_id for i in after.recommender.for_user(other, 3).items}
    assert count_searches["ip"] == 2  # the two above (stored answer with a takedown, live engine)


def test_the_engine_shares_one_popular_list_equal_to_the_recommenders_own(
    artifact: Artifact,
) -> None:
    """The recommender's popular list, passed in from the context, is the one it would rank."""
    from recsys.surfaces.recommend import Recommender

    tracks = artifact.tracks
    # Ties in listeners (ranked by row) and a taken-down artist.
    assert tracks["listeners"].duplicated().any()
    gone = str(tracks.loc[tracks["in_pool"], "artist_id"].iloc[0])
    engine = Engine(
        artifact,
        state=StateSnapshot(
            generation=1,
            takedowns=Takedowns(artist_ids=frozenset({gone})),
            erased_users=frozenset(),
        ),
    )
    blocked = engine.blocked_tracks
    assert blocked.any()
    own = Recommender(artifact, blocked_items=blocked[artifact.item_track], blocked_tracks=blocked)
    assert engine.recommender._popular is engine.listening.ctx.popular_rows
    np.testing.assert_array_equal(own._popular, engine.recommender._popular)
    assert not np.isin(own._popular, np.flatnonzero(blocked)).any()
