"""Celery's configuration module for `celery -A worker.app`: see worker/taskapp/config.py."""

from worker.settings import get_settings
from worker.taskapp.config import celery_config

globals().update(celery_config(get_settings()))
