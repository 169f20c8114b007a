"""Artist and track radios."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from serving.deps import EngineDep
from serving.schemas import ID_PATTERN, MAX_K, ErrorOut, TrackListOut, track_list_response

router = APIRouter(prefix="/v1/radio", tags=["radio"])

Size = Annotated[int, Query(ge=1, le=MAX_K, description="Number of tracks")]
UserId = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="Listener to personalise for (optional)"),
]
_ERRORS = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}}

# The hot routes below are ``async``: they run on the event loop, because their
# few milliseconds of work mostly hold the GIL and a worker thread would only add
# GIL hand-offs (measured under load: lower p99 and less CPU per request, see
# docs/serving.md). The other routes stay in the thread pool.


@router.get("/artists/{artist_id}", response_model=TrackListOut, responses=_ERRORS)
async def artist_radio(
    artist_id: Annotated[str, Path(pattern=ID_PATTERN, description="Seed artist id")],
    engine: EngineDep,
    size: Size = 50,
    user_id: UserId = None,
) -> Response:
    """A radio from an artist: its editorial neighbours first, then similar artists and tracks."""
    return track_list_response(engine.listening.artist_radio(artist_id, size, user_id=user_id))


@router.get("/tracks/{track_id}", response_model=TrackListOut, responses=_ERRORS)
async def track_radio(
    track_id: Annotated[str, Path(pattern=ID_PATTERN, description="Seed track id")],
    engine: EngineDep,
    size: Size = 50,
    user_id: UserId = None,
) -> Response:
    """A radio from a track: the track, then tracks and artists around it."""
    return track_list_response(engine.listening.track_radio(track_id, size, user_id=user_id))
