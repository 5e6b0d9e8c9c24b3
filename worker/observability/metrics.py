"""Prometheus metrics: names and labels are a contract with deploy/ (alerts, dashboard).

Counters and histograms are recorded where things happen (in prefork children too:
multiprocess mode, see :mod:`worker.observability.metrics_server`); gauges that
describe the whole deployment (queue depth, open dead letters, breaker state, backup
age, workers answering) are read at scrape time by
:class:`worker.observability.collectors.ClusterCollector`, whose names are declared in
:data:`CLUSTER_METRICS` so that this file lists every metric Herald exposes.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

TASKS = Counter("herald_tasks", "Tasks run, by name and outcome.", ["task", "outcome"])
TASK_DURATION = Histogram(
    "herald_task_duration_seconds",
    "Task run time.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SCHEDULE_LAG = Histogram(
    "herald_schedule_lag_seconds",
    "published_at - scheduled_at of published posts.",
    ["platform"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
RATE_LIMIT_DEFERRALS = Counter(
    "herald_rate_limit_deferrals",
    "Publishes deferred by a rate limit (scope: limit) or an open breaker (scope: breaker).",
    ["platform", "scope"],
)
TOKEN_REFRESHES = Counter(
    "herald_token_refreshes",
    "Token refreshes by outcome "
    "(refreshed, skipped, deferred, retry, needs_reauth, dead, not_found).",
    ["platform", "outcome"],
)
# Per process: "liveall" keeps one series per live process (a `pid` label in
# multiprocess mode), so exhaustion of any one pool is visible, not averaged away.
DB_POOL_CHECKED_OUT = Gauge(
    "herald_db_pool_checked_out",
    "Database connections this process has checked out of its pool.",
    ["role"],
    multiprocess_mode="liveall",
)
DB_POOL_CAPACITY = Gauge(
    "herald_db_pool_capacity",
    "Connections this process's pool may hand out (pool size + overflow).",
    ["role"],
    multiprocess_mode="liveall",
)

#: Task outcomes of ``herald_tasks_total`` (Celery's final state, lower-cased).
TASK_OUTCOMES: Final = ("success", "failure", "retry", "rejected", "ignored")

#: Gauges computed at scrape time by the health server's collector: name -> help.
CLUSTER_METRICS: Final = {
    "herald_queue_depth": "Messages waiting in a queue (ready, not yet taken by a worker).",
    "herald_breaker_state": "Circuit breaker per platform: 0 closed, 1 half-open, 2 open.",
    "herald_dead_letters_open": "Dead letters not replayed or purged, by task.",
    "herald_backup_age_seconds": "Seconds since the last succeeded / verified backup.",
    "herald_backup_last_verify_ok": "1 if the newest verified backup passed, 0 if it failed.",
    "herald_workers_responding": "Workers that answered a control ping.",
    "herald_beat_heartbeat_age_seconds": "Seconds since beat's last heartbeat ran.",
    "herald_collector_up": "1 if a collector source (database, redis, broker) answered.",
}

#: Value of ``herald_breaker_state`` for each of pybreaker's states.
BREAKER_STATE_VALUES: Final = {"closed": 0, "half-open": 1, "open": 2}


def exposed_names() -> set[str]:
    """Every metric family name Herald exposes (without the `_total`/`_bucket` suffixes)."""
    recorded = (
        TASKS,
        TASK_DURATION,
        SCHEDULE_LAG,
        RATE_LIMIT_DEFERRALS,
        TOKEN_REFRESHES,
        DB_POOL_CHECKED_OUT,
        DB_POOL_CAPACITY,
    )
    return {family.name for metric in recorded for family in metric.describe()} | set(
        CLUSTER_METRICS
    )
