"""HTTP response schemas, kept apart from the library's domain objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from recsys.surfaces.recommend import Item, Recommendations

#: Largest page size any route accepts.
MAX_K = 500
#: What an id in a path may look like: no spaces, slashes or control characters.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$"


class ItemOut(BaseModel):
    track_id: str
    artist_id: str
    title: str | None = None
    score: float
    reason: str = Field(description="Why the item is here, in words.")
    reason_type: str = Field(
        description="listened_artist, popular, editorial_seed, similar_artist, ..."
    )
    reason_artist_id: str | None = Field(
        default=None, description="The artist that led to the item, when there is one."
    )

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(
            track_id=item.track_id,
            artist_id=item.artist_id,
            title=item.title,
            score=item.score,
            reason=item.reason.text,
            reason_type=item.reason.kind,
            reason_artist_id=item.reason.artist_id,
        )


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[ItemOut]
    personalized: bool
    model_version: str

    @classmethod
    def of(cls, rec: Recommendations) -> RecommendationsOut:
        return cls(
            user_id=rec.user_id,
            items=[ItemOut.of(i) for i in rec.items],
            personalized=rec.personalized,
            model_version=rec.model_version,
        )


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    ready: bool
    model_version: str | None = None


ManifestOut = dict[str, Any]
