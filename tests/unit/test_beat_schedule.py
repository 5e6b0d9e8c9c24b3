"""The beat schedule comes from settings: intervals, crontabs, expiries, lock timeout.

Given settings (environment variables, as an operator sets them), when the schedule
and Celery's config are built, then every entry follows them; a bad crontab or lock
timeout fails at start with one line naming the variable.
"""

from __future__ import annotations

import os

import pytest
from celery.schedules import crontab

from schedules.beat import NIGHTLY_EXPIRES, build_beat_schedule
from worker.constants import (
    QUEUE_MAINTENANCE,
    QUEUE_POSTS,
    QUEUE_TOKENS,
    TASK_ARCHIVE,
    TASK_BACKUP,
    TASK_DISPATCH_DUE,
    TASK_HEARTBEAT,
    TASK_REFRESH_EXPIRING,
)
from worker.settings import Settings, SettingsError, load_settings
from worker.taskapp.config import celery_config
from worker.taskapp.routing import queue_for

#: Entry name -> (task, queue): names are stable (redbeat keys derive from them).
ENTRIES = {
    "dispatch-due": (TASK_DISPATCH_DUE, QUEUE_POSTS),
    "heartbeat": (TASK_HEARTBEAT, QUEUE_MAINTENANCE),
    "refresh-expiring-tokens": (TASK_REFRESH_EXPIRING, QUEUE_TOKENS),
    "backup": (TASK_BACKUP, QUEUE_MAINTENANCE),
    "archive": (TASK_ARCHIVE, QUEUE_MAINTENANCE),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> pytest.MonkeyPatch:
    """No HERALD_* variable but those a test sets (and no stray .env)."""
    for name in list(os.environ):
        if name.startswith("HERALD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://herald@db:5432/herald")
    return monkeypatch


def settings_from(env: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in variables.items():
        env.setenv(name, value)
    return load_settings()


def test_every_entry_runs_its_stable_task_on_its_queue(env: pytest.MonkeyPatch) -> None:
    schedule = build_beat_schedule(settings_from(env))
    assert {name: entry["task"] for name, entry in schedule.items()} == {
        name: task for name, (task, _) in ENTRIES.items()
    }
    for name, (task, queue) in ENTRIES.items():
        assert queue_for(task) == queue, name


def test_intervals_and_their_expiries_come_from_settings(env: pytest.MonkeyPatch) -> None:
    # Given intervals set by environment
    settings = settings_from(
        env,
        HERALD_DISPATCH_INTERVAL="2.5",
        HERALD_HEARTBEAT_INTERVAL="7",
        HERALD_TOKEN_REFRESH_INTERVAL="120",
    )
    # When the schedule is built
    schedule = build_beat_schedule(settings)
    # Then each entry runs at its interval and a run older than that is dropped
    assert schedule["dispatch-due"]["schedule"] == 2.5
    assert schedule["dispatch-due"]["options"] == {"expires": 5.0}
    assert schedule["heartbeat"]["schedule"] == 7.0
    assert schedule["heartbeat"]["options"] == {"expires": 7.0}
    assert schedule["refresh-expiring-tokens"]["schedule"] == 120.0
    assert schedule["refresh-expiring-tokens"]["options"] == {"expires": 120.0}


def test_defaults_are_the_documented_ones(env: pytest.MonkeyPatch) -> None:
    schedule = build_beat_schedule(settings_from(env))
    assert schedule["dispatch-due"]["schedule"] == 1.0
    assert schedule["heartbeat"]["schedule"] == 10.0
    assert schedule["refresh-expiring-tokens"]["schedule"] == 300.0
    assert schedule["backup"]["schedule"] == crontab(minute="30", hour="3")
    assert schedule["archive"]["schedule"] == crontab(minute="15", hour="4")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 2 * * 1", crontab(minute="0", hour="2", day_of_week="1")),
        ("*/15 1-5 1,15 * *", crontab(minute="*/15", hour="1-5", day_of_month="1,15")),
        ("45 23 * 6 sun", crontab(minute="45", hour="23", month_of_year="6", day_of_week="sun")),
    ],
)
def test_crontab_strings_become_their_crontab(
    env: pytest.MonkeyPatch, expression: str, expected: crontab
) -> None:
    # Given the backup and archival crontabs (minute hour day-of-month month day-of-week)
    settings = settings_from(
        env, HERALD_BACKUP_SCHEDULE=expression, HERALD_ARCHIVE_SCHEDULE=expression
    )
    schedule = build_beat_schedule(settings)
    # Then the fields land where crontab(8) puts them (Celery's argument order differs)
    for name in ("backup", "archive"):
        assert schedule[name]["schedule"] == expected, name
        assert schedule[name]["options"] == {"expires": NIGHTLY_EXPIRES}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HERALD_BACKUP_SCHEDULE", "30 3 * *", "HERALD_BACKUP_SCHEDULE: needs 5 fields"),
        ("HERALD_BACKUP_SCHEDULE", "61 3 * * *", "HERALD_BACKUP_SCHEDULE: is not a valid crontab"),
        ("HERALD_BACKUP_SCHEDULE", "nightly", "HERALD_BACKUP_SCHEDULE: needs 5 fields"),
        (
            "HERALD_ARCHIVE_SCHEDULE",
            "0 25 * * *",
            "HERALD_ARCHIVE_SCHEDULE: is not a valid crontab",
        ),
        ("HERALD_BEAT_LOCK_TIMEOUT", "2", "HERALD_BEAT_LOCK_TIMEOUT: Input should be greater"),
        ("HERALD_HEARTBEAT_INTERVAL", "0", "HERALD_HEARTBEAT_INTERVAL: Input should be greater"),
        ("HERALD_DISPATCH_INTERVAL", "0", "HERALD_DISPATCH_INTERVAL: Input should be greater"),
    ],
)
def test_a_bad_schedule_setting_fails_at_start_naming_it(
    env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(message), caught.value.problems


def test_celery_runs_redbeat_with_the_settings_lock_and_schedule(env: pytest.MonkeyPatch) -> None:
    # Given a namespace, a lock timeout and an interval
    settings = settings_from(
        env, HERALD_NAMESPACE="blue", HERALD_BEAT_LOCK_TIMEOUT="45", HERALD_DISPATCH_INTERVAL="3"
    )
    # When Celery's config is built
    config = celery_config(settings)
    # Then beat is redbeat, locked for that long, its keys in the namespace, on the same Redis
    assert config["beat_scheduler"] == "schedules.leadership.HeraldRedBeatScheduler"
    assert config["redbeat_lock_timeout"] == 45
    assert config["redbeat_key_prefix"] == "blue:redbeat:"
    assert config["redbeat_redis_url"] == "redis://redis:6379/0"
    assert config["beat_schedule"] == build_beat_schedule(settings)
    assert config["beat_schedule"]["dispatch-due"]["schedule"] == 3.0
