"""Scenario 5: SIGTERM to every worker under load (what a deploy or a node drain does),
new workers booting meanwhile. Each old worker finishes or hands back its in-flight and
reserved jobs and exits 0 within the deadline; nothing is lost and nothing is published
twice."""

from __future__ import annotations

import signal
import time

from tests.chaos.harness import (
    Record,
    audit,
    drain,
    side_by_side,
    sized,
    start_workers,
    stop_workers,
)
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess

#: SIGTERM to exit, at most: HERALD_SOFT_SHUTDOWN_TIMEOUT (30 s) plus a margin.
SHUTDOWN_DEADLINE_S = 45.0


def exit_codes(workers: list[WorkerProcess]) -> list[int]:
    """Each worker's exit code, waiting at most the shutdown deadline for each."""
    return [worker.process.wait(SHUTDOWN_DEADLINE_S) for worker in workers]


def test_sigterm_to_every_worker_under_load_loses_nothing(
    chaos_env: dict[str, str],
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
) -> None:
    record = Record("sigterm_all")
    count, spread, rounds = sized(30, 1000), sized(3.0, 40.0), sized(1, 3)
    names = [f"t{i}" for i in range(sized(1, 2))]
    workers, _ = side_by_side(
        lambda: start_workers(worker_process, names, concurrency=4),
        beat_process,  # type: ignore[arg-type]
    )
    ids = insert_posts(count, spread=spread)
    exits: list[int] = []
    stop_seconds: list[float] = []

    for round_ in range(rounds):
        target = count * (round_ + 1) // (rounds + 2)
        wait_for(
            lambda target=target: statuses(ids).get("published", 0) >= target,
            timeout=90,
            interval=0.2,
            what=f"{target} posts published before SIGTERM {round_ + 1}",
        )
        began = time.monotonic()
        for worker in workers:
            worker.send(signal.SIGTERM)
        # As a deploy does, the new workers boot while the old ones drain.
        names = [f"t{i}n{round_}" for i in range(sized(1, 2))]
        stopped, workers = side_by_side(
            lambda old=workers: exit_codes(old),
            lambda names=names: start_workers(worker_process, names, concurrency=4),
        )
        exits.extend(stopped)
        stop_seconds.append(round(time.monotonic() - began, 2))
    record.faults = {"sigterm_rounds": rounds, "workers_stopped": len(exits)}
    record.notes.update(exit_codes=exits, shutdown_seconds=stop_seconds)

    drain(ids, record, timeout=sized(120, 600))
    audit(ids, jittery_sandbox, record)
    assert exits == [0] * len(exits), f"a worker did not exit 0 on SIGTERM: {exits}"
    stop_workers(workers)
