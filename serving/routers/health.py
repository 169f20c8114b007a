"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(request: Request):
    """Ready once an artifact is loaded; 503 before."""
    engine = request.app.state.holder.engine
    if engine is None:
        return JSONResponse(status_code=503, content={"ready": False, "model_version": None})
    return ReadyOut(ready=True, model_version=engine.version)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency per route, model version, pool size, takedowns."""
    body = request.app.state.metrics.render(request.app.state.holder)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
