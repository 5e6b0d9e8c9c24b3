"""Command lines of Herald's processes: one place for `herald run`, tests and benchmarks."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from schedules.leadership import BEAT_SCHEDULER
from worker.constants import QUEUE_DEAD_LETTER, QUEUE_MAINTENANCE, QUEUE_POSTS, QUEUE_TOKENS
from worker.local.flower import flower_args
from worker.local.supervisor import Child

#: Queues of the worker that does everything but publishing.
BACKGROUND_QUEUES = (QUEUE_TOKENS, QUEUE_MAINTENANCE, QUEUE_DEAD_LETTER)
#: The variable each worker and beat reads its own /metrics port from.
METRICS_PORT_VARIABLE = "HERALD_METRICS_PORT"
#: The variable `herald health --serve` reads its port from.
HEALTH_PORT_VARIABLE = "HERALD_HEALTH_PORT"
#: Every worker's environment. Plain SIGTERM is Celery's warm shutdown, which waits for
#: running tasks without a deadline; remapped to SIGQUIT it is the soft shutdown: running
#: tasks get `worker_soft_shutdown_timeout` seconds, then the rest are requeued (acks_late)
#: and the worker exits 0. Celery waits out the whole timeout even when tasks end sooner.
WORKER_ENV: dict[str, str | None] = {"REMAP_SIGTERM": "SIGQUIT"}


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.app", *args]


def herald_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker.cli", *args]


def worker_argv(
    queues: tuple[str, ...], name: str, concurrency: int, pool: str = "prefork"
) -> list[str]:
    """A worker consuming `queues`; mingle and gossip are off (chatter that buys nothing here)."""
    return celery_argv(
        "worker",
        "--queues", ",".join(queues),
        "--hostname", f"{name}@%h",
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--without-mingle",
        "--without-gossip",
    )  # fmt: skip


def beat_argv() -> list[str]:
    return celery_argv("beat", "--scheduler", BEAT_SCHEDULER)


def sandbox_argv(port: int) -> list[str]:
    return herald_argv("sandbox", "--port", str(port))


def flower_argv(host: str, port: int) -> list[str]:
    """Flower; its login travels in the environment (`worker.local.flower.flower_env`), not here."""
    return celery_argv("flower", *flower_args(host, port))


def health_argv() -> list[str]:
    return herald_argv("health", "--serve")


@dataclass(frozen=True)
class Extras:
    """Optional helpers of a run: each is started when its port is given."""

    sandbox_port: int | None = None
    #: First /metrics port: the workers and beat get consecutive ones from here.
    metrics_port: int | None = None
    flower: tuple[str, int] | None = None
    #: Flower's changes to the shared environment (its login; None removes a variable).
    flower_env: dict[str, str | None] | None = None
    health_port: int | None = None


def run_plan(
    posts_workers: int,
    posts_concurrency: int,
    *,
    sandbox_port: int | None = None,
    extras: Extras | None = None,
) -> list[Child]:
    """What `herald run` starts: publishing never waits behind maintenance (own workers)."""
    extras = extras or Extras(sandbox_port=sandbox_port)
    children = [
        Child(
            f"posts-{i}",
            worker_argv((QUEUE_POSTS,), f"posts{i}", posts_concurrency),
            env=dict(WORKER_ENV),
        )
        for i in range(posts_workers)
    ]
    background = worker_argv(BACKGROUND_QUEUES, "background", 2)
    children.append(Child("background", background, env=dict(WORKER_ENV)))
    children.append(Child("beat", beat_argv()))
    if extras.metrics_port:
        for offset, child in enumerate(children):
            child.env[METRICS_PORT_VARIABLE] = str(extras.metrics_port + offset)
    if extras.sandbox_port is not None:
        children.insert(0, Child("sandbox", sandbox_argv(extras.sandbox_port)))
    if extras.flower is not None:
        flower = Child("flower", flower_argv(*extras.flower), env=dict(extras.flower_env or {}))
        children.append(flower)
    if extras.health_port is not None:
        health = Child("health", health_argv(), env={HEALTH_PORT_VARIABLE: str(extras.health_port)})
        children.append(health)
    return children


def metrics_ports(children: list[Child]) -> dict[str, int]:
    """Each child's /metrics port, by name (those that serve one)."""
    ports = {child.name: child.env.get(METRICS_PORT_VARIABLE) for child in children}
    return {name: int(port) for name, port in ports.items() if port is not None}
