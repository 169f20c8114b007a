"""The listening surfaces as a library: ids, sizes, caps, takedowns, windows, names."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from recsys.artifact.loaded import Artifact
from recsys.errors import ConfigError, UnknownArtist, UnknownTrack
from recsys.pipeline import train
from recsys.surfaces.listening import ListeningSurfaces
from recsys.surfaces.settings import SurfaceSettings
from recsys.synth import generate_platform


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Artifact:
    data = generate_platform(tmp_path_factory.mktemp("s") / "data", scale="tiny", seed=9).out_dir
    return Artifact.load(train(data, tmp_path_factory.mktemp("a") / "art").path)


@pytest.fixture(scope="module")
def surfaces(artifact: Artifact) -> ListeningSurfaces:
    return ListeningSurfaces(artifact)


def _seeded(artifact: Artifact) -> str:
    rel = artifact.graph.relations
    return str(rel.loc[rel["provenance"] == "editorial", "artist_id"].value_counts().index[0])


def test_unknown_ids_and_bad_sizes(surfaces: ListeningSurfaces) -> None:
    with pytest.raises(UnknownArtist):
        surfaces.artist_radio("nope", 10)
    with pytest.raises(UnknownArtist):
        surfaces.similar_artists("nope", 10)
    with pytest.raises(UnknownTrack):
        surfaces.track_radio("nope", 10)
    artist = str(surfaces.ctx.artifact.artists["artist_id"].iloc[0])
    for call in (
        lambda: surfaces.artist_radio(artist, 0),
        lambda: surfaces.mixes("u1", 0, 5),
        lambda: surfaces.release_radar("u1", 0),
        lambda: surfaces.similar_artists(artist, 0),
    ):
        with pytest.raises(ValueError):
            call()


def test_radio_fills_large_sizes_under_the_cap(surfaces, artifact) -> None:
    artist = _seeded(artifact)
    items = surfaces.artist_radio(artist, 100).items
    assert len(items) == 100
    assert max(Counter(i.artist_id for i in items).values()) <= 3
    pool = set(artifact.tracks.loc[artifact.tracks["in_pool"], "track_id"])
    assert {i.track_id for i in items} <= pool
    one = ListeningSurfaces(artifact, SurfaceSettings(max_per_artist=1))
    items = one.artist_radio(artist, 20).items
    assert len({i.artist_id for i in items}) == len(items) == 20


def test_taken_down_tracks_and_artists_are_never_served(artifact) -> None:
    artist = _seeded(artifact)
    ed = artifact.graph.relations
    neighbour = ed.loc[(ed["artist_id"] == artist) & (ed["provenance"] == "editorial")]
    gone = str(neighbour["similar_artist_id"].iloc[0])
    blocked = (artifact.tracks["artist_id"] == gone).to_numpy().copy()
    blocked[artifact.tracks["artist_id"].to_numpy() == artist] = True
    s = ListeningSurfaces(artifact, blocked_tracks=blocked)
    ids = set(artifact.tracks.loc[blocked, "track_id"])
    assert not ids & {i.track_id for i in s.artist_radio(artist, 40).items}
    assert gone not in {i.artist_id for i in s.similar_artists(artist, 50).items}
    user = str(artifact.user_ids[0])
    for mix in s.mixes(user, 6, 20).mixes:
        assert not ids & {i.track_id for i in mix.items}


def test_release_radar_window(artifact, surfaces) -> None:
    user = str(artifact.user_ids[0])
    end = pd.Timestamp(artifact.manifest["data"]["window"]["end"]).date()
    items = surfaces.release_radar(user, 50).items
    dates = artifact.tracks.set_index("track_id")["release_date"]
    lo = pd.Timestamp(end - dt.timedelta(days=28))
    assert items and all(lo <= dates[i.track_id] <= pd.Timestamp(end) for i in items)
    kinds = {i.reason.kind for i in items}
    assert kinds <= {"new_release", "editorial_seed", "similar_artist"}
    old = SurfaceSettings(release_reference=dt.date(2020, 1, 1))
    assert ListeningSurfaces(artifact, old).release_radar(user, 10).items == []


def test_mix_names_fall_back_to_the_lead_artist(artifact, surfaces) -> None:
    user = str(artifact.user_ids[3])
    found = surfaces.mixes(user, 6, 12)
    assert found.personalized and found.mixes
    assert all(m.name.endswith(" mix") for m in found.mixes)
    untagged = dataclasses.replace(artifact, artist_tags=artifact.artist_tags.iloc[:0])
    names = [m.name for m in ListeningSurfaces(untagged).mixes(user, 6, 12).mixes]
    leads = [m.lead_artist_id for m in found.mixes]
    assert names and all(n.endswith("and similar artists") for n in names)
    assert len(leads) == len(set(leads))
    for m in found.mixes:
        kinds = Counter(i.reason.kind for i in m.items)
        assert set(kinds) <= {"familiar", "listened_artist", "editorial_seed", "similar_artist"}


def test_unknown_users_get_editorial_answers(surfaces, artifact) -> None:
    artist = _seeded(artifact)
    assert surfaces.artist_radio(artist, 10, user_id="ghost").personalized is False
    assert surfaces.release_radar("ghost", 10).personalized is False
    mixes = surfaces.mixes("ghost", 3, 10)
    assert mixes.personalized is False and 1 <= len(mixes.mixes) <= 3
    assert all(i.reason.kind != "familiar" for m in mixes.mixes for i in m.items)
    sims = surfaces.similar_artists(artist, 5).items
    assert sims[0].provenance == "editorial" and np.isclose(sims[0].score, 1.0)


def test_only_each_artists_most_listened_tracks_compete(artifact) -> None:
    ctx = ListeningSurfaces(artifact, SurfaceSettings(max_per_artist=2, tracks_per_artist=3)).ctx
    # The artist with most eligible tracks.
    counts = np.diff(ctx._artist_track_ptr)
    artist = int(np.argmax(counts))
    ranked = ctx.artist_tracks(artist)  # most listened first
    # The query: the vector of a track outside the artist's 3 most listened.
    outside = [r for r in ranked[3:].tolist() if ctx.model_row[r] >= 0]
    assert outside
    target = outside[-1]
    query = ctx.item_unit[ctx.model_row[target]].astype(np.float32)
    top3 = set(ranked[:3].tolist())
    rows, _ = ctx.best_tracks(artist, query, None, 2)
    assert len(rows) == 2 and set(rows.tolist()) <= top3
    many, _, ptr = ctx.best_tracks_many(np.array([artist, artist]), query, None, 2)
    assert ptr.tolist() == [0, 2, 4] and set(many.tolist()) <= top3
    # Held-back tracks make room for the next most listened.
    rows, _ = ctx.best_tracks(artist, query, ranked[:1], 2)
    assert set(rows.tolist()) <= set(ranked[1:4].tolist())
    # Without the cap a track outside the 3 most listened wins (the query's own
    # track, or one with the same vector), as good a fit as the query's own.
    wide = ListeningSurfaces(artifact, SurfaceSettings(tracks_per_artist=10**6)).ctx
    best, fit = wide.best_tracks(artist, query, None, 1)
    assert best[0] not in top3 and fit[0] >= wide.fit(np.array([target]), query)[0] - 1e-6
    with pytest.raises(ConfigError):
        SurfaceSettings(max_per_artist=3, tracks_per_artist=2)
