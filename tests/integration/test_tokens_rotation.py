"""`herald tokens rotate-key`: every account's tokens move to the newest key, in batches,
resumably, reporting the rows it cannot move."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text

from tests.fixtures.cli import HERALD, run_herald
from tests.fixtures.tokens import DAY, account_row, audit_rows, insert_account
from tests.fixtures.waiting import wait_for
from worker import runtime
from worker.constants import PLATFORMS
from worker.db.engine import get_engine
from worker.db.session import unit_of_work

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def under_old_key(herald_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Accounts made from here on are encrypted with OLD only."""
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", OLD)
    runtime.reset()
    yield
    runtime.reset()


def rotation_env(herald_env: dict[str, str], keys: str) -> dict[str, str]:
    return {**herald_env, "TOKEN_ENCRYPTION_KEYS": keys}


def make_accounts(count: int) -> list[uuid.UUID]:
    return [
        insert_account(PLATFORMS[i % 3], expires_in=DAY, lived=DAY, access=f"tok-{i}")
        for i in range(count)
    ]


def under(key: str, account_id: uuid.UUID) -> bool:
    """Whether ``key`` alone opens every token of the account."""
    row = account_row(account_id)
    try:
        for column in ("access_token_enc", "refresh_token_enc"):
            if row[column]:
                Fernet(key).decrypt(row[column].encode())
    except InvalidToken:
        return False
    return True


def test_rotation_moves_every_token_to_the_newest_key_and_a_rerun_only_checks(
    herald_env: dict[str, str], under_old_key: None
) -> None:
    # Given accounts (YouTube ones with refresh tokens) under the old key
    accounts = make_accounts(7)
    before = {a: account_row(a) for a in accounts}

    # When the new key is put first and the tokens rotated, three accounts per batch
    rotated = run_herald(
        "tokens", "rotate-key", "--batch-size", "3", env=rotation_env(herald_env, f"{NEW},{OLD}")
    )
    # and then checked again with the new key alone
    again = run_herald("tokens", "rotate-key", env=rotation_env(herald_env, NEW))

    # Then every token opens with the new key alone and says the same; nothing else changed
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout) == {
        "scanned": 7,
        "rotated": 7,
        "already_current": 0,
        "batches": 3,
        "undecryptable": [],
        "locked": [],
        "complete": True,
    }
    for account_id in accounts:
        assert under(NEW, account_id) and not under(OLD, account_id)
        row, old = account_row(account_id), before[account_id]
        assert Fernet(NEW).decrypt(row["access_token_enc"].encode()) == Fernet(OLD).decrypt(
            old["access_token_enc"].encode()
        )
        assert row["updated_at"] == old["updated_at"]  # the token's age is unchanged
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_current"] == 7
    assert json.loads(again.stdout)["rotated"] == 0
    assert len(audit_rows("tokens.rotate_key")) == 2
    for secret in (OLD, NEW, "tok-1"):
        assert secret not in rotated.stdout + rotated.stderr


def test_a_killed_rotation_resumes_where_it_stopped(
    herald_env: dict[str, str], under_old_key: None
) -> None:
    # Given 60 accounts and a rotation going slowly, five per batch
    accounts = make_accounts(60)
    env = rotation_env(herald_env, f"{NEW},{OLD}")
    args = ["tokens", "rotate-key", "--batch-size", "5", "--pause", "0.5"]
    process = subprocess.Popen([*HERALD, *args], env=env, stdout=subprocess.DEVNULL)

    # When it is killed after its first batch committed
    try:
        wait_for(lambda: under(NEW, accounts[0]), timeout=30, what="the first batch")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    done = sum(under(NEW, a) for a in accounts)
    resumed = run_herald("tokens", "rotate-key", "--batch-size", "7", env=env)

    # Then the re-run skips what was done and finishes the rest
    assert 5 <= done < 60
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["already_current"], report["rotated"]) == (done, 60 - done)
    assert all(under(NEW, a) for a in accounts)


def test_undecryptable_and_locked_rows_are_reported_by_id_and_the_rest_rotated(
    herald_env: dict[str, str], under_old_key: None
) -> None:
    # Given four accounts under the old key, one under a key nobody configured, and one
    # row held by another transaction
    accounts = make_accounts(4)
    stranger = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    with unit_of_work() as session:
        session.execute(
            text("UPDATE social_accounts SET access_token_enc = :t WHERE id = :id"),
            {"t": stranger, "id": accounts[0]},
        )
    env = rotation_env(herald_env, f"{NEW},{OLD}")
    with get_engine().connect() as holder:
        holder.execute(
            text("SELECT 1 FROM social_accounts WHERE id = :id FOR UPDATE"), {"id": accounts[1]}
        )
        # When the tokens are rotated
        first = run_herald("tokens", "rotate-key", "--batch-size", "2", env=env)
        holder.rollback()
    second = run_herald("tokens", "rotate-key", env=env)

    # Then the others moved, the two are named, and the run exits 1 until all are done
    assert first.returncode == 1
    report = json.loads(first.stdout)
    assert (report["rotated"], report["complete"]) == (2, False)
    assert report["undecryptable"] == [str(accounts[0])]
    assert report["locked"] == [str(accounts[1])]
    assert str(accounts[0]) in first.stderr and "re-run" in first.stderr
    assert second.returncode == 1
    assert json.loads(second.stdout)["rotated"] == 1
    assert json.loads(second.stdout)["locked"] == []
    assert all(under(NEW, a) for a in accounts[1:])


def test_a_malformed_key_or_batch_size_is_refused_with_one_clear_line(
    herald_env: dict[str, str],
) -> None:
    bad_key = run_herald(
        "tokens", "rotate-key", env=rotation_env(herald_env, f"{NEW},not-a-fernet-key")
    )
    bad_batch = run_herald("tokens", "rotate-key", "--batch-size", "0", env=herald_env)

    assert bad_key.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS: key #2 is not a Fernet key" in bad_key.stderr
    assert "not-a-fernet-key" not in bad_key.stderr and NEW not in bad_key.stderr
    assert bad_key.stdout == ""
    assert bad_batch.returncode == 2
    assert "--batch-size" in bad_batch.stderr
