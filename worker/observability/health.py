"""Reachability of what Herald stands on, and whether it is doing its work.

Each check returns status and latency; the whole is healthy only if every check is.
`herald health` runs :data:`CHECKS` (PostgreSQL, Redis, the broker) and prints JSON
(exit 0 only when healthy); `/readyz` runs :data:`READY_CHECKS`: those, plus workers
answering a ping, beat's heartbeat, queue backlogs and open dead letters. A check
that finds something wrong returns ``ok: False`` with an ``error`` saying what.

Results are JSON documents (`CheckResult`, `HealthReport`: TypedDicts): `herald health`
prints them and `/readyz` serves them as they are, each check with its own keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypedDict

import psycopg
import redis
from kombu import Connection

from worker.db.engine import get_engine, libpq_url
from worker.observability import probes
from worker.settings import Settings


class CheckResult(TypedDict, total=False):
    """One check's outcome: `ok`, `error` when not, `latency_ms`, and what it found."""

    ok: bool
    error: str
    latency_ms: float
    schema_revision: str | None  # database: the Alembic revision, None before migrating
    transport: str  # broker: kombu's transport class
    answered: int  # workers: how many answered a ping, and their names
    workers: list[str]
    age_s: float  # beat: seconds since its heartbeat, and the most allowed
    max_age_s: float
    queues: dict[str, int]  # backlog: messages waiting per queue
    max: int  # backlog, dead_letters: the most allowed
    open: int  # dead_letters: how many are open


class HealthReport(TypedDict):
    """`status` is `ok` only when every check is."""

    status: Literal["ok", "failing"]
    checks: dict[str, CheckResult]


Check = Callable[[Settings, float], CheckResult]


def check_database(settings: Settings, timeout: float) -> CheckResult:
    assert settings.database_url is not None
    with psycopg.connect(
        libpq_url(settings.database_url), connect_timeout=max(1, int(timeout))
    ) as conn:
        row = conn.execute(
            "SELECT version_num FROM alembic_version"
            " WHERE to_regclass('alembic_version') IS NOT NULL"
        ).fetchone()
    return {"schema_revision": row[0] if row else None}


def check_redis(settings: Settings, timeout: float) -> CheckResult:
    assert settings.redis_url is not None
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_broker(settings: Settings, timeout: float) -> CheckResult:
    with Connection(settings.effective_broker_url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=max(1, int(timeout)))
        transport = conn.transport_cls
    return {"transport": str(transport)}


#: Beat counts as stalled when its heartbeat is older than this many intervals.
HEARTBEAT_MISSED_INTERVALS = 3
#: Seconds a readiness ping waits for workers' replies (at most the check's timeout).
PING_TIMEOUT_S = 1.0


def _failed(details: CheckResult, error: str) -> CheckResult:
    """`details` with `ok: False` and `error` after what the check found."""
    return {**details, "ok": False, "error": error}


def check_workers(settings: Settings, timeout: float) -> CheckResult:
    answered = probes.ping_workers(settings, min(timeout, PING_TIMEOUT_S))
    details: CheckResult = {"answered": len(answered), "workers": answered}
    if not answered:
        return _failed(details, f"no worker answered a ping within {PING_TIMEOUT_S}s")
    return details


def check_beat(settings: Settings, timeout: float) -> CheckResult:
    age = probes.heartbeat_age(settings, timeout)
    limit = HEARTBEAT_MISSED_INTERVALS * settings.heartbeat_interval
    if age is None:
        return {"ok": False, "error": "beat has never sent a heartbeat", "max_age_s": limit}
    details: CheckResult = {"age_s": round(age, 2), "max_age_s": limit}
    if age > limit:
        return _failed(details, f"beat's last heartbeat was {age:.0f}s ago (> {limit}s)")
    return details


def check_backlog(settings: Settings, timeout: float) -> CheckResult:
    depths = probes.queue_depths(settings, timeout)
    limit = settings.ready_max_backlog
    details: CheckResult = {"queues": depths, "max": limit}
    over = [f"{queue} holds {depth}" for queue, depth in depths.items() if depth > limit]
    if over:
        return _failed(details, f"backlog over {limit}: {', '.join(over)}")
    return details


def check_dead_letters(settings: Settings, timeout: float) -> CheckResult:
    with get_engine().connect() as conn:
        by_task = probes.open_dead_letters(conn)
    total, limit = sum(by_task.values()), settings.ready_max_dead_letters
    details: CheckResult = {"open": total, "max": limit}
    if total > limit:
        return _failed(details, f"{total} dead letters are open (> {limit})")
    return details


CHECKS: dict[str, Check] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}

READY_CHECKS: dict[str, Check] = {
    **CHECKS,
    "workers": check_workers,
    "beat": check_beat,
    "backlog": check_backlog,
    "dead_letters": check_dead_letters,
}


def run_checks(
    settings: Settings, timeout: float = 3.0, checks: dict[str, Check] | None = None
) -> HealthReport:
    """Every check's outcome; an exception is a failed check, named by its type."""
    results: dict[str, CheckResult] = {}
    for name, check in (CHECKS if checks is None else checks).items():
        started = time.perf_counter()
        try:
            details = check(settings, timeout)
            outcome: CheckResult = {"ok": True, **details}
        except Exception as exc:
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {_first_line(exc)}"}
        outcome["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = outcome
    healthy = all(result.get("ok") for result in results.values())
    return {"status": "ok" if healthy else "failing", "checks": results}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
