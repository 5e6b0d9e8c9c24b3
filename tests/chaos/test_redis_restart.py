"""Scenario 2: Redis (broker, coordination and beat's lock, all in one) is SIGKILLed
mid-run and comes back from its append-only file. Herald runs as deployed, under
`herald run`: its processes reconnect (or are restarted by its supervisor, which must
not give up), and every post is published exactly once.

The scenario's processes use a private redis-server: the machine's own serves other
tests at the same time and is never restarted.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.chaos.harness import Record, audit, drain, sized
from tests.fixtures.cli import json_lines
from tests.fixtures.herald_run import RunProcess, herald_run
from tests.fixtures.ports import free_ports
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.private_servers import PrivateRedis
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for


def run_env(chaos_env: dict[str, str]) -> dict[str, str]:
    """`herald run`'s environment: this test's servers, ports nobody else holds."""
    return {
        **os.environ,
        **chaos_env,
        "REDIS_URL": os.environ["REDIS_URL"],
        # Only the stop at the end waits on this (soft shutdown on idle may sleep it out).
        "HERALD_SOFT_SHUTDOWN_TIMEOUT": str(sized(1, 5)),
        "HERALD_FLOWER_PORT": str(free_ports()),
        "HERALD_HEALTH_PORT": str(free_ports()),
        "HERALD_METRICS_PORT": str(free_ports(3)),
    }


def restarts(run: RunProcess) -> dict[str, int]:
    """Children the supervisor restarted, by name (from its log)."""
    counts: dict[str, int] = {}
    for line in json_lines(run.output()):
        if line.get("event") == "supervisor.restarting":
            counts[line["child"]] = counts.get(line["child"], 0) + 1
    return counts


def gave_up(run: RunProcess) -> str | None:
    if run.process.poll() is None:
        return None
    return f"herald run exited {run.process.returncode}: {restarts(run)} restarts, then gave up"


def test_herald_rides_out_redis_restarts(
    private_redis: PrivateRedis,
    chaos_env: dict[str, str],
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    tmp_path: Path,
) -> None:
    record = Record("redis_restart")
    count, spread = sized(30, 600), sized(3.0, 60.0)
    rounds, down_for = sized(1, 3), sized(1.0, 10.0)
    never = threading.Event()
    args = ("--no-sandbox", "--no-flower", "--workers", "2", "--concurrency", "4")
    with herald_run(run_env(chaos_env), tmp_path / "run.log", *args) as run:
        ids = insert_posts(count, due_in=1.0, spread=spread)
        for round_ in range(rounds):
            target = count * (round_ + 1) // (rounds + 2)
            wait_for(
                lambda target=target: (
                    statuses(ids).get("published", 0) >= target or run.process.poll()
                ),
                timeout=90,
                interval=0.2,
                what=f"{target} posts published before restart {round_ + 1}",
            )
            began = time.monotonic()
            private_redis.restart_after(down_for, never)
            record.notes.setdefault("down_seconds", []).append(round(time.monotonic() - began, 2))
        record.faults = {"redis_restarts": private_redis.restarts, "down_for_s": down_for}
        try:
            drain(ids, record, timeout=sized(120, 600), gone=lambda: gave_up(run))
        finally:
            record.notes["supervisor_restarts"] = restarts(run)
            record.notes["herald_run_exit"] = run.process.poll()
        audit(ids, jittery_sandbox, record)
        # The supervisor never gave up: `herald run` is still up, nothing in a crash loop.
        assert run.process.poll() is None, run.output()[-3000:]
        assert "supervisor.giving_up" not in run.output()
