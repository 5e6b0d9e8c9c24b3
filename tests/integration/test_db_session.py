"""The unit-of-work helper retries a transaction PostgreSQL aborted for a conflict."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.db.engine import libpq_url
from worker.db.session import in_transaction, unit_of_work


def _make_account(session: Session) -> uuid.UUID:
    return session.execute(
        text(
            "INSERT INTO social_accounts (user_id, platform, external_id, access_token_enc) "
            "VALUES (gen_random_uuid(), 'instagram', :ext, 'x') RETURNING id"
        ),
        {"ext": uuid.uuid4().hex},
    ).scalar_one()


def test_a_serialization_failure_is_retried_and_then_commits(database: str) -> None:
    with unit_of_work() as session:
        account = _make_account(session)
    calls = []

    def rename(session: Session) -> int:
        calls.append(1)
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        session.execute(
            text("SELECT display_name FROM social_accounts WHERE id = :id"), {"id": account}
        )
        if len(calls) == 1:
            # Another transaction changes the row after our snapshot: ours must abort.
            with psycopg.connect(libpq_url(database), autocommit=True) as other:
                other.execute(
                    "UPDATE social_accounts SET display_name = 'other' WHERE id = %s", (account,)
                )
        session.execute(
            text("UPDATE social_accounts SET display_name = 'ours' WHERE id = :id"), {"id": account}
        )
        return len(calls)

    assert in_transaction(rename) == 2
    with unit_of_work() as session:
        name = session.execute(
            text("SELECT display_name FROM social_accounts WHERE id = :id"), {"id": account}
        ).scalar_one()
    assert name == "ours"


def test_other_errors_are_not_retried_and_roll_back(database: str) -> None:
    calls = []

    def duplicate(session: Session) -> None:
        calls.append(1)
        _make_account(session)
        session.execute(
            text(
                "INSERT INTO social_accounts (user_id, platform, external_id, access_token_enc) "
                "VALUES (gen_random_uuid(), 'nope', 'x', 'x')"
            )
        )

    with pytest.raises(IntegrityError):
        in_transaction(duplicate)
    assert len(calls) == 1
    with unit_of_work() as session:
        assert session.execute(text("SELECT count(*) FROM social_accounts")).scalar_one() == 0
