"""`deadletter.record`: write one dead letter (the background worker consumes its queue)."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from worker.app import app
from worker.constants import TASK_PUBLISH, TASK_RECORD_DEAD_LETTER
from worker.db.session import in_transaction
from worker.deadletter.letter import Letter, bury_post
from worker.deadletter.store import store

log = structlog.get_logger(__name__)

#: Errors that mean "the database is not there right now": retried, without end.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeoutError)


@app.task(
    name=TASK_RECORD_DEAD_LETTER,
    autoretry_for=DATABASE_DOWN,
    max_retries=None,  # a dead letter is never dropped because PostgreSQL was away
    retry_backoff=2,
    retry_backoff_max=60,  # far below the broker's visibility timeout
    retry_jitter=True,
)
def record(letter: dict[str, Any]) -> int:
    """Upsert the letter's row; a poison `posts.publish` also marks its post dead."""
    parsed = Letter.from_json(letter)  # InvalidLetterError: logged by Celery, not retried

    def write(session: Session) -> int:
        stored = store(session, parsed)
        if parsed.kind == "poison" and parsed.task_name == TASK_PUBLISH:
            post_id = parsed.args[0] if parsed.args else parsed.kwargs.get("post_id")
            bury_post(session, post_id, parsed.reason)
        return stored.id

    letter_id = in_transaction(write)
    log.info(
        "deadletter.recorded",
        letter_id=letter_id,
        original_task_id=parsed.task_id,
        original_task_name=parsed.task_name,
        kind=parsed.kind,
    )
    return letter_id
