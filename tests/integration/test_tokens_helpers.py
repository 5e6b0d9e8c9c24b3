"""Helpers of the token tests (no tests here): accounts inserted as rows, the sandbox's OAuth log,
refresh outcomes read from worker logs, dead letters read from their table."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.fixtures.cli import json_lines
from tests.fixtures.sandbox import SandboxServer
from tests.fixtures.workers import WorkerProcess
from worker.db.session import unit_of_work
from worker.security.tokens import get_cipher

DAY = 86_400


def insert_account(
    platform: str,
    *,
    expires_in: float,
    lived: float,
    access: str | None = None,
    refresh: str | None = None,
    active: bool = True,
) -> uuid.UUID:
    """An account row whose token expires ``expires_in`` s from now, stored ``lived`` s ago."""
    now = datetime.now(UTC)
    access = access or f"{platform}-access-{uuid.uuid4().hex}"
    if platform == "youtube" and refresh is None:
        refresh = f"1//refresh-{uuid.uuid4().hex}"
    cipher = get_cipher()
    with unit_of_work() as session:
        account_id: uuid.UUID = session.execute(
            text(
                "INSERT INTO social_accounts (user_id, platform, external_id, access_token_enc, "
                "refresh_token_enc, token_expires_at, is_active, updated_at) VALUES "
                "(gen_random_uuid(), :p, :ext, :a, :r, :exp, :active, :upd) RETURNING id"
            ),
            {
                "p": platform,
                "ext": f"{platform}-{uuid.uuid4().hex[:12]}",
                "a": cipher.encrypt(access),
                "r": cipher.encrypt(refresh) if refresh else None,
                "exp": now + timedelta(seconds=expires_in),
                "active": active,
                "upd": now - timedelta(seconds=lived),
            },
        ).scalar_one()
    return account_id


def due_account(platform: str) -> uuid.UUID:
    """A 60-day token with ten minutes left (Graph), or an hour's token at its last ten
    minutes (Google): due under the default policy."""
    lived = 3000 if platform == "youtube" else 60 * DAY - 600
    return insert_account(platform, expires_in=600, lived=lived)


def account_row(account_id: uuid.UUID) -> dict[str, Any]:
    with unit_of_work() as session:
        row = session.execute(
            text("SELECT * FROM social_accounts WHERE id = :id"), {"id": account_id}
        ).mappings()
        return dict(row.one())


def plain_tokens(account_id: uuid.UUID) -> tuple[str, str | None]:
    row = account_row(account_id)
    cipher = get_cipher()
    refresh = row["refresh_token_enc"]
    return cipher.decrypt(row["access_token_enc"]), cipher.decrypt(refresh) if refresh else None


def grant_of(account_id: uuid.UUID) -> str:
    """The token a refresh of the account presents: Google's refresh token, else the access."""
    access, refresh = plain_tokens(account_id)
    return refresh or access


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def oauth_calls(sandbox: SandboxServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{sandbox.base_url}/__sandbox/oauth", trust_env=False, timeout=5)
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()
    return calls


def log_events(event: str, *workers: WorkerProcess) -> list[dict[str, Any]]:
    return [line for w in workers for line in json_lines(w.log()) if line.get("event") == event]


def refresh_outcomes(*workers: WorkerProcess) -> list[dict[str, Any]]:
    """The `tokens.refresh` outcome lines the workers logged."""
    return log_events("tokens.refresh", *workers)


def dead_letters(task_name: str = "tokens.refresh") -> list[dict[str, Any]]:
    with unit_of_work() as session:
        rows = session.execute(
            text("SELECT * FROM dead_letters WHERE task_name = :name ORDER BY id"),
            {"name": task_name},
        ).mappings()
        return [dict(row) for row in rows]


def audit_rows(action: str) -> list[dict[str, Any]]:
    with unit_of_work() as session:
        rows = session.execute(
            text("SELECT * FROM audit_log WHERE action = :action ORDER BY id"), {"action": action}
        ).mappings()
        return [dict(row) for row in rows]
