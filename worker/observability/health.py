"""Reachability of what Herald stands on: PostgreSQL, Redis, the broker.

Each check returns status and latency; the whole is healthy only if every check is.
`herald health` prints it as JSON (exit 0 only when healthy); later, `/readyz`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from kombu import Connection

from worker.db.engine import libpq_url
from worker.settings import Settings

Check = Callable[[Settings, float], dict[str, Any]]


def check_database(settings: Settings, timeout: float) -> dict[str, Any]:
    assert settings.database_url is not None
    with psycopg.connect(
        libpq_url(settings.database_url), connect_timeout=max(1, int(timeout))
    ) as conn:
        row = conn.execute(
            "SELECT version_num FROM alembic_version"
            " WHERE to_regclass('alembic_version') IS NOT NULL"
        ).fetchone()
    return {"schema_revision": row[0] if row else None}


def check_redis(settings: Settings, timeout: float) -> dict[str, Any]:
    assert settings.redis_url is not None
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_broker(settings: Settings, timeout: float) -> dict[str, Any]:
    with Connection(settings.effective_broker_url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=max(1, int(timeout)))
        transport = conn.transport_cls
    return {"transport": str(transport)}


CHECKS: dict[str, Check] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}


def run_checks(settings: Settings, timeout: float = 3.0) -> dict[str, Any]:
    """Every check's outcome; an exception is a failed check, named by its type."""
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            details = check(settings, timeout)
            outcome: dict[str, Any] = {"ok": True, **details}
        except Exception as exc:
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {_first_line(exc)}"}
        outcome["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = outcome
    healthy = all(result["ok"] for result in results.values())
    return {"status": "ok" if healthy else "failing", "checks": results}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
