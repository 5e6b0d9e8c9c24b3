"""Publish one scheduled post, exactly once, whatever crashes in between.

The row's lease (`worker.db.posts`) makes one worker at a time the publisher; the
attempt number fences its writes. Any attempt after the first may follow one whose
outcome is unknown (a killed worker, a read timeout), so it first asks the platform
whether the post is already there (`find_published`) and records it if so.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from celery.exceptions import SoftTimeLimitExceeded

from worker.constants import (
    HEADER_REQUEST_ID,
    OUTCOME_FOUND,
    OUTCOME_PUBLISHED,
    QUEUE_POSTS,
    TASK_PUBLISH,
)
from worker.db import posts, posts_queries
from worker.db.accounts import mark_needs_reauth
from worker.db.posts import AttemptRecord, Lease, Skip
from worker.db.session import unit_of_work
from worker.deadletter.letter import record_dead_letter
from worker.errors import RefusedError
from worker.observability.metrics import SCHEDULE_LAG
from worker.platforms.base import Account, PlatformClient, PostRequest
from worker.platforms.errors import AuthExpiredError, OutcomeUnknownError, PlatformError
from worker.platforms.registry import get_client
from worker.publishing import guards
from worker.publishing.account_cache import PublishAccount, get_publish_account
from worker.publishing.enqueue import follow_up, follow_up_lease, send_publish
from worker.resilience.retry import RetryDecision, decide_with_settings
from worker.settings import Settings, get_settings

log = structlog.get_logger(__name__)


#: A post leased more than this many times the transient-failure maximum is given up.
LEASE_CAP_FACTOR = 3


class InvalidPublishInputError(RefusedError, ValueError):
    """The message's arguments are not a post id (and an optional ISO time)."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # published | found_existing | skipped | retry | deferred | dead
    detail: str = ""


