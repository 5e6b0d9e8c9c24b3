"""Celery's configuration module for `celery -A worker.app`: see worker/taskapp/config.py.

Celery imports this lazily, the first time the app's configuration is read: when a
worker, beat or Flower starts (before it connects to the broker), or when a process
sends its first task. Never when `worker.app` is imported. That makes it the start-up
point of every Celery process, so it acts as an entry point: with `REDIS_URL` /
`DATABASE_URL` unset the embedded servers start here (worker.runtime) and the broker
URL Celery reads is theirs; a wrong setting exits with status 2 and one line per
problem.
"""

from worker import runtime
from worker.taskapp.config import celery_config, settings_or_exit

runtime.use_embedded_servers()
globals().update(celery_config(settings_or_exit()))
