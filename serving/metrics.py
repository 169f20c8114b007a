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
import os
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

access_log = logging.getLogger("recsys.access")

#: Routes that must answer even when the service is saturated.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when this process uses it.

    Set by ``recsys serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR``) before
    prometheus_client is imported: every worker then writes its samples to
    files there, and any worker's ``/metrics`` adds up all of them.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and values.ValueClass is not values.MutexValue else None


class ServiceMetrics:
    """The service's metrics, in a registry of their own (one per app).

    With several worker processes (:func:`multiprocess_dir`), counters and
    histograms are summed over the workers, live or exited, and the gauges
    that describe the served state are the highest of the live workers'
    (``livemax``; requests in flight: their sum). The process collector
    (resident memory, CPU) is left out there, since it would describe only
    the worker that answered.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        live = {"multiprocess_mode": "livemax"}
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
        self.in_flight = Gauge(
            "recsys_in_flight", "Requests being served", registry=r, multiprocess_mode="livesum"
        )
        self.model = Gauge(
            "recsys_model_info", "Served model version", ["version"], registry=r, **live
        )
        self.pool_size = Gauge(
            "recsys_pool_size", "Tracks that may be served now", registry=r, **live
        )
        self.takedowns = Gauge(
            "recsys_takedowns", "Takedowns in force", ["entity"], registry=r, **live
        )
        self.erasures = Gauge("recsys_erasures", "Users erased", registry=r, **live)
        self.reloads = reload_gauge(r)
        self.ready = Gauge("recsys_ready", "1 when an artifact is loaded", registry=r, **live)
        if not self.multiprocess:
            # The process's resident memory, CPU time and open files (Linux), so that
            # memory during reloads, when two artifacts are held, can be watched too.
            ProcessCollector(registry=r)

    def render(self, holder: Any) -> bytes:
        """Refresh the gauges that describe the served state, then the text format."""
        engine = holder.engine
        if not self.multiprocess:  # a worker serves one version for life (reloads re-fork)
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
        if not self.multiprocess:  # with workers, the supervisor reloads and counts
            for result, n in holder.reloads.items():
                self.reloads.labels(result=result).set(n)
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        multiprocess.MultiProcessCollector(everyone)
        return generate_latest(everyone)


def reload_gauge(registry: CollectorRegistry | None) -> Gauge:
    """``recsys_reloads{result}``: the server's reloads (with workers, the supervisor's)."""
    return Gauge(
        "recsys_reloads",
        "Artifact reloads by result",
        ["result"],
        registry=registry,
        multiprocess_mode="livemax",
    )


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
