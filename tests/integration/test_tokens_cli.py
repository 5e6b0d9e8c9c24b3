"""`herald tokens new-key | refresh` as an operator runs them."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet

from tests.fixtures.cli import run_herald
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.tokens import DAY, due_account, insert_account, oauth_calls


def test_new_key_prints_one_fresh_fernet_key(herald_env: dict[str, str]) -> None:
    first = run_herald("tokens", "new-key", env=herald_env)
    second = run_herald("tokens", "new-key", env=herald_env)

    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    Fernet(key)  # raises if it is not a key
    assert key != second.stdout.strip()


def test_refresh_now_refreshes_a_due_account_once_then_skips(
    publish_env: dict[str, str], sandbox: SandboxServer
) -> None:
    account = due_account("instagram")

    first = run_herald("tokens", "refresh", str(account), env=publish_env)
    again = run_herald("tokens", "refresh", str(account), env=publish_env)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["outcome"] == "refreshed"
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcome"] == "skipped"
    assert "not due" in json.loads(again.stdout)["detail"]
    assert len(oauth_calls(sandbox)) == 1


def test_refresh_of_an_unknown_or_malformed_id_exits_1_naming_it(
    publish_env: dict[str, str], sandbox: SandboxServer
) -> None:
    insert_account("facebook", expires_in=DAY, lived=DAY)
    missing = "00000000-0000-4000-8000-000000000000"

    unknown = run_herald("tokens", "refresh", missing, env=publish_env)
    malformed = run_herald("tokens", "refresh", "acct-42", env=publish_env)

    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) | {"detail": ""} == {
        "account_id": missing,
        "platform": "unknown",
        "outcome": "not_found",
        "detail": "",
        "retry_in": None,
    }
    assert missing in json.loads(unknown.stdout)["detail"]
    assert malformed.returncode == 1
    assert "'acct-42' is not a UUID" in json.loads(malformed.stdout)["detail"]
    assert oauth_calls(sandbox) == []
