"""The sweep (``tokens.refresh_expiring``, fired by beat): send ``tokens.refresh`` for
every account whose token is due.

Accounts are read in keyset batches (soonest expiry first) by the refresh policy's
SQL, which the ``(is_active, token_expires_at)`` index serves; each batch's messages go
out through one producer. Two sweeps racing send two messages for an account: the
account's lock and the re-check under it make the second a no-op, so the sweep needs
no lock of its own (and a stuck one cannot block the next).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog

from worker.constants import TASK_REFRESH
from worker.db.accounts import due_account_ids
from worker.settings import get_settings
from worker.taskapp import sending
from worker.tokens.policy import DUE_SQL, RefreshPolicy

log = structlog.get_logger(__name__)

#: Accounts read and messages sent per batch.
SWEEP_BATCH_SIZE: Final = 1000


@dataclass(frozen=True)
class SweepReport:
    due: int
    batches: int


def refresh_expiring(
    *, now: datetime | None = None, batch_size: int = SWEEP_BATCH_SIZE
) -> SweepReport:
    """Send one ``tokens.refresh(account_id)`` per account due at ``now``."""
    at = now or datetime.now(UTC)
    params = RefreshPolicy.from_settings(get_settings()).sql_params(at)
    app = sending.current()
    due = batches = 0
    after = None
    with app.producer_or_acquire() as producer:
        while True:
            rows = due_account_ids(DUE_SQL, params, after, batch_size)
            for account_id, _ in rows:
                app.send_task(TASK_REFRESH, args=[str(account_id)], producer=producer)
            due += len(rows)
            batches += 1
            if len(rows) < batch_size:
                break
            last_id, last_expiry = rows[-1]
            after = (last_expiry, last_id)
    log.info("tokens.sweep", due=due, batches=batches)
    return SweepReport(due, batches)
