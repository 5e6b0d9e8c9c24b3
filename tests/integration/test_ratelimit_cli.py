"""`herald limits set | show | reset` as an operator runs them: JSON out, audit rows, exit codes."""

from __future__ import annotations

import uuid

from tests.fixtures.cli import herald_json, run_herald
from worker import runtime
from worker.db import audit
from worker.db.accounts import create_account
from worker.resilience.ratelimit import get_limiter


def test_set_show_and_reset_the_per_account_default(herald_env: dict[str, str]) -> None:
    # Given the defaults
    shown = herald_json("limits", "show", "instagram", env=herald_env)["platforms"]["instagram"]
    assert shown["app"] == {
        "spec": "200/h",
        "source": "default",
        "remaining": 200,
        "retry_after": 0.0,
    }
    assert shown["account_default"] == {"spec": "25/h", "source": "default"}
    # When an operator sets Instagram's per-account limit
    changed = herald_json(
        "limits", "set", "instagram", "30/h,5/m", "--actor", "alice", env=herald_env
    )
    # Then it is stored canonically, shown as an override, and audited
    assert changed["target"] == "instagram:account"
    assert changed["spec"] == "5/m,30/h"
    assert changed["previous"] == {"spec": "25/h", "source": "default"}
    shown = herald_json("limits", "show", "instagram", env=herald_env)["platforms"]["instagram"]
    assert shown["account_default"] == {"spec": "5/m,30/h", "source": "override"}
    (entry,) = audit.recent(action="limits.set")
    assert (entry.actor, entry.target, entry.id) == (
        "alice",
        "instagram:account",
        changed["audit_id"],
    )
    assert entry.detail == {"spec": "5/m,30/h", "previous": "25/h"}
    # And a reset brings the default back, audited too
    reset = herald_json("limits", "reset", "instagram", "--actor", "bob", env=herald_env)
    assert (reset["changed"], reset["spec"], reset["source"]) == (True, "25/h", "default")
    (entry,) = audit.recent(action="limits.reset")
    assert (entry.actor, entry.detail["previous"]) == ("bob", "5/m,30/h")
    again = herald_json("limits", "reset", "instagram", env=herald_env)
    assert (again["changed"], again["audit_id"]) == (False, None)


def test_one_account_and_the_app_cap_and_what_remains(herald_env: dict[str, str]) -> None:
    account = create_account("facebook", "page-42", "token-42")
    runtime.reset()
    herald_json("limits", "set", "facebook", "3/m", "--account", str(account.id), env=herald_env)
    herald_json("limits", "set", "facebook", "--app", "150/h", env=herald_env)
    get_limiter().acquire("facebook", account.id)

    shown = herald_json("limits", "show", "facebook", "--account", str(account.id), env=herald_env)
    view = shown["platforms"]["facebook"]
    assert view["app"]["spec"] == "150/h"
    assert view["app"]["remaining"] == 149
    assert view["account"] == {
        "id": str(account.id),
        "spec": "3/m",
        "source": "override",
        "remaining": 2,
        "retry_after": 0.0,
    }
    assert view["account_overrides"] == {str(account.id): "3/m"}
    assert shown["enabled"] is True
    targets = {entry.target for entry in audit.recent(action="limits.set")}
    assert targets == {f"facebook:account:{account.id}", "facebook:app"}


def test_show_without_a_platform_lists_every_platform(herald_env: dict[str, str]) -> None:
    shown = herald_json("limits", "show", env=herald_env)
    assert sorted(shown["platforms"]) == ["facebook", "instagram", "youtube"]
    assert shown["platforms"]["youtube"]["account_default"]["spec"] == "10/h"


def test_bad_input_exits_1_with_the_reason_and_changes_nothing(herald_env: dict[str, str]) -> None:
    done = run_herald("limits", "set", "instagram", "30/x", env=herald_env)
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "herald: 30/x: unknown unit 'x'; use s, m, h, d",
    )
    nobody = str(uuid.uuid4())
    done = run_herald("limits", "set", "instagram", "30/h", "--account", nobody, env=herald_env)
    assert done.returncode == 1
    assert f"no account '{nobody}'" in done.stderr
    account = create_account("youtube", "chan-1", "token-1")
    done = run_herald(
        "limits", "set", "instagram", "30/h", "--account", str(account.id), env=herald_env
    )
    assert done.returncode == 1
    assert "is on youtube, not instagram" in done.stderr
    assert audit.recent(action="limits.set") == []


def test_usage_errors_exit_2(herald_env: dict[str, str]) -> None:
    done = run_herald("limits", "set", "tiktok", "30/h", env=herald_env)
    assert done.returncode == 2
    assert "'tiktok' is not one of 'instagram', 'facebook', 'youtube'" in done.stderr
    done = run_herald(
        "limits",
        "set",
        "instagram",
        "30/h",
        "--app",
        "--account",
        str(uuid.uuid4()),
        env=herald_env,
    )
    assert (done.returncode, "give --app or --account, not both" in done.stderr) == (2, True)
    done = run_herald("limits", "show", "--account", str(uuid.uuid4()), env=herald_env)
    assert (done.returncode, "--account needs PLATFORM" in done.stderr) == (2, True)
