"""The FastAPI application: routers per resource, artifact loaded in ``lifespan``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

import recsys
from recsys.surfaces.engine import Engine
from serving import errors
from serving.routers import artists, health, model, radio, users
from serving.settings import ServiceSettings

logger = logging.getLogger(__name__)


def create_app(settings: ServiceSettings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Where the artifact is, tokens, limits; read from the environment by default.
    engine
        An already-loaded engine (tests); otherwise the artifact in
        ``settings.artifact`` is loaded at start-up.
    """
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.engine = engine
        if engine is None and settings.artifact is not None:
            app.state.engine = Engine.load(Path(settings.artifact))
            logger.info("serving artifact %s", app.state.engine.version)
        yield
        app.state.engine = None

    app = FastAPI(
        title="recsys",
        version=recsys.__version__,
        description="Music recommendations from the trusted pool, each with its reason.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(users.router)
    app.include_router(radio.router)
    app.include_router(artists.router)
    return app
