"""Celery's configuration, derived from `Settings` (no literal holds a secret).

`celeryconfig.py` exposes this for `celery -A worker.app`; tests and tools build
apps for other namespaces from the same function, so there is one source of truth.
Every value is deliberate; comments say why where Celery's default would bite
(see DESIGN.md, "Known traps").
"""

from __future__ import annotations

import sys
from typing import Any

from kombu import Queue

from schedules.beat import build_beat_schedule
from schedules.leadership import BEAT_SCHEDULER
from worker.constants import ALL_QUEUES, KEY_REDBEAT
from worker.settings import Settings, SettingsError, get_settings
from worker.taskapp.routing import FALLBACK_QUEUE


def settings_or_exit() -> Settings:
    """This process's settings, or exit 2 with one line per problem (never a traceback)."""
    try:
        return get_settings()
    except SettingsError as exc:
        print("herald: configuration error", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def broker_options(settings: Settings) -> dict[str, Any]:
    if not settings.broker_is_redis:
        return {"confirm_publish": True}
    return {
        # A message not acked within this many seconds is redelivered (kombu#337), so
        # publishes finish far inside it and no ETA is ever longer than it.
        "visibility_timeout": settings.visibility_timeout,
        # Every broker key in this deployment's namespace: several Heralds, one Redis.
        "global_keyprefix": f"{settings.namespace}:",
        "health_check_interval": 25,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": broker_options(settings),
        # Workers outlive broker restarts: retry forever, from the first connection on.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 5,
        # JSON only: pickle would run code sent by whoever can write to the broker.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": settings.accept_content,
        "result_accept_content": ["json"],
        # Nothing reads task results: outcomes are recorded in PostgreSQL.
        "task_ignore_result": True,
        "result_backend": None,
        # Acked after the job ran; a worker killed mid-job gives it back (the task base
        # class counts deliveries so a poison job cannot loop forever).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Bounded: delay() must not hang while the broker is down (celery#6911).
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        # A hung call cannot hold a worker forever; tasks set tighter limits of their own.
        "task_soft_time_limit": 240,
        "task_time_limit": 300,
        "task_queues": tuple(Queue(name) for name in ALL_QUEUES),
        "task_default_queue": FALLBACK_QUEUE,
        "task_routes": ("worker.taskapp.routing.route_task",),
        "task_create_missing_queues": False,
        # SIGTERM lets in-flight jobs finish this long, then requeues the rest.
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_hijack_root_logger": False,
        # Flower needs the workers' events; they expire so an absent Flower costs nothing.
        # No task-sent events: one more broker write per message on the dispatch path.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "event_queue_expires": 60.0,
        "event_queue_ttl": 5.0,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_scheduler": BEAT_SCHEDULER,
        "beat_max_loop_interval": 5,
        "beat_schedule": build_beat_schedule(settings),
        "redbeat_redis_url": settings.redis_url,
        "redbeat_key_prefix": f"{settings.key(KEY_REDBEAT)}:",
        # Redbeat's default lock lives 25 minutes: a dead beat would not be replaced that long.
        "redbeat_lock_timeout": settings.beat_lock_timeout,
        # Explicit, or redbeat warns that its default will change.
        # A half-open link (a network cut, not a dead server) must not block beat forever.
        "redbeat_redis_options": {"socket_timeout": 5, "socket_connect_timeout": 5},
    }
