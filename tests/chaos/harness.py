"""What every chaos scenario shares: its size, the end-of-run audit and the JSON record.

A scenario runs real processes, breaks something, lets Herald drain, then audits two
independent witnesses: the sandbox ledger (what the platform accepted) and the
``scheduled_posts`` rows (what Herald believes). The counts go to
``.herald/chaos/<scenario>.json`` so figures can be quoted from the latest run.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.posting import ledger_refs, post_rows, statuses
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory, WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
#: Where each scenario writes its latest counts (gitignored with the rest of .herald/).
RESULTS_DIR = ROOT / ".herald" / "chaos"
#: `HERALD_CHAOS=full` (`make chaos`) runs the full-size scenarios; anything else the short ones.
FULL = os.environ.get("HERALD_CHAOS", "").strip().lower() == "full"
#: Statuses a post never leaves.
FINAL = ("published", "dead", "failed", "cancelled")


def sized(short: Any, full: Any) -> Any:
    """The short value under plain `pytest`, the full one under `HERALD_CHAOS=full`."""
    return full if FULL else short


@dataclass
class Record:
    """One scenario run's counts, written as JSON when the scenario ends."""

    scenario: str
    size: str = field(default_factory=lambda: "full" if FULL else "short")
    posts: int = 0
    published: int = 0
    dead: int = 0
    lost: int = 0
    duplicates: int = 0
    faults: dict[str, Any] = field(default_factory=dict)
    drain_seconds: float = 0.0
    total_seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def write(self) -> Path:
        self.total_seconds = round(time.monotonic() - self.started, 2)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.scenario}.json"
        data = {k: v for k, v in asdict(self).items() if k != "started"}
        data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"\nchaos {self.scenario}: {json.dumps(data, sort_keys=True)}")
        return path


def side_by_side(*calls: Callable[[], Any]) -> list[Any]:
    """Run slow starts (a worker boot, beat taking its lock) in threads and return their
    results in order: a scenario that waits for each in turn spends more on booting than
    on its fault. (A worker's readiness ping uses its own pooled connection and a
    thread-local reply queue, so the threads don't mix up answers.)"""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def start_workers(
    start: WorkerFactory, names: list[str], *, concurrency: int, **options: Any
) -> list[WorkerProcess]:
    """Start one worker per name, side by side."""
    calls = [functools.partial(start, concurrency=concurrency, name=n, **options) for n in names]
    return side_by_side(*calls)


def stop_workers(workers: list[WorkerProcess], timeout: float = 30.0) -> list[int]:
    """SIGTERM every live worker at once, then collect the exit codes (the fixture's
    teardown stops them one after another; the shutdowns overlap here)."""
    live = [worker for worker in workers if worker.process.poll() is None]
    for worker in live:
        worker.send(signal.SIGTERM)
    codes = []
    for worker in live:
        try:
            codes.append(worker.process.wait(timeout))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            codes.append(worker.process.wait())
    return codes


def drain(
    ids: list[uuid.UUID],
    record: Record,
    *,
    timeout: float,
    gone: Callable[[], str | None] = lambda: None,
) -> None:
    """Wait until every post is in a final status; the wait is the drain time.

    `gone` says why waiting is pointless (what died), to fail at once rather than at
    the deadline."""
    began = time.monotonic()

    def settled() -> dict[str, int] | None:
        died = gone()
        if died:
            raise AssertionError(died)
        now = statuses(ids)
        record.notes["statuses"] = now
        return now if sum(now.get(status, 0) for status in FINAL) == len(ids) else None

    try:
        wait_for(settled, timeout=timeout, interval=0.25, what=f"{len(ids)} posts to settle")
    except AssertionError as exc:
        record.notes["failed"] = f"{exc}; statuses {record.notes.get('statuses')}"
        raise AssertionError(record.notes["failed"]) from None
    finally:
        record.drain_seconds = round(time.monotonic() - began, 2)
        if "failed" in record.notes:
            record.write()


def audit(
    ids: list[uuid.UUID], sandbox: SandboxServer, record: Record, *, dead_allowed: bool = False
) -> None:
    """Count lost and duplicated posts, write the record, then assert the promise.

    Lost: a post not published on the platform and not dead-lettered with a reason.
    Duplicate: a post the platform accepted more than once (or one it never should have).
    """
    counts = collections.Counter(ledger_refs(sandbox))
    rows = {row["id"]: row for row in post_rows(ids)}
    wanted = {str(post) for post in ids}
    record.posts = len(ids)
    record.published = sum(1 for r in rows.values() if r["status"] == "published")
    dead = [r for r in rows.values() if r["status"] == "dead"]
    record.dead = len(dead)
    record.duplicates = sum(n - 1 for n in counts.values() if n > 1) + sum(
        n for ref, n in counts.items() if ref not in wanted
    )
    record.lost = sum(1 for post in ids if not _accounted(rows[post], counts[str(post)]))
    record.notes["statuses"] = statuses(ids)
    record.write()

    assert record.duplicates == 0, f"published twice: {[r for r, n in counts.items() if n > 1]}"
    assert record.lost == 0, f"lost posts; statuses {record.notes['statuses']}"
    unexplained = [r["id"] for r in dead if not r["last_error"]]
    assert not unexplained, f"dead without a reason: {unexplained}"
    if not dead_allowed:
        assert record.dead == 0, [(r["id"], r["last_error"]) for r in dead]


def _accounted(row: dict[str, Any], on_platform: int) -> bool:
    if row["status"] == "published":
        # Published more than once is a duplicate (counted apart), not a loss.
        return on_platform >= 1 and bool(row["external_post_id"])
    # A dead post never reached the platform, and says why it died.
    return row["status"] == "dead" and on_platform == 0 and bool(row["last_error"])
