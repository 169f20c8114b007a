"""Admin routes: takedowns, erasure, reload. Bearer token required (``RECSYS_ADMIN_TOKEN``)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from recsys.errors import ArtifactError
from serving.deps import AdminDep, HolderDep
from serving.schemas import ID_PATTERN, ErrorOut

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)

#: Most ids one takedown request may carry per entity type.
MAX_IDS = 10_000
EntityId = Annotated[str, Field(pattern=ID_PATTERN)]


class TakedownIn(BaseModel):
    track_ids: list[EntityId] = Field(default_factory=list, max_length=MAX_IDS)
    artist_ids: list[EntityId] = Field(default_factory=list, max_length=MAX_IDS)
    label_ids: list[EntityId] = Field(default_factory=list, max_length=MAX_IDS)


class TakedownOut(BaseModel):
    added: int = Field(description="Takedowns that were not recorded before")
    tracks: int
    artists: int
    labels: int
    state_generation: int


class ErasureOut(BaseModel):
    user_id: str
    erased: bool
    new: bool = Field(description="False when the user was already erased")
    state_generation: int


class ReloadOut(BaseModel):
    reloaded: bool
    model_version: str


@router.post("/takedowns", response_model=TakedownOut)
def takedowns(body: TakedownIn, holder: HolderDep, actor: AdminDep) -> TakedownOut:
    """Exclude tracks, artists or labels from every answer from the next request on.

    Recorded durably (SQLite), applied to the served engine before this
    answer returns, and read by every later ``recsys train``.
    """
    added = holder.store.add_takedowns(
        track_ids=body.track_ids, artist_ids=body.artist_ids, label_ids=body.label_ids, actor=actor
    )
    engine = holder.refresh()
    t = holder.store.takedowns()
    logger.info("takedown request: %d new", added)
    return TakedownOut(
        added=added,
        tracks=len(t.track_ids),
        artists=len(t.artist_ids),
        labels=len(t.label_ids),
        state_generation=engine.state_generation,
    )


@router.delete("/users/{user_id}", response_model=ErasureOut)
def erase_user(
    user_id: Annotated[str, Path(pattern=ID_PATTERN)], holder: HolderDep, actor: AdminDep
) -> ErasureOut:
    """Erasure: the user is no longer personalised, at once; the next training holds none of their data."""
    new = holder.store.erase_user(user_id, actor=actor)
    engine = holder.refresh()
    return ErasureOut(
        user_id=user_id, erased=True, new=new, state_generation=engine.state_generation
    )


@router.post("/reload", response_model=ReloadOut, responses={409: {"model": ErrorOut}})
def reload(holder: HolderDep, actor: AdminDep):
    """Load the newest artifact beside the current one and swap; a broken one is refused."""
    try:
        changed, version = holder.request_reload()
    except ArtifactError as exc:
        return JSONResponse(
            status_code=409,
            content={"error": {"code": "artifact_refused", "message": str(exc)}},
        )
    return ReloadOut(reloaded=changed, model_version=version)
