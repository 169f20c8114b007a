"""Artist resources: similar artists."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import EngineDep
from serving.schemas import ID_PATTERN, MAX_K, ErrorOut, SimilarArtistsOut

router = APIRouter(prefix="/v1/artists", tags=["artists"])


@router.get(
    "/{artist_id}/similar",
    response_model=SimilarArtistsOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
def similar_artists(
    artist_id: Annotated[str, Path(pattern=ID_PATTERN, description="Artist id")],
    engine: EngineDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of artists")] = 20,
) -> SimilarArtistsOut:
    """Similar artists, editorial relations first, each with its provenance."""
    return SimilarArtistsOut.of(engine.listening.similar_artists(artist_id, k))
