"""With no URL set, Herald starts real Redis and PostgreSQL under HERALD_HOME and reuses them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.fixtures.cli import run_herald
from worker.db.migrate import head

HEAD = head()

CONTRACT_URLS = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")


#: Seconds a command may take: the first one initialises and starts PostgreSQL.
COMMAND_TIMEOUT_S = 180


def embedded_env(home: Path) -> dict[str, str]:
    """A user's environment with no server URL set and `home` as HERALD_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_URLS}
    env.update({"HERALD_HOME": str(home), "HERALD_NAMESPACE": "embedded-test"})
    return env


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "herald-home"
    yield path
    run_herald("embedded", "stop", env=embedded_env(path), timeout=COMMAND_TIMEOUT_S)


def test_embedded_servers_start_migrate_answer_and_persist_across_restarts(home: Path) -> None:
    herald = partial(run_herald, env=embedded_env(home), timeout=COMMAND_TIMEOUT_S)
    assert herald("migrate").returncode == 0
    health = herald("health")
    assert health.returncode == 0, health.stdout + health.stderr
    first = json.loads(health.stdout)
    assert first["checks"]["database"]["schema_revision"] == HEAD

    status = json.loads(herald("embedded", "status").stdout)
    assert status["redis"] and status["redis"].startswith("redis://127.0.0.1:")
    assert status["postgres"] and status["postgres"].startswith("postgresql://")
    assert (home / "postgres" / "data" / "PG_VERSION").exists()

    stopped = json.loads(herald("embedded", "stop").stdout)
    assert sorted(stopped["stopped"]) == ["postgres", "redis"]
    assert json.loads(herald("embedded", "status").stdout) == {
        "redis": None,
        "postgres": None,
    }

    # Started again on demand, with the data of the first run: the schema is still there.
    again = herald("health")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["checks"]["database"]["schema_revision"] == HEAD
