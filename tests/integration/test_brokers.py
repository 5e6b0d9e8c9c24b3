"""Both brokers carry Herald's tasks; on Redis every broker key sits in the namespace."""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from tests.fixtures.services import Servers
from tests.fixtures.waiting import wait_for
from tests.fixtures.workers import WorkerFactory
from worker import runtime
from worker.constants import KEY_BEAT_HEARTBEAT, QUEUE_MAINTENANCE, TASK_HEARTBEAT
from worker.coordination.redis_client import get_redis
from worker.settings import get_settings


def test_redis_broker_keys_stay_inside_the_namespace(
    servers: Servers, namespace: str, control: Celery
) -> None:
    control.send_task(TASK_HEARTBEAT)
    client = redis.Redis.from_url(servers.redis_url, decode_responses=True)
    assert client.llen(f"{namespace}:{QUEUE_MAINTENANCE}") == 1
    assert not client.exists(QUEUE_MAINTENANCE)
    client.close()


@pytest.fixture
def rabbitmq(amqp_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BROKER_URL", amqp_url)
    runtime.reset()
    return amqp_url


@pytest.mark.amqp
def test_a_worker_on_rabbitmq_runs_a_task(
    rabbitmq: str, worker_process: WorkerFactory, control: Celery
) -> None:
    assert get_settings().effective_broker_url == rabbitmq
    control.control.purge()
    worker_process((QUEUE_MAINTENANCE,), name="amqp")
    control.send_task(TASK_HEARTBEAT)
    key = get_settings().key(KEY_BEAT_HEARTBEAT)
    wait_for(lambda: get_redis().get(key), timeout=30, what="the task to run over RabbitMQ")


def test_the_in_process_worker_fixture_runs_the_real_apps_tasks(
    inprocess_worker: object, namespace: str
) -> None:
    from worker.app import app

    app.send_task(TASK_HEARTBEAT)
    key = get_settings().key(KEY_BEAT_HEARTBEAT)
    wait_for(lambda: get_redis().get(key), timeout=30, what="the in-process worker to run it")
