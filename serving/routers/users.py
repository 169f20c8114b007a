"""Per-user surfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import EngineDep
from serving.schemas import ID_PATTERN, MAX_K, ErrorOut, RecommendationsOut

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(pattern=ID_PATTERN, description="Platform user id")]


@router.get(
    "/{user_id}/recommendations",
    response_model=RecommendationsOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def recommendations(
    user_id: UserId,
    engine: EngineDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of tracks")] = 20,
) -> RecommendationsOut:
    """Ranked pool tracks for the user; non-personalised (marked) when the model does not know them."""
    return RecommendationsOut.of(engine.recommender.for_user(user_id, k))
