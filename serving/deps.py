"""Request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from recsys.errors import ArtifactError
from recsys.surfaces.engine import Engine


def get_engine(request: Request) -> Engine:
    """The engine at the start of this request (a reload does not change it mid-request)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise ArtifactError("no artifact loaded yet")
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]
