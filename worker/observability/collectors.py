"""Deployment-wide gauges, read when Prometheus scrapes `herald health --serve`.

They describe the deployment, not a process, so exactly one process serves them: the
health server (not every worker, which would multiply the series and the queries;
not beat, which may run twice and whose own stall is one of the things measured).
A source that does not answer is reported as ``herald_collector_up{source} 0`` and
its gauges are left out for that scrape, rather than exported as misleading zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.backups.store import backup_ages
from worker.constants import PLATFORMS
from worker.db.engine import get_engine
from worker.observability import probes
from worker.observability.metrics import BREAKER_STATE_VALUES, CLUSTER_METRICS
from worker.resilience.breaker import get_breakers
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: Seconds each source may take per scrape (Prometheus' default scrape timeout is 10 s).
SOURCE_TIMEOUT_S = 2.0
#: Seconds the scrape waits for workers' ping replies.
PING_TIMEOUT_S = 1.0


def _gauge(name: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, CLUSTER_METRICS[name], labels=list(labels))


class ClusterCollector(Collector):
    """Queue depth, breakers, dead letters, backups, workers and beat, per scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list[GaugeMetricFamily]:
        # Without this the registry would run a whole collection (pings, queries) when
        # the collector is registered, only to learn its names.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = _gauge("herald_collector_up", ["source"])
        sources: dict[str, Callable[[], list[GaugeMetricFamily]]] = {
            "broker": self._broker,
            "redis": self._redis,
            "database": self._database,
        }
        for source, read in sources.items():
            try:
                families = read()
            except Exception as exc:
                log.warning("metrics.source_failed", source=source, error=type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _broker(self) -> list[GaugeMetricFamily]:
        depth = _gauge("herald_queue_depth", ["queue"])
        for queue, count in probes.queue_depths(self.settings, SOURCE_TIMEOUT_S).items():
            depth.add_metric([queue], count)
        workers = _gauge("herald_workers_responding")
        workers.add_metric([], len(probes.ping_workers(self.settings, PING_TIMEOUT_S)))
        return [depth, workers]

    def _redis(self) -> list[GaugeMetricFamily]:
        state = _gauge("herald_breaker_state", ["platform"])
        breakers = get_breakers()
        for platform in PLATFORMS:
            status = breakers[platform].status()
            state.add_metric([platform], BREAKER_STATE_VALUES.get(str(status["state"]), 0))
        families = [state]
        age = probes.heartbeat_age(self.settings, SOURCE_TIMEOUT_S)
        if age is not None:  # never beaten: absent, which the alert's absent() catches
            heartbeat = _gauge("herald_beat_heartbeat_age_seconds")
            heartbeat.add_metric([], age)
            families.append(heartbeat)
        return families

    def _database(self) -> list[GaugeMetricFamily]:
        with get_engine().connect() as conn:
            letters = probes.open_dead_letters(conn)
            backups = backup_ages(conn, datetime.now(UTC))
        dead = _gauge("herald_dead_letters_open", ["task"])
        for task, count in sorted(letters.items()):
            dead.add_metric([task], count)
        if not letters:
            dead.add_metric(["all"], 0)  # a zero the dashboard can show
        ages = _gauge("herald_backup_age_seconds", ["kind"])
        for kind, value in (("succeeded", backups.succeeded), ("verified", backups.verified)):
            if value is not None:
                ages.add_metric([kind], value)
        families = [dead, ages]
        if backups.last_verify_ok is not None:
            verify = _gauge("herald_backup_last_verify_ok")
            verify.add_metric([], 1 if backups.last_verify_ok else 0)
            families.append(verify)
        return families
