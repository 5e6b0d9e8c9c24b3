"""Accounts: tokens encrypted at rest, never shown; the publish path's cache stays true."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.fixtures.cli import run_herald
from worker import runtime
from worker.coordination.redis_client import get_redis
from worker.db.accounts import (
    AccountError,
    AccountExists,
    AccountNotFound,
    create_account,
    deactivate_account,
    get_account,
    list_accounts,
    mark_needs_reauth,
    update_tokens,
)
from worker.db.session import unit_of_work
from worker.publishing import account_cache
from worker.publishing.account_cache import (
    CACHE_TTL_SECONDS,
    PublishAccount,
    get_publish_account,
    invalidate_account,
)
from worker.security.cipher import get_cipher
from worker.settings import get_settings

ACCESS = "plain-access-token-5f1c"
REFRESH = "plain-refresh-token-9a2e"


def namespace_dump() -> str:
    """Every key and string value of this test's namespace, as one text."""
    client = get_redis()
    parts = []
    for key in client.scan_iter(match=get_settings().key("*")):
        parts.append(str(key))
        if client.type(key) == "string":
            parts.append(str(client.get(key)))
    return "\n".join(parts)


@pytest.fixture
def env(herald_env: dict[str, str]) -> dict[str, str]:
    return herald_env


def test_create_stores_tokens_encrypted_and_fills_in_the_rest(env: dict[str, str]) -> None:
    account = create_account(
        "instagram", "ig-1", ACCESS, REFRESH, expires_in=3600, display_name="Shop"
    )
    assert isinstance(account.user_id, uuid.UUID)
    assert account.is_active and not account.needs_reauth
    assert account.token_expires_at is not None
    remaining = account.token_expires_at - datetime.now(UTC)
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)
    with unit_of_work() as session:
        stored = session.execute(
            text("SELECT access_token_enc, refresh_token_enc FROM social_accounts")
        ).one()
    assert ACCESS not in stored.access_token_enc and REFRESH not in stored.refresh_token_enc
    assert get_cipher().decrypt(stored.access_token_enc) == ACCESS
    assert get_cipher().decrypt(stored.refresh_token_enc) == REFRESH


def test_a_duplicate_platform_and_external_id_is_refused_naming_the_existing_account(
    env: dict[str, str],
) -> None:
    first = create_account("facebook", "page-1", ACCESS)
    with pytest.raises(AccountExists, match=r"external_id: a facebook account 'page-1'") as caught:
        create_account("facebook", "page-1", "other")
    assert caught.value.account_id == first.id
    assert create_account("instagram", "page-1", ACCESS).id != first.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"platform": "myspace"}, "platform: 'myspace' is not one of"),
        ({"external_id": " "}, "external_id: is empty"),
        ({"access_token": ""}, "access_token: is empty"),
        ({"expires_in": 0}, "expires_in: must be a positive"),
        ({"user_id": "bob"}, "user_id: 'bob' is not a UUID"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    env: dict[str, str], kwargs: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "platform": "youtube",
        "external_id": "UC1",
        "access_token": ACCESS,
        **kwargs,
    }
    with pytest.raises(AccountError, match=message):
        create_account(**fields)  # type: ignore[arg-type]


def test_get_and_list_filter_by_user_and_platform(env: dict[str, str]) -> None:
    owner = uuid.uuid4()
    ig = create_account("instagram", "a", ACCESS, user_id=owner)
    fb = create_account("facebook", "b", ACCESS, user_id=str(owner))
    other = create_account("instagram", "c", ACCESS)
    fetched = get_account(str(ig.id))
    assert fetched is not None and fetched.external_id == "a"
    assert get_account(uuid.uuid4()) is None
    assert get_account("not-a-uuid") is None
    assert [a.id for a in list_accounts(user_id=owner)] == [ig.id, fb.id]
    assert [a.id for a in list_accounts(platform="instagram")] == [ig.id, other.id]
    assert [a.id for a in list_accounts(user_id=owner, platform="facebook")] == [fb.id]


