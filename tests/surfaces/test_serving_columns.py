"""A server reads only the catalogue columns the surfaces use: the answers must not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.artifact.loaded import Artifact
from recsys.config import RetrievalConfig
from recsys.errors import ArtifactError
from recsys.pool import Takedowns
from recsys.state import StateSnapshot
from recsys.surfaces.engine import SERVING_CATALOGUE_COLUMNS, Engine, takedown_mask
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact

SPEC = SyntheticSpec(n_pool_tracks=1500, n_artists=60, n_users=80, factors=8, n_styles=4, seed=9)


def _answers(engine: Engine, art: Artifact) -> list:
    users = [str(u) for u in art.user_ids[:12]] + ["nobody"]
    artists = [str(a) for a in art.artists["artist_id"].iloc[:10]]
    tracks = [str(t) for t in art.tracks.loc[art.tracks["in_pool"], "track_id"].iloc[::150]]
    out: list = []
    for u in users:
        out.append(engine.recommender.for_user(u, 15))
        out.append(engine.listening.mixes(u, 3, 10))
        out.append(engine.listening.release_radar(u, 10))
    for a in artists:
        out.append(engine.listening.artist_radio(a, 20, user_id=users[0]))
        out.append(engine.listening.similar_artists(a, 5))
    out.extend(engine.listening.track_radio(t, 20) for t in tracks)
    return out


def test_the_serving_columns_give_the_same_answers(tmp_path: Path) -> None:
    publish_synthetic_artifact(tmp_path / "a", SPEC, retrieval=RetrievalConfig(exact_threshold=0))
    full = Artifact.load(tmp_path / "a")
    served = Artifact.load(tmp_path / "a", catalogue_columns=SERVING_CATALOGUE_COLUMNS)
    assert set(served.tracks.columns) == set(SERVING_CATALOGUE_COLUMNS)
    assert set(served.tracks.columns) < set(full.tracks.columns)  # something is left out
    # With takedowns of a track, an artist and a label, which read their own columns.
    t = full.tracks.loc[full.tracks["in_pool"]]
    state = StateSnapshot(
        generation=1,
        takedowns=Takedowns(
            track_ids=frozenset({str(t["track_id"].iloc[3])}),
            artist_ids=frozenset({str(t["artist_id"].iloc[40])}),
            label_ids=frozenset({str(t["label_id"].iloc[200])}),
        ),
        erased_users=frozenset({str(full.user_ids[1])}),
    )
    for snapshot in (None, state):
        a, b = Engine(full, state=snapshot), Engine(served, state=snapshot)
        assert a.blocked_tracks.sum() == b.blocked_tracks.sum()
        assert _answers(a, full) == _answers(b, served)


def test_a_missing_catalogue_column_is_refused(tmp_path: Path) -> None:
    publish_synthetic_artifact(tmp_path / "a", SPEC)
    with pytest.raises(ArtifactError):
        Artifact.load(tmp_path / "a", catalogue_columns=["no_such_column"])


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Artifact]:
    path = tmp_path_factory.mktemp("takedowns") / "a"
    publish_synthetic_artifact(path, SPEC)
    full = Artifact.load(path)
    return full, Artifact.load(path, catalogue_columns=SERVING_CATALOGUE_COLUMNS)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_takedowns_by_rows_and_codes_block_what_the_id_columns_say(
    both: tuple[Artifact, Artifact], data: st.DataObject
) -> None:
    """The served artifact keeps no artist or label id per track: its masks must still agree."""
    full, served = both
    t = full.tracks
    assert "artist_id" not in served.tracks and "label_id" not in served.tracks
    pick = st.lists(
        st.sampled_from(sorted(set(t["track_id"].astype(str))) + ["unknown"]), max_size=4
    )
    artists = st.lists(
        st.sampled_from(sorted(set(t["artist_id"].astype(str))) + ["nobody"]), max_size=3
    )
    labels = sorted(set(t["label_id"].dropna().astype(str))) + ["no-label"]
    takedowns = Takedowns(
        track_ids=frozenset(data.draw(pick)),
        artist_ids=frozenset(data.draw(artists)),
        label_ids=frozenset(data.draw(st.lists(st.sampled_from(labels), max_size=3))),
    )
    expected = (
        t["track_id"].isin(list(takedowns.track_ids)).to_numpy()
        | t["artist_id"].isin(list(takedowns.artist_ids)).to_numpy()
        | t["label_id"].isin(list(takedowns.label_ids)).to_numpy()
    )
    assert np.array_equal(takedown_mask(served, takedowns), expected)
    assert np.array_equal(takedown_mask(full, takedowns), expected)