def parse_input(post_id: object, expected_at: object = None) -> tuple[uuid.UUID, datetime | None]:
    try:
        parsed = uuid.UUID(str(post_id))
    except ValueError:
        raise InvalidPublishInputError(f"post_id {post_id!r} is not a UUID") from None
    if expected_at is None:
        return parsed, None
    try:
        when = datetime.fromisoformat(str(expected_at))
    except ValueError:
        raise InvalidPublishInputError(
            f"expected_at {expected_at!r} is not an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        raise InvalidPublishInputError(f"expected_at {expected_at!r} has no timezone")
    return parsed, when


@functools.cache
def _client(platform: str, base_url: str, connect: float, read: float) -> PlatformClient:
    return get_client(platform, base_url, connect, read)


def client_for(platform: str, settings: Settings) -> PlatformClient:
    base_url = getattr(settings, f"{platform}_api_url")
    return _client(platform, base_url, settings.http_connect_timeout, settings.http_read_timeout)


def publish_post(
    post_id: object,
    expected_at: object = None,
    *,
    task_id: str | None = None,
    worker: str | None = None,
) -> Outcome:
    """Take the post's lease and publish it; every way this can end is an `Outcome`."""
    settings = get_settings()
    parsed_id, expected = parse_input(post_id, expected_at)
    with unit_of_work() as session:
        got = posts.take_lease(session, parsed_id, settings.publish_lease, expected)
    if isinstance(got, Skip):
        return _skipped(parsed_id, expected, got)
    structlog.contextvars.bind_contextvars(
        platform=got.platform, account_id=str(got.account_id), attempt=got.attempt
    )
    recorder = _Recorder(got, task_id, worker)
    if got.attempt > LEASE_CAP_FACTOR * settings.publish_max_attempts:
        # Started this often without ever ending (its worker lost each time, re-sent by
        # recovery under new task ids the delivery counter cannot link): a poison post.
        reason = f"poison: {got.attempt - 1} attempts started and none finished"
        return recorder.dead(reason, outcome="poison")
    account = get_publish_account(got.account_id)
    problem = _account_problem(account, got)
    if problem is not None or account is None:
        return recorder.dead(problem or "account missing", outcome="account_unusable")
    return _call_platform(settings, got, account, recorder)


def _skipped(post_id: uuid.UUID, expected: datetime | None, skip: Skip) -> Outcome:
    log.info("publish.skipped", post_id=str(post_id), reason=skip.reason)
    if skip.retry_in is not None:
        # Someone holds the lease (maybe a worker that was just killed): look again when
        # it runs out rather than wait for the dispatcher's recovery.
        send_publish(post_id, expected, countdown=skip.retry_in + 1.0)
    return Outcome("skipped", skip.reason)


def _account_problem(account: PublishAccount | None, lease: Lease) -> str | None:
    if account is None:
        return f"account {lease.account_id} does not exist"
    if not account.is_active:
        return "account is deactivated"
    if account.needs_reauth:
        return "account needs re-authorization"
    if account.platform != lease.platform:
        return f"post is for {lease.platform} but the account is on {account.platform}"
    return None


def _call_platform(
    settings: Settings, lease: Lease, account: PublishAccount, recorder: _Recorder
) -> Outcome:
    guard = guards.enter(lease.platform, str(lease.account_id))
    if guard.defer_for is not None:
        return _defer(settings, lease, guard.defer_for, guard.reason)
    client = client_for(lease.platform, settings)
    try:
        external_id, outcome = _find_or_publish(client, lease, account)
    except SoftTimeLimitExceeded as exc:
        guards.leave(guard, exc, client.last_usage)  # no verdict on the platform
        error: PlatformError = OutcomeUnknownError(lease.platform, "publish hit its time limit")
    except PlatformError as exc:
        guards.leave(guard, exc, client.last_usage)
        error = exc
    else:
        guards.leave(guard, None, client.last_usage)
        return recorder.published(external_id, outcome)
    return _after_failure(settings, lease, error, recorder)


def _find_or_publish(
    client: PlatformClient, lease: Lease, account: PublishAccount
) -> tuple[str, str]:
    """Publish, unless an earlier attempt (whose outcome is unknown) already did."""
    target = Account(lease.platform, account.external_id, account.access_token)
    client_ref = str(lease.post_id)
    if lease.earlier_outcome_unknown:
        with unit_of_work() as session:
            since = posts_queries.first_attempt_floor(session, lease.post_id)
        # Back to the first attempt's start, however many posts landed since; a lookup
        # that cannot get that far raises OutcomeUnknownError: retried, not reposted.
        found = client.find_published(target, client_ref, since)
        log.info("publish.lookup", since=since.isoformat() if since else None, found=found)
        if found is not None:
            return found, OUTCOME_FOUND
    request = PostRequest(client_ref=client_ref, content=lease.content, media=lease.media)
    return client.publish(target, request), OUTCOME_PUBLISHED


def _defer(settings: Settings, lease: Lease, delay: float, reason: str) -> Outcome:
    """Not now (breaker open, rate limited): back to queued, attempt not spent, resent."""
    with unit_of_work() as session:
        # The message goes out inside the transaction (a crash before commit leaves the
        # lease to expire and the dispatcher to re-send), but only if the lease was ours.
        if posts.untake_lease(session, lease, follow_up_lease(settings, delay)):
            follow_up(settings, lease.post_id, lease.scheduled_at, delay, lease.request_id)
    log.info("publish.deferred", reason=reason, delay=round(delay, 2))
    return Outcome("deferred", f"{reason}; again in {delay:.1f}s")


def _after_failure(
    settings: Settings, lease: Lease, error: PlatformError, recorder: _Recorder
) -> Outcome:
    failures = recorder.transient_failures() + 1
    decision = decide_with_settings(error, failures, settings)
    log.warning(
        "publish.failed",
        error=type(error).__name__,
        status=error.status,
        message=error.message,
        action=decision.action,
        delay=round(decision.delay, 2),
    )
    if decision.action == "dead":
        return recorder.dead(
            f"{decision.reason}: {error.message}", outcome=_kind(error), error=error
        )
    return recorder.again(decision, error, settings)


def _kind(error: PlatformError) -> str:
    return {
        "TransientError": "transient",
        "OutcomeUnknownError": "unknown",
        "RateLimitedError": "rate_limited",
        "AuthExpiredError": "auth_expired",
        "PermanentError": "permanent",
    }.get(type(error).__name__, "error")


class _Recorder:
    """Writes one attempt's ending: the post's state and its post_attempts row, together."""

    def __init__(self, lease: Lease, task_id: str | None, worker: str | None) -> None:
        self.lease = lease
        self.task_id = task_id
        self.worker = worker
        self.started = time.perf_counter()

    def _record(
        self, outcome: str, error: PlatformError | None = None, text: str | None = None
    ) -> AttemptRecord:
        return AttemptRecord(
            outcome=outcome,
            latency_ms=int((time.perf_counter() - self.started) * 1000),
            http_status=error.status if error else None,
            error=text if text is not None else (error.message if error else None),
            task_id=self.task_id,
            worker=self.worker,
        )

    def published(self, external_id: str, outcome: str) -> Outcome:
        with unit_of_work() as session:
            owned = posts.end_published(session, self.lease, external_id, self._record(outcome))
        if not owned:
            log.error("publish.lease_lost", external_id=external_id)
        else:
            lag = time.time() - self.lease.scheduled_at.timestamp()
            SCHEDULE_LAG.labels(self.lease.platform).observe(max(0.0, lag))
        log.info("publish.done", outcome=outcome, external_id=external_id)
        return Outcome(outcome, external_id)

    def again(self, decision: RetryDecision, error: PlatformError, settings: Settings) -> Outcome:
        record = self._record(_kind(error), error)
        delay, lease = decision.delay, self.lease
        with unit_of_work() as session:
            if posts.end_for_retry(session, lease, record, follow_up_lease(settings, delay)):
                follow_up(settings, lease.post_id, lease.scheduled_at, delay, lease.request_id)
        kind = "deferred" if decision.action == "defer" else "retry"
        return Outcome(kind, f"in {decision.delay:.1f}s: {error.message}")

    def dead(self, reason: str, *, outcome: str, error: PlatformError | None = None) -> Outcome:
        """`dead` with the reason, and a dead letter that `herald dlq replay` revives."""
        with unit_of_work() as session:
            owned = posts.end_dead(session, self.lease, self._record(outcome, error, reason))
        if isinstance(error, AuthExpiredError):
            mark_needs_reauth(self.lease.account_id, reason)
        if owned:
            request_id = self.lease.request_id
            record_dead_letter(
                task_name=TASK_PUBLISH,
                task_id=self.task_id,
                reason=reason,
                args=[str(self.lease.post_id)],
                headers={HEADER_REQUEST_ID: request_id} if request_id else None,
                queue=QUEUE_POSTS,
                exception=error,
                attempts=self.lease.attempt,
            )
        log.error("publish.dead", reason=reason)
        return Outcome("dead", reason)

    def transient_failures(self) -> int:
        with unit_of_work() as session:
            outcomes = ("transient", "unknown")
            return posts_queries.count_attempts(session, self.lease.post_id, outcomes)
