"""Per-user surfaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from serving.deps import EngineDep
from serving.schemas import (
    ID_PATTERN,
    MAX_K,
    ErrorOut,
    MixesOut,
    RecommendationsOut,
    TrackListOut,
    recommendations_response,
)

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(pattern=ID_PATTERN, description="Platform user id")]

# The hot routes below are ``async``: they run on the event loop, because their
# few milliseconds of work mostly hold the GIL and a worker thread would only add
# GIL hand-offs (measured under load: lower p99 and less CPU per request, see
# docs/serving.md). Heavier, rarer routes stay in the thread pool.


@router.get(
    "/{user_id}/recommendations",
    response_model=RecommendationsOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def recommendations(
    user_id: UserId,
    engine: EngineDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of tracks")] = 20,
) -> Response:
    """Ranked pool tracks for the user; non-personalised (marked) when the model does not know them."""
    return recommendations_response(engine.recommender.for_user(user_id, k))


@router.get(
    "/{user_id}/mixes",
    response_model=MixesOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def mixes(
    user_id: UserId,
    engine: EngineDep,
    n: Annotated[int, Query(ge=1, le=50, description="Most mixes")] = 6,
    size: Annotated[int, Query(ge=1, le=MAX_K, description="Tracks per mix")] = 30,
) -> MixesOut:
    """The user's listening split into style mixes; editorial mixes when the model does not know them."""
    return MixesOut.of(engine.listening.mixes(user_id, n, size))


@router.get(
    "/{user_id}/release-radar",
    response_model=TrackListOut,
    responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def release_radar(
    user_id: UserId,
    engine: EngineDep,
    size: Annotated[int, Query(ge=1, le=MAX_K, description="Number of tracks")] = 30,
) -> TrackListOut:
    """Recent pool releases by the artists the user listens to and their neighbours."""
    return TrackListOut.of(engine.listening.release_radar(user_id, size))
