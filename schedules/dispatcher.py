"""The due-post dispatcher: the database is the schedule; this turns due rows into messages.

Each batch is claimed (scheduled -> queued, FOR UPDATE SKIP LOCKED) and its messages are
sent *before* the claim commits: a crash in between leaves the rows `scheduled` for the
next run, and a message that arrives before the commit waits on the row lock. So a due
post is never left queued without a message (it would wait for the recovery lease), and
a duplicate message is harmless (the publish task's lease decides).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from worker.constants import HEADER_REQUEST_ID, QUEUE_POSTS, TASK_PUBLISH
from worker.db import posts
from worker.db.session import unit_of_work
from worker.deadletter.letter import record_dead_letter
from worker.observability import correlation
from worker.publishing.enqueue import send_publish_batch
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: A dispatcher run stops claiming after this long; the next run continues.
RUN_BUDGET_SECONDS = 20.0


@dataclass
class DispatchReport:
    claimed: int = 0
    refused: int = 0
    recovered: int = 0
    batches: int = 0
    seconds: float = 0.0


def dispatch_due(settings: Settings, *, budget: float = RUN_BUDGET_SECONDS) -> DispatchReport:
    """Claim and enqueue every due post (in batches, within `budget`), then recover stale ones.

    `HERALD_DISPATCH_THREADS` claimers run side by side (SKIP LOCKED keeps their rows
    apart): while one waits on PostgreSQL, another builds and pushes its messages.
    """
    started = time.perf_counter()
    report = DispatchReport()
    report.refused = _refuse_stale(settings)
    deadline = started + budget
    threads = settings.dispatch_threads
    if threads == 1:
        report.claimed, report.batches = _drain(settings, deadline)
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="dispatch") as pool:
            for run in [pool.submit(_drain, settings, deadline) for _ in range(threads)]:
                claimed, batches = run.result()
                report.claimed += claimed
                report.batches += batches
    report.recovered = _claim_and_send(settings, recover=True)
    report.seconds = time.perf_counter() - started
    if report.claimed or report.recovered or report.refused:
        log.info(
            "dispatch.done",
            claimed=report.claimed,
            refused=report.refused,
            recovered=report.recovered,
            batches=report.batches,
            seconds=round(report.seconds, 3),
        )
    return report


def _refuse_stale(settings: Settings) -> int:
    """Rows inserted already beyond the grace end dead, each with a dead letter."""
    with unit_of_work() as session:
        refused = posts.refuse_stale(session, settings.past_grace, settings.dispatch_batch_size)
    for post in refused:
        record_dead_letter(
            task_name=TASK_PUBLISH,
            task_id=None,
            reason=f"scheduled more than {settings.past_grace:.0f} s in the past "
            "when inserted (HERALD_PAST_GRACE)",
            args=[str(post.post_id)],
            headers={HEADER_REQUEST_ID: post.request_id} if post.request_id else None,
            queue=QUEUE_POSTS,
            kind="invalid_input",
        )
    if refused:
        log.warning("dispatch.refused_stale", count=len(refused))
    return len(refused)


def _drain(settings: Settings, deadline: float) -> tuple[int, int]:
    """Claim batches until one comes back short (nothing more due) or time is up."""
    claimed = batches = 0
    while time.perf_counter() < deadline:
        sent = _claim_and_send(settings, recover=False)
        claimed += sent
        batches += 1
        if sent < settings.dispatch_batch_size:
            break
    return claimed, batches


def _claim_and_send(settings: Settings, *, recover: bool) -> int:
    with unit_of_work() as session:
        if recover:
            claimed = posts.reclaim_expired(
                session, settings.dispatch_batch_size, settings.queued_lease
            )
        else:
            claimed = posts.claim_due(
                session,
                settings.dispatch_lookahead,
                settings.dispatch_batch_size,
                settings.queued_lease,
            )
        if claimed:
            # Each post goes under its own request id (or none: its task makes one),
            # never under this dispatcher run's.
            with correlation.detached():
                send_publish_batch((c.post_id, c.scheduled_at, c.request_id) for c in claimed)
    if recover and claimed:
        log.warning(
            "dispatch.recovered", count=len(claimed), posts=[str(c.post_id) for c in claimed[:20]]
        )
    return len(claimed)