def test_writes_to_an_unknown_account_say_so(env: dict[str, str]) -> None:
    with pytest.raises(AccountNotFound, match=r"account_id: no account"):
        deactivate_account(uuid.uuid4())
    with pytest.raises(AccountNotFound, match=r"'x' \(not a UUID\)"):
        mark_needs_reauth("x", "revoked")


def test_the_publish_account_has_the_plain_token_and_hides_it(env: dict[str, str]) -> None:
    account = create_account("youtube", "UC-1", ACCESS, REFRESH)
    found = get_publish_account(account.id)
    assert found == PublishAccount(account.id, "youtube", "UC-1", ACCESS, True, False)
    assert found.can_publish
    assert ACCESS not in repr(found) and ACCESS not in str(found)
    assert get_publish_account(uuid.uuid4()) is None


def test_the_cache_holds_only_the_encrypted_token_with_a_ttl(env: dict[str, str]) -> None:
    account = create_account("instagram", "ig-2", ACCESS, REFRESH)
    get_publish_account(account.id)
    key = get_settings().key("account", str(account.id))
    entry = json.loads(get_redis().get(key))  # type: ignore[arg-type]
    assert get_cipher().decrypt(entry["access_token_enc"]) == ACCESS
    assert 0 < get_redis().ttl(key) <= CACHE_TTL_SECONDS
    dump = namespace_dump()
    assert key in dump
    assert ACCESS not in dump and REFRESH not in dump


def test_a_hit_is_served_from_redis(env: dict[str, str]) -> None:
    account = create_account("facebook", "fb-hit", ACCESS)
    get_publish_account(account.id)
    with unit_of_work() as session:  # behind the repository's back: the cache does not know
        session.execute(text("UPDATE social_accounts SET external_id = 'changed'"))
    found = get_publish_account(account.id)
    assert found is not None and found.external_id == "fb-hit"


def test_every_write_invalidates_the_cached_account(env: dict[str, str]) -> None:
    account = create_account("instagram", "ig-3", ACCESS)
    assert get_publish_account(account.id).can_publish  # type: ignore[union-attr]

    mark_needs_reauth(account.id, "token revoked")
    found = get_publish_account(account.id)
    assert found is not None and found.needs_reauth and not found.can_publish

    update_tokens(account.id, "new-token", None, datetime.now(UTC) + timedelta(days=1))
    found = get_publish_account(account.id)
    assert found is not None and found.access_token == "new-token" and not found.needs_reauth

    deactivate_account(account.id)
    found = get_publish_account(account.id)
    assert found is not None and not found.is_active


def test_update_tokens_keeps_the_refresh_token_unless_given_one(env: dict[str, str]) -> None:
    account = create_account("youtube", "UC-2", ACCESS, REFRESH)
    update_tokens(account.id, "a2", None, None)
    stored = get_account(account.id)
    assert stored is not None and stored.refresh_token_enc is not None
    assert get_cipher().decrypt(stored.refresh_token_enc) == REFRESH
    update_tokens(account.id, "a3", "r3", None)
    stored = get_account(account.id)
    assert stored is not None and stored.refresh_token_enc is not None
    assert get_cipher().decrypt(stored.refresh_token_enc) == "r3"
    with pytest.raises(AccountError, match=r"expires_at: has no timezone"):
        update_tokens(account.id, "a4", None, datetime(2030, 1, 1))


def test_a_read_that_raced_a_write_does_not_put_the_old_row_back(env: dict[str, str]) -> None:
    account = create_account("facebook", "fb-race", ACCESS)
    entry_key, generation_key = account_cache._keys(account.id)
    generation = get_redis().get(generation_key) or ""
    stale_row = account_cache._load(account.id)  # a reader reads the row ...
    assert stale_row is not None
    deactivate_account(account.id)  # ... a writer commits and invalidates ...
    account_cache._fill(entry_key, generation_key, str(generation), stale_row)  # ... reader fills
    assert get_redis().get(entry_key) is None
    found = get_publish_account(account.id)
    assert found is not None and not found.is_active


