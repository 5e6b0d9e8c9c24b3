"""Refresh one account's OAuth token: under its lock, once, or say why not.

Two refreshes of one account never overlap: each holds the account's Redis lock
(`worker.coordination.locks.singleton`), and a second one finding it held is ``skipped``. Under the
lock the row is read again from the database and the refresh policy asked again, so a
message that arrives after a successful refresh (two sweeps raced, a redelivery) is a
``skipped`` no-op; the write is fenced on the expiry it read, in case the lock ran out.

The platform's breaker and rate limits apply (`worker.publishing.guards`): "not now" is a
``deferred`` countdown retry that spends no attempt. A revoked grant marks the account
``needs_reauth`` (publishing stops using it) and records a dead letter. Transient
errors retry with the shared backoff policy; the failures are counted per account in
Redis, so deferrals and redeliveries never reset or inflate the count, and when they
run out the refresh is dead-lettered.

No token is ever logged, passed as an argument, put in an error or an audit row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog
from celery.exceptions import SoftTimeLimitExceeded

from worker.constants import KEY_TOKEN_FAILURES, LOCK_REFRESH, QUEUE_TOKENS, TASK_REFRESH
from worker.coordination.locks import AlreadyRunningError, singleton
from worker.coordination.redis_client import get_redis
from worker.db import audit
from worker.db.accounts import (
    RefreshCandidate,
    load_for_refresh,
    mark_needs_reauth,
    store_refreshed_tokens,
)
from worker.deadletter.letter import record_dead_letter
from worker.observability.metrics import TOKEN_REFRESHES
from worker.platforms.errors import AuthExpiredError, PlatformError, TransientError
from worker.platforms.oauth import TokenEndpoint, app_credentials
from worker.publishing import guards
from worker.resilience.retry import decide_with_settings
from worker.security.cipher import TokenDecryptError
from worker.settings import Settings, get_settings
from worker.tokens.policy import RefreshPolicy

log = structlog.get_logger(__name__)

#: Seconds the lock lives without its holder's watchdog (a killed holder frees it then).
LOCK_TTL: Final = 60.0
#: Seconds a failure count outlives its last failure.
FAILURES_TTL: Final = 24 * 3600
#: Audit actor of refreshes (the worker, not a person).
AUDIT_ACTOR: Final = "herald:tokens.refresh"


@dataclass(frozen=True)
class RefreshResult:
    """How one refresh ended.

    ``outcome``: refreshed | skipped | deferred | retry | needs_reauth | dead | not_found.
    ``retry_in``: seconds until it should run again (deferred, retry), else None.
    """

    outcome: str
    platform: str = "unknown"
    detail: str = ""
    retry_in: float | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def refresh_account(
    account_id: object, *, task_id: str | None = None, now: Callable[[], datetime] = _utcnow
) -> RefreshResult:
    """Refresh the account's token if it is due; see the module docstring."""
    try:
        parsed = uuid.UUID(str(account_id))
    except ValueError:
        result = RefreshResult("not_found", detail=f"account_id {_shown(account_id)} is not a UUID")
        return _finish(result)
    structlog.contextvars.bind_contextvars(account_id=str(parsed))
    try:
        with singleton(f"{LOCK_REFRESH}:{parsed}", ttl=LOCK_TTL):
            result = _refresh_locked(get_settings(), parsed, task_id, now)
    except AlreadyRunningError:
        result = RefreshResult("skipped", detail="another refresh of this account is running")
    return _finish(result)


def _shown(value: object) -> str:
    # Short values are echoed (a typo); long ones might be a token sent by mistake.
    text = str(value)
    return repr(text) if len(text) <= 40 else f"<{len(text)} characters>"


def _finish(result: RefreshResult) -> RefreshResult:
    TOKEN_REFRESHES.labels(platform=result.platform, outcome=result.outcome).inc()
    level = "warning" if result.outcome in ("needs_reauth", "dead", "not_found") else "info"
    getattr(log, level)(
        "tokens.refresh", outcome=result.outcome, platform=result.platform, detail=result.detail
    )
    return result


def _refresh_locked(
    settings: Settings, account_id: uuid.UUID, task_id: str | None, now: Callable[[], datetime]
) -> RefreshResult:
    try:
        account = load_for_refresh(account_id)
    except TokenDecryptError as exc:
        reason = "stored tokens do not decrypt with any configured key (TOKEN_ENCRYPTION_KEYS)"
        _dead_letter(account_id, task_id, reason, exc, attempts=1)
        return RefreshResult("dead", detail=reason)
    if account is None:
        return RefreshResult("not_found", detail=f"no account {account_id}")
    unusable = _not_refreshable(settings, account, now())
    if unusable is not None:
        return RefreshResult("skipped", account.platform, unusable)
    return _call_platform(settings, account, task_id, now)


