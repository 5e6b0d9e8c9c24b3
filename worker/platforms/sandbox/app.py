"""The sandbox as one Starlette app, its blocking server, and its base URLs."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from worker.constants import PLATFORMS
from worker.platforms.sandbox import control, google, graph
from worker.platforms.sandbox.state import SandboxState

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def base_urls(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> dict[str, str]:
    """Each platform's base URL on a sandbox at ``host:port``."""
    return {platform: f"http://{host}:{port}/{platform}" for platform in PLATFORMS}


#: Base URLs of a sandbox on the default port (what development settings point at).
DEFAULT_BASE_URLS = base_urls()


def create_app() -> Starlette:
    """A fresh sandbox (empty ledger, no faults) as an ASGI app."""
    state = SandboxState()
    routes = [*control.routes(state), *graph.routes(state), *google.routes(state)]
    return Starlette(routes=routes)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the sandbox until interrupted (blocking)."""
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        # Longer than clients keep idle connections, so they never reuse a closed one.
        timeout_keep_alive=30,
        # Requests held by the timeout fault must not delay shutdown.
        timeout_graceful_shutdown=1,
    )
