"""The `herald` command against real servers: health, migrate, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.cli import run_herald
from worker.db.migrate import head

HEAD = head()


def test_health_is_json_and_exits_0_when_everything_answers(herald_env: dict[str, str]) -> None:
    result = run_herald("health", env=herald_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert set(report["checks"]) == {"database", "redis", "broker"}
    for check in report["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0
    assert report["checks"]["database"]["schema_revision"] == HEAD


def test_health_exits_1_and_names_the_failing_server(herald_env: dict[str, str]) -> None:
    result = run_herald(
        "health", "--timeout", "1", env={**herald_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "failing"
    assert report["checks"]["database"]["ok"] is True
    assert report["checks"]["redis"]["ok"] is False
    assert "Connection" in report["checks"]["redis"]["error"]


def test_migrate_is_idempotent_and_reports_the_revision(herald_env: dict[str, str]) -> None:
    result = run_herald("migrate", env=herald_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["revision"] == HEAD


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL: is not a URL"),
        ({"HERALD_ENV": "production"}, "TOKEN_ENCRYPTION_KEYS: required in production"),
        ({"HERALD_POSTS_WORKERS": "0"}, "HERALD_POSTS_WORKERS: Input should be greater"),
    ],
)
def test_a_wrong_setting_exits_2_naming_the_variable(
    herald_env: dict[str, str], env: dict[str, str], expected: str
) -> None:
    result = run_herald("health", env={**herald_env, **env})
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_celery_process_with_a_wrong_setting_exits_2_without_a_traceback(
    herald_env: dict[str, str],
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker"],
        env={**herald_env, "DATABASE_URL": "nonsense"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DATABASE_URL: is not a URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_flag_exits_2_with_usage() -> None:
    result = run_herald("health", "--no-such-flag", env={**os.environ})
    assert result.returncode == 2
    assert "No such option '--no-such-flag'" in result.stderr
    assert "Usage: herald health" in result.stderr
