"""`herald health --serve`: /healthz, /readyz and the deployment-wide /metrics.

* ``/healthz`` — 200 ``{"status": "ok"}`` while the process lives (liveness: restart
  it only if this fails).
* ``/readyz`` — every readiness check (:data:`~worker.observability.health.READY_CHECKS`)
  as JSON with per-check status and latency; 200 when all pass, 503 otherwise.
* ``/metrics`` — this process's metrics plus the scrape-time
  :class:`~worker.observability.collectors.ClusterCollector`.

Checks are blocking I/O: the endpoints are plain functions, which Starlette runs in
its thread pool, so a slow check never stalls ``/healthz``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.observability.collectors import ClusterCollector
from worker.observability.health import READY_CHECKS, run_checks
from worker.observability.task_metrics import instrument_db_pool
from worker.settings import Settings

#: Seconds each readiness check may take.
READY_CHECK_TIMEOUT_S = 3.0


def build_app(settings: Settings, registry: CollectorRegistry = REGISTRY) -> Starlette:
    """The ASGI app; `registry` gets the cluster collector (once per app)."""
    registry.register(ClusterCollector(settings))
    instrument_db_pool("health")

    def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(_: Request) -> Response:
        result = run_checks(settings, READY_CHECK_TIMEOUT_S, READY_CHECKS)
        return JSONResponse(result, status_code=200 if result["status"] == "ok" else 503)

    def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both gracefully)."""
    import uvicorn

    uvicorn.run(build_app(settings), host=host, port=port, log_config=None, access_log=False)
