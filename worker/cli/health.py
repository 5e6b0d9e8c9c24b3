"""`herald health`: check once (JSON, exit 0 only if healthy), or `--serve` the probes.

Without `--serve`: PostgreSQL, Redis and the broker, as JSON; exit 0 when all are
healthy, 1 otherwise. With `--serve`: `/healthz`, `/readyz` and the deployment-wide
`/metrics` on `--host`/`--port` (default HERALD_HEALTH_HOST / HERALD_HEALTH_PORT)
until SIGTERM or Ctrl-C. An address it cannot listen on exits 1 with one line.
"""

from __future__ import annotations

import socket
import sys

import click

from worker.cli.common import emit, settings_or_exit
from worker.errors import RefusedError


@click.command()
@click.option("--timeout", default=3.0, show_default=True, help="Seconds per check.")
@click.option("--serve", is_flag=True, help="Serve /healthz, /readyz and /metrics over HTTP.")
@click.option("--host", help="Address to bind with --serve (default: HERALD_HEALTH_HOST).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to bind with --serve (default: HERALD_HEALTH_PORT).",
)
def health(timeout: float, serve: bool, host: str | None, port: int | None) -> None:
    """Check PostgreSQL, Redis and the broker; print JSON; exit 0 only if all are healthy."""
    if not serve and (host is not None or port is not None):
        raise click.UsageError("--host and --port only apply with --serve")
    if timeout <= 0:
        raise click.BadParameter(f"must be above 0 (got {timeout})", param_hint="--timeout")
    settings = settings_or_exit()
    if serve:
        _serve(settings.health_host if host is None else host, port or settings.health_port)
        return
    from worker.observability.health import run_checks

    result = run_checks(settings, timeout)
    emit(result)
    sys.exit(0 if result["status"] == "ok" else 1)


def _serve(host: str, port: int) -> None:
    problem = _cannot_listen(host, port)
    if problem is not None:
        raise RefusedError(f"cannot listen on {host}:{port}: {problem}")
    from worker.observability.health_server import serve
    from worker.settings import get_settings

    click.echo(f"herald: health on http://{host}:{port} (/healthz /readyz /metrics)", err=True)
    serve(get_settings(), host, port)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why binding would fail (bad address, port taken), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"unknown address ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


if __name__ == "__main__":  # `python -m worker.cli.health ARGS` is `herald health ARGS`
    from worker.cli.failures import HeraldGroup

    HeraldGroup("herald", commands=[health])(["health", *sys.argv[1:]])
