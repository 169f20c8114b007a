"""Prometheus metrics, request accounting, overload protection and access logs.

One pure-ASGI middleware does all four, because it sits on the hot path of
every request: it counts requests and latency per route template (never per
raw path, so ids cannot blow up the label space), refuses work beyond
``max_in_flight`` with a 503 and ``Retry-After``, and writes one structured
access-log record per request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

access_log = logging.getLogger("recsys.access")

#: Routes that must answer even when the service is saturated.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class ServiceMetrics:
    """The service's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "recsys_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "recsys_request_duration_seconds",
            "Request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.overloaded = Counter(
            "recsys_overloaded", "Requests refused with 503 (too many in flight)", registry=r
        )
        self.in_flight = Gauge("recsys_in_flight", "Requests being served", registry=r)
        self.model = Gauge("recsys_model_info", "Served model version", ["version"], registry=r)
        self.pool_size = Gauge("recsys_pool_size", "Tracks that may be served now", registry=r)
        self.takedowns = Gauge("recsys_takedowns", "Takedowns in force", ["entity"], registry=r)
        self.erasures = Gauge("recsys_erasures", "Users erased", registry=r)
        self.reloads = Gauge("recsys_reloads", "Artifact reloads by result", ["result"], registry=r)
        self.ready = Gauge("recsys_ready", "1 when an artifact is loaded", registry=r)
        # The process's resident memory, CPU time and open files (Linux), so that memory
        # during reloads, when two artifacts are held, can be watched in production too.
        ProcessCollector(registry=r)

    def render(self, holder: Any) -> bytes:
        """Refresh the gauges that describe the served state, then the text format."""
        engine = holder.engine
        self.model.clear()
        self.ready.set(1 if engine is not None else 0)
        if engine is not None:
            self.model.labels(version=engine.version).set(1)
            self.pool_size.set(engine.pool_size)
        snap = holder.store.snapshot()
        for entity, ids in (
            ("track", snap.takedowns.track_ids),
            ("artist", snap.takedowns.artist_ids),
            ("label", snap.takedowns.label_ids),
        ):
            self.takedowns.labels(entity=entity).set(len(ids))
        self.erasures.set(len(snap.erased_users))
        for result, n in holder.reloads.items():
            self.reloads.labels(result=result).set(n)
        return generate_latest(self.registry)


class ServiceMiddleware:
    """Metrics, bounded concurrency and access logs for every HTTP request."""

    def __init__(
        self,
        app: Any,
        *,
        metrics: ServiceMetrics,
        max_in_flight: int,
        retry_after_s: int,
        link: Any = None,
    ):
        self.app = app
        self.link = link  # a worker's WorkerLink: once it drains, answers close their connection
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_s).encode()
        # Only touched from the event loop thread: no lock needed.
        self.in_flight = 0

    async def _overloaded(self, send: Any) -> None:
        body = json.dumps(
            {"error": {"code": "overloaded", "message": "too many requests in flight; retry"}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", self.retry_after),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        counted = path not in EXEMPT
        method = scope["method"]
        if counted and self.in_flight >= self.max_in_flight:
            self.metrics.overloaded.inc()
            self.metrics.requests.labels(route="overloaded", method=method, status="503").inc()
            await self._overloaded(send)
            return
        status = [500]

        link = self.link

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if link is not None and link.draining:
                    # A retired worker: the client's next request goes to a new one.
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        if counted:
            self.in_flight += 1
            self.metrics.in_flight.set(self.in_flight)
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - t0
            if counted:
                self.in_flight -= 1
                self.metrics.in_flight.set(self.in_flight)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(route=template, method=method, status=str(status[0])).inc()
            self.metrics.latency.labels(route=template).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "http": {
                            "method": method,
                            "route": template,
                            "path": path,
                            "status": status[0],
                            "ms": round(elapsed * 1000, 3),
                        }
                    },
                )


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (time, level, logger, message, and any ``http`` fields)."""

    converter = time.gmtime  # timestamps in UTC, as the trailing Z says

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        http = getattr(record, "http", None)
        if http is not None:
            out["http"] = http
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)
