"""Celery's configuration module for `celery -A worker.app`: see worker/config.py."""

from worker.config import celery_config
from worker.settings import get_settings

globals().update(celery_config(get_settings()))
