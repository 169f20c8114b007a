"""The FastAPI application: routers per resource, artifact loaded in ``lifespan``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

import recsys
from recsys.state import StateStore
from recsys.surfaces.engine import Engine
from serving import errors
from serving.holder import ArtifactWatcher, EngineHolder, prepare_allocators
from serving.metrics import ServiceMetrics, ServiceMiddleware
from serving.routers import admin, artists, health, model, radio, users
from serving.settings import ServiceSettings
from serving.workers import WorkerLink

logger = logging.getLogger(__name__)


def create_app(
    settings: ServiceSettings | None = None,
    *,
    engine: Engine | None = None,
    link: WorkerLink | None = None,
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Where the artifact and the state file are, the admin token, limits;
        read from the environment by default.
    engine
        An already-loaded engine (tests, and the workers of ``--workers N``);
        otherwise the artifact in ``settings.artifact`` is loaded at start-up.
    link
        In a worker of ``recsys serve --workers N``: its channel to the
        supervisor, which reloads (and watches the artifact directory).
    """
    settings = settings or ServiceSettings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        prepare_allocators(settings.mmap_threshold)  # so that reloads give memory back
        store = StateStore(settings.state_path)  # a connection of this process's own
        # A forked worker's heap is frozen by its supervisor before the fork (and
        # must stay so: unfreezing would let collections copy the shared pages).
        holder = EngineHolder(
            store, settings.artifact, freeze_heap=settings.gc_freeze and link is None
        )
        if engine is not None:
            snapshot = store.snapshot()
            # A forked worker keeps the supervisor's engine (and its shared pages)
            # unless the platform state moved on since it was built.
            same = engine.state_generation == snapshot.generation
            holder.engine = engine if same and link is not None else engine.with_state(snapshot)
        else:
            holder.load_initial()
        if link is not None:
            holder.remote_reload = link.reload
            link.on_retire = holder.release_index_pages
        app.state.settings = settings
        app.state.holder = holder
        app.state.metrics = metrics
        watcher = None
        if settings.watch_interval_s > 0 and settings.artifact is not None and link is None:
            watcher = ArtifactWatcher(holder, settings.watch_interval_s)
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        holder.engine = None
        store.close()

    app = FastAPI(
        title="recsys",
        version=recsys.__version__,
        description="Music recommendations from the trusted pool, each with its reason.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(
        ServiceMiddleware,
        metrics=metrics,
        max_in_flight=settings.max_in_flight,
        retry_after_s=settings.retry_after_s,
        link=link,
    )
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(users.router)
    app.include_router(radio.router)
    app.include_router(artists.router)
    app.include_router(admin.router)
    return app
