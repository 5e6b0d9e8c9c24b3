"""Prometheus metrics: names and labels are a contract with deploy/ (alerts, dashboard).

Counters and histograms are recorded where things happen; gauges that describe the
whole deployment (queue depth, open dead letters, breaker state, backup age) are read
at scrape time by a collector, so they are right whichever process serves them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
    "herald_rate_limit_deferrals", "Publishes deferred by a rate limit.", ["platform", "scope"]
)
TOKEN_REFRESHES = Counter(
    "herald_token_refreshes",
    "Token refreshes by outcome (refreshed, needs_reauth, retry, skipped).",
    ["platform", "outcome"],
)
