"""Domain items: what every answer is made of."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.artifact.loaded import Artifact
from recsys.surfaces.recommend import Item, Reason, make_items
from recsys.synth.artifact import SyntheticSpec, publish_synthetic_artifact

SPEC = SyntheticSpec(n_pool_tracks=300, n_artists=12, n_users=10, factors=4, n_styles=2, seed=3)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    path: Path = tmp_path_factory.mktemp("items") / "a"
    publish_synthetic_artifact(path, SPEC)
    return Artifact.load(path)


def test_items_carry_the_catalogue_fields_of_their_rows(artifact: Artifact) -> None:
    t = artifact.tracks
    rows = [7, 0, 123]
    why = [Reason("popular", "p"), Reason("seed_artist", "By X", "a1", "X"), Reason("popular", "p")]
    items = make_items(artifact, rows, [0.5, 1.0, 0.25], why)
    assert [i.track_id for i in items] == [str(t["track_id"].iloc[r]) for r in rows]
    assert [i.artist_id for i in items] == [str(t["artist_id"].iloc[r]) for r in rows]
    assert [i.title for i in items] == [t["title"].iloc[r] for r in rows]
    assert [i.score for i in items] == [0.5, 1.0, 0.25]
    assert [i.reason for i in items] == why
    assert all(type(i.track_id) is str and type(i.score) is float for i in items)
    assert make_items(artifact, [], [], []) == []


def test_items_are_immutable_and_lengths_must_agree(artifact: Artifact) -> None:
    item = make_items(artifact, [1], [0.1], [Reason("popular", "p")])[0]
    assert isinstance(item, Item)
    with pytest.raises(AttributeError):
        item.score = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="2 tracks, 1 scores and 2 reasons"):
        make_items(artifact, [1, 2], [0.1], [Reason("popular", "p")] * 2)
