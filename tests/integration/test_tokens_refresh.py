"""Token refresh end to end: real PostgreSQL, Redis, worker processes and the sandbox."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from celery import Celery

from tests.fixtures.cli import json_lines
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.tokens import (
    DAY,
    account_row,
    audit_rows,
    dead_letters,
    due_account,
    fingerprint,
    grant_of,
    insert_account,
    log_events,
    oauth_calls,
    plain_tokens,
    refresh_outcomes,
)
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerProcess
from worker.constants import PLATFORMS, TASK_REFRESH, TASK_REFRESH_EXPIRING
from worker.publishing.account_cache import get_publish_account

StartWorker = Callable[..., WorkerProcess]


@pytest.mark.slow  # two worker processes
def test_two_racing_sweeps_refresh_each_due_account_exactly_once(
    publish_env: dict[str, str],
    sandbox: SandboxServer,
    worker_process: StartWorker,
    control: Celery,
) -> None:
    # Given due accounts on every platform, accounts far from expiry, two workers, and
    # token endpoints slow enough that refreshes of one account would overlap
    for platform in PLATFORMS:
        sandbox.set_faults(platform, latency_ms=150)
    due = [due_account(p) for p in PLATFORMS for _ in range(3)]
    far = [insert_account(p, expires_in=30 * DAY, lived=30 * DAY) for p in PLATFORMS]
    grants = {account_id: grant_of(account_id) for account_id in due}
    far_rows = {account_id: account_row(account_id) for account_id in far}
    workers = (
        worker_process(("tokens",), concurrency=2, name="tok1"),
        worker_process(("tokens",), concurrency=2, name="tok2"),
    )

    # When two sweeps run at once
    control.send_task(TASK_REFRESH_EXPIRING)
    control.send_task(TASK_REFRESH_EXPIRING)
    wait_for(
        lambda: len(log_events("tokens.sweep", *workers)) == 2,
        timeout=60,
        what="both sweeps to finish",
    )
    sweeps = log_events("tokens.sweep", *workers)
    sent = sum(line["due"] for line in sweeps)
    wait_for(
        lambda: len(refresh_outcomes(*workers)) >= sent,
        timeout=90,
        what=f"{sent} refresh messages to be handled",
    )

    # Then each due account's grant went to its token endpoint exactly once
    presented = Counter(call["grant_sha256"] for call in oauth_calls(sandbox))
    assert presented == Counter(fingerprint(grant) for grant in grants.values())
    outcomes = Counter(line["outcome"] for line in refresh_outcomes(*workers))
    assert outcomes == {"refreshed": len(due), "skipped": sent - len(due)}, sweeps
    assert sent >= len(due)
    # and holds a new token with a later expiry; far-from-expiry accounts are untouched
    for account_id in due:
        row = account_row(account_id)
        assert plain_tokens(account_id)[0] != grants[account_id]
        assert row["token_expires_at"].timestamp() > row["updated_at"].timestamp() + 3000
    for account_id, before in far_rows.items():
        assert account_row(account_id) == before
    assert len(audit_rows("tokens.refreshed")) == len(due)


def test_a_revoked_grant_ends_needs_reauth_with_a_dead_letter_and_no_token_anywhere(
    publish_env: dict[str, str],
    sandbox: SandboxServer,
    worker_process: StartWorker,
    control: Celery,
) -> None:
    # Given a due account per platform, Facebook revoking every token
    accounts = {platform: due_account(platform) for platform in PLATFORMS}
    old = {p: plain_tokens(a) for p, a in accounts.items()}
    sandbox.set_faults("facebook", revoke_tokens=True)
    worker = worker_process(("tokens", "dead_letter"), concurrency=2, name="tok")

    # When a sweep runs
    control.send_task(TASK_REFRESH_EXPIRING)
    revoked = accounts["facebook"]
    letters = wait_for(
        dead_letters,
        timeout=60,
        what="the revoked refresh's dead letter",
    )
    wait_for(lambda: len(refresh_outcomes(worker)) >= 3, timeout=60, what="three refreshes")

    # Then the revoked account needs re-auth and cannot publish; the others refreshed
    assert account_row(revoked)["needs_reauth"] is True
    publish_account = get_publish_account(revoked)
    assert publish_account is not None and not publish_account.can_publish
    assert plain_tokens(revoked) == old["facebook"]
    by_outcome = {line["outcome"]: line for line in refresh_outcomes(worker)}
    assert set(by_outcome) == {"needs_reauth", "refreshed"}
    assert by_outcome["needs_reauth"]["account_id"] == str(revoked)
    (letter,) = letters
    assert letter["args"] == [str(revoked)]
    assert letter["queue"] == "tokens"
    assert "re-authorization" in letter["reason"]
    assert letter["exception_type"] == "AuthExpiredError"
    # and no token, old or new, access or refresh, is in a log line, a dead letter or audit
    new = {p: plain_tokens(a) for p, a in accounts.items()}
    secrets = {t for pair in (*old.values(), *new.values()) for t in pair if t}
    assert len(secrets) == 6  # three old access, one old refresh, two new access
    recorded = worker.log() + repr(letters) + repr(audit_rows("tokens.refreshed"))
    assert json_lines(worker.log()), "the worker logs JSON"
    for secret in secrets:
        assert secret not in recorded


def test_transient_failures_retry_with_backoff_then_dead_letter_and_bad_ids_are_outcomes(
    publish_env: dict[str, str],
    sandbox: SandboxServer,
    worker_process: StartWorker,
    control: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Google's token endpoint failing with 503, three attempts allowed
    monkeypatch.setenv("HERALD_PUBLISH_MAX_ATTEMPTS", "3")
    account = due_account("youtube")
    sandbox.set_faults("youtube", error_rate=1.0, status=503)
    worker = worker_process(("tokens", "dead_letter"), concurrency=1, name="tok")

    # When its refresh runs
    control.send_task(TASK_REFRESH, args=[str(account)])
    (letter,) = wait_for(dead_letters, timeout=60, what="the exhausted refresh's letter")

    # Then it was tried three times, then dead-lettered; the account is still usable
    assert [call["status"] for call in oauth_calls(sandbox)] == [503, 503, 503]
    outcomes = [line["outcome"] for line in refresh_outcomes(worker)]
    assert outcomes == ["retry", "retry", "dead"]
    assert "gave up after 3 transient failures" in letter["reason"]
    assert account_row(account)["needs_reauth"] is False

    # When the platform is back, a new refresh succeeds (the failure count was reset)
    sandbox.reset_faults("youtube")
    control.send_task(TASK_REFRESH, args=[str(account)])
    # and ids naming no account are outcomes, not crashes
    control.send_task(TASK_REFRESH, args=["not-a-uuid"])
    control.send_task(TASK_REFRESH, args=[str(uuid.uuid4())])
    wait_for(lambda: len(refresh_outcomes(worker)) >= 6, timeout=60, what="three more refreshes")

    outcomes = [line["outcome"] for line in refresh_outcomes(worker)][3:]
    assert sorted(outcomes) == ["not_found", "not_found", "refreshed"]
    assert control.control.ping([worker.hostname], timeout=2)
