"""Scenario 5: SIGTERM to every worker under load (what a deploy or a node drain does),
then new workers. Each old worker finishes or hands back its in-flight and reserved jobs
and exits 0 within the deadline; nothing is lost and nothing is published twice."""

from __future__ import annotations

import signal
import time

from tests.chaos.harness import Record, audit, drain, sized
from tests.fixtures.posting import InsertPosts, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory

#: SIGTERM to exit, at most: HERALD_SOFT_SHUTDOWN_TIMEOUT (30 s) plus a margin.
SHUTDOWN_DEADLINE_S = 45.0


def test_sigterm_to_every_worker_under_load_loses_nothing(
    chaos_env: dict[str, str],
    jittery_sandbox: SandboxServer,
    insert_posts: InsertPosts,
    worker_process: WorkerFactory,
    beat_process: object,
) -> None:
    record = Record("sigterm_all")
    count, spread, rounds = sized(60, 1000), sized(6.0, 40.0), sized(1, 3)
    workers = [worker_process(concurrency=4, name=f"t{i}") for i in range(sized(1, 2))]
    beat_process()  # type: ignore[operator]
    ids = insert_posts(count, spread=spread)
    exits: list[int | None] = []
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
        for worker in workers:
            exits.append(worker.process.wait(SHUTDOWN_DEADLINE_S))
        stop_seconds.append(round(time.monotonic() - began, 2))
        workers = [worker_process(concurrency=4, name=f"t{i}n{round_}") for i in range(sized(1, 2))]
    record.faults = {"sigterm_rounds": rounds, "workers_stopped": len(exits)}
    record.notes.update(exit_codes=exits, shutdown_seconds=stop_seconds)

    drain(ids, record, timeout=sized(120, 600))
    audit(ids, jittery_sandbox, record)
    assert exits == [0] * len(exits), f"a worker did not exit 0 on SIGTERM: {exits}"
