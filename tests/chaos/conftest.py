"""Chaos fixtures: scenario sizing, a jittery sandbox, and servers we may break.

Plain `pytest` runs every scenario short (small N, one or two faults, short outages;
the directory aims at <= 150 s on 2 cores). `HERALD_CHAOS=full` runs them at
full size and marks them `slow`, so `make chaos` (`HERALD_CHAOS=full pytest tests/chaos
-m slow`) selects exactly the full runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.chaos.harness import FULL, sized
from tests.fixtures.private_servers import CuttableProxy, PrivateRedis, private_redis_server
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.services import reset_process_state
from worker.constants import PLATFORMS

#: A full-size scenario may take many minutes (5,000 posts under a kill storm).
FULL_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not FULL:
        return
    for item in items:
        if "tests/chaos/" in item.nodeid:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(FULL_TIMEOUT_S))


@pytest.fixture
def chaos_env(publish_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """publish_env plus what chaos needs: no lease longer than the scenario can wait."""
    # A post whose worker died waits out its lease (publish: limit + 15 s; queued: the
    # queued lease) before it is re-sent: that wait is most of a short scenario. Short
    # runs take the smallest the settings allow (a 20 s publish lease, soft limit 3 s:
    # ample for a sandbox answering in 0-1 s). Full runs use the production default: a
    # retried post looks back on the platform over every post its account received since
    # its first attempt (thousands here, at up to 1 s a page), which a 7 s soft limit cuts.
    extra = {
        "HERALD_QUEUED_LEASE": str(sized(10, 30)),
        "HERALD_PUBLISH_TIME_LIMIT": str(sized(5, 60)),
    }
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    reset_process_state()
    return {**publish_env, **extra}


@pytest.fixture
def jittery_sandbox(sandbox: SandboxServer) -> SandboxServer:
    """Every platform answers after a random 0-1 s, so kills land mid-call."""
    for platform in PLATFORMS:
        sandbox.set_faults(platform, latency_ms=0, latency_jitter_ms=1000)
    return sandbox


@pytest.fixture
def private_redis(
    chaos_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (restartable); Herald's processes use it as
    REDIS_URL (broker, coordination, beat). Request it before `worker_process`."""
    with private_redis_server(tmp_path / "redis") as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        reset_process_state()
        yield server


@pytest.fixture
def pg_proxy(chaos_env: dict[str, str], database: str) -> Iterator[CuttableProxy]:
    """A cuttable TCP proxy in front of this test's PostgreSQL."""
    url = make_url(database)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


@pytest.fixture
def rabbitmq_broker(
    amqp_url: str, chaos_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """RabbitMQ as the broker (Redis stays for coordination). Request it before workers."""
    monkeypatch.setenv("BROKER_URL", amqp_url)
    reset_process_state()
    return os.environ["BROKER_URL"]
