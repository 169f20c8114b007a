"""The hot routes' direct JSON rendering matches their declared response models."""

from __future__ import annotations

import json

from recsys.surfaces.listening import TrackList
from recsys.surfaces.recommend import Item, Reason, Recommendations
from serving.schemas import (
    RecommendationsOut,
    TrackListOut,
    recommendations_response,
    track_list_response,
)

ITEMS = [
    Item(
        "t1",
        "a1",
        "Über — “quoted” \\ title",
        0.75,
        Reason("listened_artist", "Because you listen to Ÿ", "a9", "Ÿ"),
    ),
    Item("t2", "a2", None, -0.125, Reason("popular", "Popular with listeners on the platform")),
    Item("t3", "a3", "x", 1e-9, Reason("editorial_seed", "Editors pair B with A", "a1", "A")),
]


def test_recommendations_render_as_the_model_would() -> None:
    for personalized in (True, False):
        rec = Recommendations("u1", ITEMS, personalized, "v1")
        response = recommendations_response(rec)
        assert response.media_type == "application/json"
        body = json.loads(response.body)
        assert body == RecommendationsOut.of(rec).model_dump(mode="json")
        assert RecommendationsOut.model_validate_json(response.body) == RecommendationsOut.of(rec)


def test_track_lists_render_as_the_model_would() -> None:
    for user_id in ("u1", None):
        tracks = TrackList(ITEMS, user_id is not None, "v1", user_id)
        response = track_list_response(tracks)
        body = json.loads(response.body)
        assert body == TrackListOut.of(tracks).model_dump(mode="json")
        assert TrackListOut.model_validate_json(response.body) == TrackListOut.of(tracks)
    empty = TrackList([], False, "v1")
    assert json.loads(track_list_response(empty).body)["items"] == []
