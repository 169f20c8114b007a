"""The served model's manifest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.deps import EngineDep
from serving.schemas import ErrorOut

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", responses={503: {"model": ErrorOut}})
def model(engine: EngineDep) -> dict[str, Any]:
    """The manifest of the artifact being served (without the per-file checksums)."""
    manifest = dict(engine.artifact.manifest)
    manifest.pop("files", None)
    manifest["path"] = str(engine.artifact.path)
    return manifest
