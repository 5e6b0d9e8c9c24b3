"""The audit log: every operator action that changes state (limits, breakers, dead letters)."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import text

from worker.db.session import unit_of_work

log = structlog.get_logger(__name__)


def default_actor() -> str:
    """The OS user running the command (`--actor` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def record(
    action: str, *, actor: str | None = None, target: str | None = None, **detail: Any
) -> int:
    """Write one audit entry and return its id. `detail` must be JSON-serializable."""
    who = actor or default_actor()
    with unit_of_work() as session:
        entry_id = session.execute(
            text(
                "INSERT INTO audit_log (actor, action, target, detail) "
                "VALUES (:actor, :action, :target, CAST(:detail AS jsonb)) RETURNING id"
            ),
            {
                "actor": who,
                "action": action,
                "target": target,
                "detail": json.dumps(detail, default=str),
            },
        ).scalar_one()
    log.info("audit", actor=who, action=action, target=target)
    return int(entry_id)


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry: who (`actor`) did `action` on `target`, when, with what `detail`."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


def recent(limit: int = 50, action: str | None = None) -> list[AuditRecord]:
    """The newest entries first, optionally of one action."""
    with unit_of_work() as session:
        rows = session.execute(
            text(
                "SELECT id, at, actor, action, target, detail FROM audit_log "
                "WHERE (CAST(:action AS text) IS NULL OR action = :action) "
                "ORDER BY id DESC LIMIT :limit"
            ),
            {"action": action, "limit": limit},
        ).mappings()
        return [AuditRecord(**row) for row in rows]