def _not_refreshable(settings: Settings, account: RefreshCandidate, at: datetime) -> str | None:
    if not account.is_active:
        return "account is deactivated"
    if account.needs_reauth:
        return "account needs re-authorization"
    if not RefreshPolicy.from_settings(settings).is_due(account.expires_at, account.issued_at, at):
        return (
            "not due"
            if account.expires_at is None
            else f"not due (expires {account.expires_at.isoformat()})"
        )
    return None


def _endpoint(platform: str, settings: Settings) -> TokenEndpoint:
    # Cheap: connections are pooled per URL by worker.platforms.base, not per endpoint.
    return TokenEndpoint.for_platform(platform, settings)


def _call_platform(
    settings: Settings, account: RefreshCandidate, task_id: str | None, now: Callable[[], datetime]
) -> RefreshResult:
    platform = account.platform
    try:
        app = app_credentials(settings, platform)
    except PlatformError as exc:
        return _after_failure(settings, account, exc, task_id)
    guard = guards.enter(platform, str(account.id))
    if guard.defer_for is not None:
        return RefreshResult("deferred", platform, guard.reason, retry_in=guard.defer_for)
    try:
        granted = _endpoint(platform, settings).renew(
            app, account.access_token, account.refresh_token
        )
    except SoftTimeLimitExceeded as exc:
        guards.leave(guard, exc, None)
        return _after_failure(
            settings, account, TransientError(platform, "token request hit its time limit"), task_id
        )
    except PlatformError as exc:
        guards.leave(guard, exc, None)
        return _after_failure(settings, account, exc, task_id)
    guards.leave(guard, None, None)
    expires_at = now() + timedelta(seconds=granted.expires_in) if granted.expires_in else None
    stored = store_refreshed_tokens(
        account.id,
        expected_expires_at=account.expires_at,
        access_token=granted.access_token,
        refresh_token=granted.refresh_token,
        expires_at=expires_at,
    )
    if not stored:
        return RefreshResult("skipped", platform, "another refresh stored its tokens first")
    _forget_failures(account.id)
    shown = expires_at.isoformat() if expires_at else None
    audit.record(
        "tokens.refreshed",
        actor=AUDIT_ACTOR,
        target=f"account:{account.id}",
        platform=platform,
        previous_expires_at=account.expires_at.isoformat() if account.expires_at else None,
        expires_at=shown,
        task_id=task_id,
    )
    return RefreshResult("refreshed", platform, f"expires {shown}")


def _after_failure(
    settings: Settings, account: RefreshCandidate, error: PlatformError, task_id: str | None
) -> RefreshResult:
    platform = account.platform
    failures = (
        _count_failure(account.id) if isinstance(error, TransientError) else _failures(account.id)
    )
    if isinstance(error, AuthExpiredError):
        reason = f"needs re-authorization: {error.message}"
        mark_needs_reauth(account.id, reason)
        _dead_letter(account.id, task_id, reason, error, attempts=failures + 1)
        _forget_failures(account.id)
        return RefreshResult("needs_reauth", platform, reason)
    decision = decide_with_settings(error, failures, settings)
    if decision.action == "defer":
        return RefreshResult("deferred", platform, error.message, retry_in=decision.delay)
    if decision.action == "retry":
        detail = f"{decision.reason} {failures}: {error.message}"
        return RefreshResult("retry", platform, detail, retry_in=decision.delay)
    reason = f"{decision.reason}: {error.message}"
    _dead_letter(account.id, task_id, reason, error, attempts=max(1, failures))
    _forget_failures(account.id)
    return RefreshResult("dead", platform, reason)


def _dead_letter(
    account_id: uuid.UUID, task_id: str | None, reason: str, error: BaseException, *, attempts: int
) -> None:
    record_dead_letter(
        task_name=TASK_REFRESH,
        task_id=task_id,
        reason=reason,
        args=[str(account_id)],
        queue=QUEUE_TOKENS,
        exception=error,
        attempts=attempts,
    )


def _failures_key(account_id: uuid.UUID) -> str:
    return get_settings().key(*KEY_TOKEN_FAILURES, str(account_id))


def _count_failure(account_id: uuid.UUID) -> int:
    key = _failures_key(account_id)
    with get_redis().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, FAILURES_TTL)
        count, _ = pipe.execute()
    return int(count)


def _failures(account_id: uuid.UUID) -> int:
    return int(get_redis().get(_failures_key(account_id)) or 0)


def _forget_failures(account_id: uuid.UUID) -> None:
    get_redis().delete(_failures_key(account_id))
