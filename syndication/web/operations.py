"""``/healthz`` and ``/metrics``: the routes that monitoring and orchestrators call.

``/healthz`` answers JSON, 200 when the process can do its work and 503 when it
cannot, so a load balancer or ``systemd``/Kubernetes probe needs no parsing. A
degraded process (every source failing) still answers 200: it serves feeds and pages
as well as ever, and taking it out of a load balancer (or restarting it) would only
take those down too, since every replica sees the same sources; monitoring reads the
``status`` field instead;
``/metrics`` answers the Prometheus text that ``Operations.metrics`` renders.
Neither may be cached: each request is a fresh look.

Must not: read the store or know the metrics format; ``Operations`` (in ``core``) does both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syndication.types import HealthReport

if TYPE_CHECKING:
    from syndication.web.app import Operations

__all__ = ["HEALTH_PATH", "METRICS_PATH", "health_json", "operations_routes"]

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def health_json(report: HealthReport) -> dict[str, object]:
    """The body of ``/healthz``: ages in seconds, null when unknown or not applicable."""

    return {
        "status": "fail" if not report.ok else "degraded" if report.degraded else "ok",
        "store": "ok" if report.store_ok else "fail",
        "scheduler": report.scheduler,
        "scheduler_age_seconds": _seconds(report.scheduler_age),
        "last_poll_age_seconds": _seconds(report.last_poll_age),
        "sources": report.sources,
        "sources_failing": report.sources_failing,
        "checked": report.checked.isoformat().replace("+00:00", "Z"),
    }


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else round(age.total_seconds(), 3)


def operations_routes(operations: Operations) -> list[Route]:
    """The two routes, answered from ``operations``."""
    return [
        Route(HEALTH_PATH, _health_endpoint(operations), methods=["GET"]),
        Route(METRICS_PATH, _metrics_endpoint(operations), methods=["GET"]),
    ]


def _health_endpoint(operations: Operations) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        report = await operations.health()
        return JSONResponse(health_json(report), status_code=200 if report.ok else 503, headers=_NO_STORE)

    return endpoint


def _metrics_endpoint(operations: Operations) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await operations.metrics()
        return Response(body, media_type=operations.metrics_content_type, headers=_NO_STORE)

    return endpoint
