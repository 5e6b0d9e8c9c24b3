"""`herald breakers` as an operator runs it: a subprocess against real Redis and PostgreSQL."""

from __future__ import annotations

import json

from tests.fixtures.cli import run_herald
from worker.db import audit
from worker.resilience.breaker import PlatformBreaker


def test_breakers_shows_every_platform(herald_env: dict[str, str]) -> None:
    result = run_herald("breakers", env=herald_env)

    assert result.returncode == 0, result.stderr
    shown = {b["platform"]: b for b in json.loads(result.stdout)}
    assert set(shown) == {"instagram", "facebook", "youtube"}
    assert shown["youtube"]["state"] == "closed"
    assert set(shown["youtube"]) >= {"failures", "opened_at", "half_open_at", "probe_until"}


def test_force_open_then_reset_are_applied_and_audited(herald_env: dict[str, str]) -> None:
    opened = run_herald(
        "breakers", "open", "facebook", "--for", "120", "--actor", "ops-alice", env=herald_env
    )

    assert opened.returncode == 0, opened.stderr
    after = json.loads(opened.stdout)["after"]
    assert after["state"] == "open"
    assert 110 < after["retry_after"] <= 120
    admission = PlatformBreaker("facebook").admit()
    assert not admission.allowed
    assert admission.retry_after > 100
    (entry,) = audit.recent(action="breaker.force_open")
    assert (entry.actor, entry.target) == ("ops-alice", "facebook")
    assert entry.detail["seconds"] == 120
    assert entry.detail["before"]["state"] == "closed"

    reset = run_herald("breakers", "reset", "facebook", "--actor", "ops-bob", env=herald_env)

    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["after"]["state"] == "closed"
    assert PlatformBreaker("facebook").admit().allowed
    (entry,) = audit.recent(action="breaker.reset")
    assert (entry.actor, entry.target) == ("ops-bob", "facebook")
    assert entry.detail["before"]["state"] == "open"


def test_an_unknown_platform_is_a_usage_error(herald_env: dict[str, str]) -> None:
    result = run_herald("breakers", "reset", "myspace", env=herald_env)

    assert result.returncode == 2
    assert "'myspace' is not one of" in result.stderr
    assert audit.recent(action="breaker.reset") == []


def test_redis_unreachable_exits_69_and_audits_nothing(herald_env: dict[str, str]) -> None:
    env = {**herald_env, "REDIS_URL": "redis://127.0.0.1:1/0"}

    result = run_herald("breakers", "open", "instagram", env=env)

    assert result.returncode == 69  # EX_UNAVAILABLE: a server Herald needs is down
    assert "herald: opening the instagram breaker failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert audit.recent(action="breaker.force_open") == []
