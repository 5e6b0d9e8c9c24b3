"""The sweep's query (the same rule as the refresh's own check, served by the index),
and a refresh the breaker defers, in this process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.tokens import (
    DAY,
    account_row,
    due_account,
    insert_account,
    oauth_calls,
)
from worker.db.accounts import due_account_ids, mark_needs_reauth
from worker.db.session import unit_of_work
from worker.tokens.policy import DUE_SQL, RefreshPolicy

INDEX = "ix_social_accounts_is_active_token_expires_at"


@pytest.fixture
def mixed_accounts(publish_env: dict[str, str]) -> list[object]:
    """Accounts around every edge of the rule."""
    made = [
        insert_account("facebook", expires_in=600, lived=60 * DAY),  # due: last day
        insert_account("facebook", expires_in=2 * DAY, lived=58 * DAY),  # not yet
        insert_account("instagram", expires_in=-60, lived=61 * DAY),  # expired: due
        insert_account("youtube", expires_in=1700, lived=1900),  # past half life: due
        insert_account("youtube", expires_in=2000, lived=1600),  # before half life
        insert_account("youtube", expires_in=300, lived=3300, active=False),  # deactivated
        insert_account("facebook", expires_in=30 * DAY, lived=30 * DAY),  # far
    ]
    reauth = insert_account("instagram", expires_in=600, lived=60 * DAY)
    mark_needs_reauth(reauth, "test")
    return [*made, reauth]


def test_the_sweep_selects_exactly_the_accounts_the_refresh_would_refresh(
    mixed_accounts: list[object],
) -> None:
    policy = RefreshPolicy(window=float(DAY), margin=600.0)
    now = datetime.now(UTC)

    selected = {row[0] for row in due_account_ids(DUE_SQL, policy.sql_params(now), None, 100)}
    in_python = set()
    for account_id in mixed_accounts:
        row = account_row(account_id)  # type: ignore[arg-type]
        usable = row["is_active"] and not row["needs_reauth"]
        if usable and policy.is_due(row["token_expires_at"], row["updated_at"], now):
            in_python.add(row["id"])

    assert selected == in_python
    assert len(selected) == 3


def test_the_sweep_pages_through_due_accounts_in_keyset_batches(
    mixed_accounts: list[object],
) -> None:
    params = RefreshPolicy(window=float(DAY), margin=600.0).sql_params(datetime.now(UTC))

    first = due_account_ids(DUE_SQL, params, None, 2)
    rest = due_account_ids(DUE_SQL, params, (first[-1][1], first[-1][0]), 2)

    assert len(first) == 2 and len(rest) == 1
    assert not {r[0] for r in first} & {r[0] for r in rest}


def test_the_sweep_query_can_use_the_active_expiry_index(publish_env: dict[str, str]) -> None:
    params = RefreshPolicy(window=float(DAY), margin=600.0).sql_params(datetime.now(UTC))
    with unit_of_work() as session:
        # A tiny table is cheaper to scan; forbid that to see what the index can do.
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            session.execute(
                text(f"EXPLAIN SELECT id FROM social_accounts WHERE {DUE_SQL}"), params
            ).scalars()
        )

    assert INDEX in plan, plan
    assert "Index Cond" in plan and "token_expires_at <=" in plan, plan


def test_an_open_breaker_defers_a_refresh_without_calling_or_spending_an_attempt(
    publish_env: dict[str, str], sandbox: SandboxServer
) -> None:
    from worker.constants import KEY_TOKEN_FAILURES
    from worker.coordination.redis_client import get_redis
    from worker.resilience.breaker import get_breakers
    from worker.settings import get_settings
    from worker.tokens.refresh import refresh_account

    # Given a due account on a platform whose breaker is open
    account = due_account("facebook")
    before = account_row(account)
    get_breakers()["facebook"].force_open(30)

    # When it is refreshed
    result = refresh_account(account)

    # Then it is deferred until the probe, with no call, no attempt counted, no change
    assert result.outcome == "deferred"
    assert result.retry_in is not None and 25 <= result.retry_in <= 32
    assert "breaker" in result.detail
    assert oauth_calls(sandbox) == []
    assert not get_redis().exists(get_settings().key(*KEY_TOKEN_FAILURES, str(account)))
    assert account_row(account) == before
