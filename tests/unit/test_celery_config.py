"""Celery's configuration: the guarantees DESIGN.md relies on are set, from settings."""

from __future__ import annotations

import pytest

from worker.constants import (
    ALL_QUEUES,
    QUEUE_DEAD_LETTER,
    QUEUE_MAINTENANCE,
    QUEUE_POSTS,
    QUEUE_TOKENS,
    TASK_ARCHIVE,
    TASK_BACKUP,
    TASK_DISPATCH_DUE,
    TASK_PUBLISH,
    TASK_RECORD_DEAD_LETTER,
    TASK_REFRESH,
    TASK_REFRESH_EXPIRING,
)
from worker.settings import Settings
from worker.taskapp.config import celery_config
from worker.taskapp.routing import FALLBACK_QUEUE, queue_for

REDIS = Settings(database_url="postgresql://x@h/db", redis_url="redis://h:6379/0", namespace="ns1")


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        (TASK_PUBLISH, QUEUE_POSTS),
        (TASK_DISPATCH_DUE, QUEUE_POSTS),
        (TASK_REFRESH_EXPIRING, QUEUE_TOKENS),
        (TASK_REFRESH, QUEUE_TOKENS),
        (TASK_BACKUP, QUEUE_MAINTENANCE),
        (TASK_ARCHIVE, QUEUE_MAINTENANCE),
        (TASK_RECORD_DEAD_LETTER, QUEUE_DEAD_LETTER),
        ("something.else", FALLBACK_QUEUE),
    ],
)
def test_tasks_route_to_the_queues_of_the_design(task: str, queue: str) -> None:
    assert queue_for(task) == queue


def test_json_only_acks_late_and_prefetch_one() -> None:
    config = celery_config(REDIS)
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_connection_retry_on_startup"] is True
    assert config["worker_send_task_events"] is True
    assert {q.name for q in config["task_queues"]} == set(ALL_QUEUES)


def test_redis_broker_is_namespaced_and_has_a_deliberate_visibility_timeout() -> None:
    config = celery_config(REDIS)
    options = config["broker_transport_options"]
    assert options["global_keyprefix"] == "ns1:"
    assert options["visibility_timeout"] == REDIS.visibility_timeout
    assert config["redbeat_key_prefix"].startswith("ns1:")
    assert config["redbeat_lock_timeout"] < 60
    # A bounded publish retry: delay() must not hang while the broker is down.
    assert config["task_publish_retry_policy"]["max_retries"] == 3


def test_broker_url_selects_rabbitmq() -> None:
    settings = REDIS.model_copy(update={"broker_url": "amqp://guest:guest@h:5672//"})
    config = celery_config(settings)
    assert config["broker_url"].startswith("amqp://")
    assert "global_keyprefix" not in config["broker_transport_options"]
    assert config["redbeat_redis_url"] == "redis://h:6379/0"