def test_an_unreadable_entry_is_read_again_from_the_database(env: dict[str, str]) -> None:
    account = create_account("instagram", "ig-junk", ACCESS)
    get_redis().set(get_settings().key("account", str(account.id)), "{not json")
    found = get_publish_account(account.id)
    assert found is not None and found.access_token == ACCESS


def test_without_redis_the_account_comes_from_the_database(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = create_account("youtube", "UC-down", ACCESS)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    runtime.reset()  # the fixtures reset again afterwards
    found = get_publish_account(account.id)
    assert found is not None and found.access_token == ACCESS
    deactivate_account(account.id)  # the write succeeds; only the invalidation is lost
    invalidate_account(account.id)
    found = get_publish_account(account.id)
    assert found is not None and not found.is_active


# --- the `herald accounts` command ---------------------------------------------------


def test_cli_add_reads_the_token_from_stdin_and_never_prints_it(env: dict[str, str]) -> None:
    result = run_herald(
        "accounts",
        "add",
        "--platform=instagram",
        "--external-id=ig-cli",
        "--access-token=-",
        f"--refresh-token={REFRESH}",
        "--expires-in=600",
        "--display-name=Cli Shop",
        env=env,
        stdin=f"{ACCESS}\n",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["has_refresh_token"] is True and shown["token_expires_at"]
    assert shown["display_name"] == "Cli Shop"
    found = get_publish_account(uuid.UUID(shown["id"]))
    assert found is not None and found.access_token == ACCESS

    listed = run_herald("accounts", "list", "--platform=instagram", env=env)
    show = run_herald("accounts", "show", shown["id"], env=env)
    gone = run_herald("accounts", "deactivate", shown["id"], env=env)
    for output in (result, listed, show, gone):
        assert output.returncode == 0, output.stderr
        assert ACCESS not in output.stdout + output.stderr
        assert REFRESH not in output.stdout + output.stderr
    assert [a["id"] for a in json.loads(listed.stdout)] == [shown["id"]]
    assert json.loads(show.stdout) == shown
    assert json.loads(gone.stdout)["is_active"] is False


def test_cli_refusals_exit_1_with_a_message(env: dict[str, str]) -> None:
    create_account("facebook", "fb-cli", ACCESS)
    duplicate = run_herald(
        "accounts", "add", "--platform=facebook", "--external-id=fb-cli", "--access-token=t",
        env=env,
    )  # fmt: skip
    assert duplicate.returncode == 1
    assert duplicate.stderr.startswith("herald: external_id: a facebook account 'fb-cli'")
    missing = run_herald("accounts", "show", "nope", env=env)
    assert missing.returncode == 1
    assert missing.stderr == "herald: account_id: no account 'nope' (not a UUID)\n"
    unknown = run_herald("accounts", "deactivate", str(uuid.uuid4()), env=env)
    assert unknown.returncode == 1 and "no account" in unknown.stderr


def test_cli_usage_errors_exit_2(env: dict[str, str]) -> None:
    bad_platform = run_herald(
        "accounts", "add", "--platform=myspace", "--external-id=x", "--access-token=t", env=env
    )
    assert bad_platform.returncode == 2
    both_stdin = run_herald(
        "accounts", "add", "--platform=youtube", "--external-id=x",
        "--access-token=-", "--refresh-token=-", env=env, stdin="a\nb\n",
    )  # fmt: skip
    assert both_stdin.returncode == 2 and "only one of" in both_stdin.stderr
    empty_stdin = run_herald(
        "accounts", "add", "--platform=youtube", "--external-id=x", "--access-token=-",
        env=env, stdin="",
    )  # fmt: skip
    assert empty_stdin.returncode == 2 and "stdin gave no token" in empty_stdin.stderr


def test_cli_configuration_errors_exit_2(env: dict[str, str]) -> None:
    result = run_herald("accounts", "list", env={**env, "DATABASE_URL": "nonsense"})
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
