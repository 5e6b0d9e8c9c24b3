"""Token tasks: thin bodies over worker.tokens (other languages send these names)."""

from __future__ import annotations

from typing import Any

from worker.app import app
from worker.constants import TASK_REFRESH, TASK_REFRESH_EXPIRING
from worker.settings import get_settings
from worker.tokens.refresh import refresh_account
from worker.tokens.sweep import refresh_expiring as sweep

#: A refresh is one HTTP call plus a few round trips; this bounds a hung one.
REFRESH_TIME_LIMIT = 60


@app.task(name=TASK_REFRESH_EXPIRING, acks_late=False, ignore_result=True)
def refresh_expiring() -> dict[str, int]:
    """Beat: send `tokens.refresh` for every account whose token is due."""
    report = sweep()
    return {"due": report.due, "batches": report.batches}


@app.task(
    name=TASK_REFRESH,
    bind=True,
    max_retries=None,  # bounded by the per-account failure count (worker.tokens.refresh)
    soft_time_limit=REFRESH_TIME_LIMIT - 10,
    time_limit=REFRESH_TIME_LIMIT,
)
def refresh(self: Any, account_id: str) -> str:
    """Refresh one account's token; the only argument is its id, never a token."""
    result = refresh_account(account_id, task_id=self.request.id)
    if result.retry_in is not None and result.retry_in <= get_settings().max_countdown:
        # Celery's retry: same task id, a countdown message; the broker keeps it safe.
        raise self.retry(countdown=result.retry_in)
    # A wait too long for a countdown (kombu#337) is left to a later sweep.
    return result.outcome
