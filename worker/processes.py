"""Command lines of Herald's processes: one place for `herald run`, tests and benchmarks."""

from __future__ import annotations

import sys

from worker.constants import QUEUE_DEAD_LETTER, QUEUE_MAINTENANCE, QUEUE_POSTS, QUEUE_TOKENS
from worker.supervisor import Child

#: Queues of the worker that does everything but publishing.
BACKGROUND_QUEUES = (QUEUE_TOKENS, QUEUE_MAINTENANCE, QUEUE_DEAD_LETTER)


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.app", *args]


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
    return celery_argv("beat", "--scheduler", "redbeat.RedBeatScheduler")


def sandbox_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "worker.cli", "sandbox", "--port", str(port)]


def run_plan(
    posts_workers: int, posts_concurrency: int, *, sandbox_port: int | None
) -> list[Child]:
    """What `herald run` starts: publishing never waits behind maintenance (own workers)."""
    children = [
        Child(f"posts-{i}", worker_argv((QUEUE_POSTS,), f"posts{i}", posts_concurrency))
        for i in range(posts_workers)
    ]
    children.append(Child("background", worker_argv(BACKGROUND_QUEUES, "background", 2)))
    children.append(Child("beat", beat_argv()))
    if sandbox_port is not None:
        children.insert(0, Child("sandbox", sandbox_argv(sandbox_port)))
    return children
