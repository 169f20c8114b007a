"""Request dependencies."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from recsys.surfaces.engine import Engine
from serving.holder import EngineHolder


def get_holder(request: Request) -> EngineHolder:
    return request.app.state.holder


async def get_engine(request: Request) -> Engine:
    """The engine at the start of this request (a reload does not change it mid-request).

    Taken on the event loop when the platform state has not moved (one SQLite
    read); applying a new state (a rebuild, possibly waiting for a reload's
    lock) happens in a worker thread, never on the loop.
    """
    holder = get_holder(request)
    engine = holder.fresh()
    if engine is not None:
        return engine
    return await run_in_threadpool(holder.current)


_bearer = HTTPBearer(auto_error=False, description="RECSYS_ADMIN_TOKEN")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Admin routes: a bearer token equal to ``RECSYS_ADMIN_TOKEN``, compared in constant time.

    No token configured means admin routes are off (403), never open.
    """
    token = request.app.state.settings.admin_token
    if token is None:
        raise HTTPException(403, "admin routes are disabled: RECSYS_ADMIN_TOKEN is not set")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
    return "admin"


EngineDep = Annotated[Engine, Depends(get_engine)]
HolderDep = Annotated[EngineHolder, Depends(get_holder)]
AdminDep = Annotated[str, Depends(require_admin)]
